"""The debate pattern's state, its settings, what debaters and the judge answer, and how agreement is measured.

The checkpointed state holds plain dicts only (each debater's latest position, the judgement), so it needs no
serializer allow-list; every position and critique of every round is in the journal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict  # pydantic builds schemas (Studio's input form) only from this one on 3.11

from state.loops import STOP_ON_REPEAT

DebateStatus = Literal["debating", "judging", "completed"]
StopReason = Literal["converged", "round limit", "stalemate"]
"""Why the debate stopped: enough agreement, `max_rounds`, or a round whose stances repeat an earlier rebuttal
round's (loop detection: another round would repeat it too)."""
BUILT_IN_JUDGE = "judge"
"""The judge's agent name when no team role is named to judge (served by the 'reviewer' model role)."""


class DebateSettings(BaseModel):
    """`patterns.debate` in a team file, or `build()` keywords."""

    model_config = ConfigDict(extra="forbid")

    debaters: int | list[str] = Field(
        default=3, description="How many debaters (the team's first N roles), or the names of the roles that debate.")
    max_rounds: int = Field(default=3, ge=1, le=20, description="Rounds at most; round 1 states positions.")
    converge_at: float = Field(
        default=1.0, gt=0.5, le=1.0,
        description="Share of debaters holding the leading stance that ends the debate early (1.0: all agree).")
    judge: str | None = Field(default=None, description="The role that judges; None: troupe's own judge.")
    stop_on_repeat: bool = Field(default=True, description=STOP_ON_REPEAT + " Here: from round 3 on, a round whose "
                                 "stances are those of an earlier rebuttal round (nobody moved) ends the debate.")

    @field_validator("debaters", mode="before")
    @classmethod
    def _number_or_names(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | list):
            raise ValueError(f"give a number of debaters or a list of role names, not {value!r}")
        return value

    @field_validator("debaters")
    @classmethod
    def _at_least_two(cls, value: int | list[str]) -> int | list[str]:
        if isinstance(value, int) and value < 2:
            raise ValueError(f"a debate needs at least 2 debaters, not {value}")
        if isinstance(value, list):
            if len(value) < 2:
                raise ValueError("a debate needs at least 2 debaters: name 2 or more roles")
            if len(set(value)) != len(value):
                raise ValueError(f"a role is named twice in {value}")
        return value


class Position(BaseModel):
    """What a debater answers each round."""

    stance: str = Field(min_length=1, max_length=60, description=(
        "Your answer as a short label (1-4 words), e.g. 'for' or 'against'; when you agree with another debater, "
        "reuse their label exactly."))
    claim: str = Field(min_length=1, description="Your position in one sentence.")
    arguments: list[str] = Field(min_length=1, max_length=6, description="Your strongest arguments, one sentence each.")
    confidence: float = Field(ge=0, le=1, description="How sure you are, from 0 to 1.")
    critique: str = Field(default="", description=(
        "From round 2 on: what is wrong or missing in the other debaters' positions, naming them (empty in round 1)."))


class Judgement(BaseModel):
    """What the judge answers once the debate stops."""

    decision: str = Field(min_length=1, description="The answer to the question, in one or two sentences.")
    reasons: list[str] = Field(min_length=1, description="Why: the arguments that decided it, the dissent weighed.")
    winning_stance: str = Field(min_length=1, description="The stance label, as the debaters wrote it, you side with.")


class PositionRecord(TypedDict, total=False):
    """A debater's latest position, as kept in the state (its critique is in the journal only)."""

    stance: str
    claim: str
    arguments: list[str]
    confidence: float
    round: int
    """The round it was stated in."""
    failed: str
    """Why the debater's latest turn failed (its stance, if any, is from an earlier round)."""


class JudgementRecord(TypedDict):
    decision: str
    reasons: list[str]
    winning_stance: str
    by: str
    """The judge's agent name."""


class DebateTurn(TypedDict):
    """A debater's whole view of a round (the `Send` payload): the question, its own and the others' positions."""

    debater: str
    round: int
    question: str
    own: PositionRecord | None
    others: dict[str, PositionRecord]


def merge_positions(left: dict[str, PositionRecord] | None, right: dict[str, PositionRecord]
                    ) -> dict[str, PositionRecord]:
    """Positions reducer: a debater's new position replaces its previous one (history lives in the journal)."""
    return {**(left or {}), **right}


class DebateInput(TypedDict):
    task: str
    """The question to debate."""


class DebateOutput(TypedDict, total=False):
    status: DebateStatus
    result: str | None
    judgement: JudgementRecord | None
    positions: dict[str, PositionRecord]


class DebateState(TypedDict, total=False):
    """Checkpointed state: small and bounded by the number of debaters, whatever the number of rounds."""

    task: str
    round: int
    positions: Annotated[dict[str, PositionRecord], merge_positions]
    seen: list[str]
    """The signature of each rebuttal round's stances (round 2 first; `state.loops`), for loop detection."""
    stop: StopReason
    judgement: JudgementRecord | None
    status: DebateStatus
    result: str | None


class Tally(NamedTuple):
    """Where the debate stands: the leading stance, how many hold it, of how many with a stance."""

    stance: str
    holders: int
    voters: int

    @property
    def ratio(self) -> float:
        return self.holders / self.voters if self.voters else 0.0


def stance_key(stance: str) -> str:
    """'For!' and ' for' are the same stance."""
    return re.sub(r"[^\w+#]+", " ", stance.casefold()).strip()


def tally(positions: Mapping[str, PositionRecord]) -> Tally:
    """The leading stance; a tie goes to the higher summed confidence, then to the first label alphabetically."""
    groups: dict[str, list[PositionRecord]] = {}
    for p in positions.values():
        if p.get("stance"):
            groups.setdefault(stance_key(p["stance"]), []).append(p)
    if not groups:
        return Tally("", 0, 0)
    key = min(groups, key=lambda k: (-len(groups[k]), -sum(p.get("confidence", 0.0) for p in groups[k]), k))
    return Tally(groups[key][0]["stance"], len(groups[key]), sum(len(g) for g in groups.values()))
