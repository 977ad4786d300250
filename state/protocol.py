"""Typed messages agents exchange. Together they are a run's audit trail.

Every message carries sender, recipient, correlation id (the subtask or decision it is
about) and a timestamp; `kind` discriminates the union so a stored message parses back to
its own class with `parse_message`.
"""

from __future__ import annotations

import random
import time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter


class Kind(StrEnum):
    TASK_ASSIGN = "TASK_ASSIGN"
    PROGRESS = "PROGRESS"
    BLOCKER = "BLOCKER"
    ARTIFACT = "ARTIFACT"
    QUERY = "QUERY"
    CONFLICT = "CONFLICT"
    REVIEW_REQUEST = "REVIEW_REQUEST"
    REVIEW_RESULT = "REVIEW_RESULT"
    REPLAN = "REPLAN"
    CHECKPOINT = "CHECKPOINT"
    EVENT = "EVENT"


def message_id() -> str:
    # Time-ordered so that a store listing sorts into the order things happened; 32 random bits keep two ids of
    # one nanosecond apart (not a secret: the fast generator, not the OS's, which costs a system call each).
    return f"{time.time_ns():020d}-{random.getrandbits(32):08x}"


class Message(BaseModel):
    """Fields every protocol message has."""

    id: str = Field(default_factory=message_id)
    sender: str
    recipient: str
    correlation_id: str = Field(description="The subtask id or run-level topic the message is about.")
    timestamp: float = Field(default_factory=time.time)


class TaskAssign(Message):
    kind: Literal[Kind.TASK_ASSIGN] = Kind.TASK_ASSIGN
    title: str
    round: int
    feedback: list[str] = Field(default_factory=list)
    reason: str = Field(default="", description="Why this agent got it: the decision, for the audit trail.")


class Progress(Message):
    kind: Literal[Kind.PROGRESS] = Kind.PROGRESS
    note: str


class Blocker(Message):
    kind: Literal[Kind.BLOCKER] = Kind.BLOCKER
    reason: str


class ArtifactMsg(Message):
    kind: Literal[Kind.ARTIFACT] = Kind.ARTIFACT
    path: str
    sha256: str
    summary: str
    round: int


class Query(Message):
    kind: Literal[Kind.QUERY] = Kind.QUERY
    question: str


class Conflict(Message):
    kind: Literal[Kind.CONFLICT] = Kind.CONFLICT
    topic: str
    description: str


class ReviewRequest(Message):
    kind: Literal[Kind.REVIEW_REQUEST] = Kind.REVIEW_REQUEST
    path: str
    round: int


class ReviewResult(Message):
    kind: Literal[Kind.REVIEW_RESULT] = Kind.REVIEW_RESULT
    approved: bool
    round: int
    unmet_criteria: list[str] = Field(default_factory=list)
    feedback: str = ""


class Replan(Message):
    """A decision of the supervisor that changes the plan or its schedule, with its reason."""

    kind: Literal[Kind.REPLAN] = Kind.REPLAN
    action: str = Field(default="replan", description="What was decided: repair, reassign, split, escalate, skip, "
                        "give up, amend, finding, preempt, stall, size, edit, budget, conflict, contract, fix-up.")
    reason: str
    tasks: list[str] = Field(default_factory=list, description="Ids of the subtasks in the new plan.")


class CheckpointMsg(Message):
    kind: Literal[Kind.CHECKPOINT] = Kind.CHECKPOINT
    label: str
    note: str = ""


class Event(Message):
    """An event published on a topic (event-driven pattern): every subscriber of the topic gets it, in order."""

    kind: Literal[Kind.EVENT] = Kind.EVENT
    topic: str
    seq: int = Field(description="Its position in its topic (1, 2, ...): the order it is delivered in.")
    payload: str
    cause: str | None = Field(default=None, description="Id of the event whose handling published this one.")


AnyMessage = Annotated[
    TaskAssign | Progress | Blocker | ArtifactMsg | Query | Conflict | ReviewRequest | ReviewResult | Replan
    | CheckpointMsg | Event,
    Field(discriminator="kind"),
]
_adapter: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


def parse_message(data: dict) -> AnyMessage:
    """Rebuild a stored message as its own class."""
    return _adapter.validate_python(data)
