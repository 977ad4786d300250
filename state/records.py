"""The shared context store's records: what a team knows and agreed, typed and scoped.

A record says what it *touches* (task ids, capabilities, role names, or "*" for everyone), and a
worker's brief carries only the records that touch its subtask: a worker's prompt does not grow with
the size of the team. Records live in the LangGraph store (`tools.context_store`), one key per
subject, so a newer version replaces an older one.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, field_validator

EVERYONE = "*"
"""In `touches`: the record concerns every agent of the team."""

MAX_SCOPED = 12
"""The most records a worker's brief carries (the newest that touch its subtask)."""

_WORD = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """'The auth API!' -> 'the-auth-api' (a record's key part)."""
    return _WORD.sub("-", text.lower()).strip("-")[:80] or "untitled"


class Record(BaseModel):
    """Fields every record has."""

    title: str = Field(min_length=1, max_length=120, description="A short name, e.g. 'auth API' or 'no WebSockets'.")
    text: str = Field(min_length=1, max_length=2000, description="What it says, in full: what search matches.")
    touches: list[str] = Field(min_length=1, description="Task ids, capabilities or role names it concerns; '*': "
                               "every agent.")
    author: str = Field(default="team file", description="The agent (or 'team file', 'person') that recorded it.")
    task_id: str | None = Field(default=None, description="The subtask it was recorded in.")
    updated: float = Field(default_factory=time.time)

    @field_validator("touches")
    @classmethod
    def _clean(cls, touches: list[str]) -> list[str]:
        return sorted({t.strip() for t in touches if t.strip()}) or [EVERYONE]

    @property
    def key(self) -> str:
        kind: str = getattr(self, "kind", "record")
        return f"{kind}:{slug(self.title)}"

    def touches_task(self, *names: str) -> bool:
        """Whether it concerns an agent working on a subtask known by `names` (its id, capability, role)."""
        return EVERYONE in self.touches or any(n in self.touches for n in names)


class DecisionRecord(Record):
    """An architecture decision and why it was taken."""

    kind: Literal["decision"] = "decision"
    reason: str = Field(default="", max_length=1000)


class ContractRecord(Record):
    """An interface contract: a named shape others build on ('the auth API returns {token, expires_at, user_id}')."""

    kind: Literal["contract"] = "contract"
    fields: list[str] = Field(min_length=1, description="The names the shape consists of, exactly as spelled.")
    version: int = 1
    history: list[str] = Field(default_factory=list, description="Earlier versions and why each changed.")


class ConstraintRecord(Record):
    """Something discovered that limits the work ('the host has no WebSockets: use SSE')."""

    kind: Literal["constraint"] = "constraint"


class ConflictRecord(Record):
    """A conflict between agents' work (overlapping edits of a file, work that disagrees with a contract) and how
    the supervisor resolved it."""

    kind: Literal["conflict"] = "conflict"
    sides: list[str] = Field(default_factory=list, description="Who disagrees: task ids or 'contract <title>'.")
    resolution: str = Field(default="", description="What the supervisor decided, and why; empty while open.")


AnyRecord = Annotated[DecisionRecord | ContractRecord | ConstraintRecord | ConflictRecord, Field(discriminator="kind")]
RecordKind = Literal["decision", "contract", "constraint", "conflict"]
RECORD_KINDS: tuple[str, ...] = ("decision", "contract", "constraint", "conflict")
_adapter: TypeAdapter[AnyRecord] = TypeAdapter(AnyRecord)


def parse_record(data: dict) -> AnyRecord:
    """Rebuild a stored record as its own class."""
    return _adapter.validate_python(data)


class MemoryNote(BaseModel):
    """What a persistent specialist keeps across runs (its own namespace): a convention it learned."""

    note: str = Field(min_length=1, max_length=500)
    learned_in: str = Field(description="The run it was learned in.")
    updated: float = Field(default_factory=time.time)


class ProgressRecord(BaseModel):
    """Where a subtask is, for whoever consults the store."""

    task_id: str
    status: str
    assignee: str
    round: int
    updated: float = Field(default_factory=time.time)
