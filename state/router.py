"""The router pattern's state, settings and decisions: where a request went, how sure the router was, and why.

The checkpointed state holds the request, the routing decisions (`hops`: one small record per specialist
asked, at most `max_hops + 2`), the answers' task records, the current answer and the escalation; every
message of the run goes to the journal. Checkpoints hold plain JSON (`state.channels`).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic builds schemas (Studio's input form) only from this one on 3.11

from state.channels import JsonDelta, JsonValue
from state.roles import Team, TeamError
from state.team import Board, Decision, fold_board

RouterStatus = Literal["answering", "awaiting_approval", "completed", "rejected"]
HopKind = Literal["routed", "second opinion", "hand-on"]

DEFAULT_ESCALATE_ON = ("lawyer", "attorney", "lawsuit", "legal action", "sue", "human agent", "real person")
DEFAULT_POLICY = ("Hand the request to a person when the customer asks for money back over $500, threatens legal "
                  "action, is angry or abusive, asks for a person, or when the answer does not resolve the request.")


class Hop(TypedDict):
    """One routing decision: which specialist was asked, in which round, how confidently, and why."""

    id: str
    """The answer's id (A1, A2, ...): its task record and its journal messages' correlation id."""
    route: str
    kind: HopKind
    round: int
    confidence: float
    reason: str


class EscalationRecord(TypedDict):
    """Whether a person must take over, why, and who decided ('escalate_on', 'escalation' or 'router')."""

    needs_human: bool
    reason: str
    by: str


class RouterInput(TypedDict):
    task: str


class RouterOutput(TypedDict, total=False):
    status: RouterStatus
    result: str | None
    hops: list[Hop]
    escalation: EscalationRecord | None


class RouterState(TypedDict, total=False):
    """Checkpointed state. Kept small: answers are workspace files, the record of the run is the journal."""

    task: str
    hops: Annotated[list[Hop], operator.add]
    board: Annotated[Board, JsonDelta(fold_board)]
    answer: str | None
    """The current draft answer (one text, replaced, never appended)."""
    escalation: EscalationRecord | None
    decision: Annotated[Decision | None, JsonValue]
    status: RouterStatus
    result: str | None


class Route(BaseModel):
    """The router's classification of a request."""

    route: str = Field(description="The route (specialist name) that should answer the request.")
    confidence: float = Field(ge=0, le=1, description="How sure you are, 0..1.")
    reason: str = Field(description="Why this route: the words or facts of the request that decided it.")
    runner_up: str | None = Field(default=None, description="The next best route, if any.")
    runner_up_confidence: float = Field(default=0.0, ge=0, le=1, description="How well the runner-up fits, 0..1.")


class HandOn(BaseModel):
    """The router's check after the specialists answered: is the request handled, or must another route take it?"""

    route: str | None = Field(description="A route that has not answered yet and must take the request on; "
                                          "null if the answers so far handle it.")
    confidence: float = Field(ge=0, le=1, description="How sure you are, 0..1.")
    reason: str = Field(description="What is left unanswered and why this route, or why nothing is left.")


class Escalation(BaseModel):
    """The escalation agent's decision: must a person take over?"""

    needs_human: bool = Field(description="True if a person must take over under the policy.")
    reason: str = Field(description="The policy point or fact that decided it.")


class MergedAnswer(BaseModel):
    """Two or more specialists' answers to one request, made into one."""

    answer: str = Field(description="The one answer the customer gets, in Markdown.")
    agreed: bool = Field(description="True if the specialists' answers agree on the substance.")
    notes: str = Field(description="Where they differ and how the merged answer settles it.")


class RouterSettings(BaseModel):
    """The team file's `patterns.router` section, or `build()` keywords."""

    model_config = ConfigDict(extra="forbid")

    routes: dict[str, list[str]] | None = Field(
        default=None, description="Route (role name) -> keywords; default: every role, its capabilities as keywords.")
    threshold: float = Field(default=0.6, ge=0, le=1, description="Below this confidence a second specialist answers.")
    max_hops: int = Field(default=2, ge=0, le=10, description="Hand-on rounds after the first routing.")
    escalate_on: list[str] = Field(default_factory=lambda: list(DEFAULT_ESCALATE_ON),
                                   description="Words that send a request to a person without asking a model.")
    escalation_policy: str = Field(default=DEFAULT_POLICY, min_length=1,
                                   description="When the escalation agent must hand the request to a person.")


@dataclass(frozen=True)
class Desk:
    """The settings resolved against a team: routes with their keywords, checked."""

    routes: dict[str, tuple[str, ...]]
    threshold: float
    max_hops: int
    escalate_on: tuple[str, ...]
    policy: str

    @classmethod
    def of(cls, team: Team, settings: RouterSettings) -> Desk:
        roles = [r.name for r in team.roles]
        given = settings.routes
        if given is None:
            routes = {r.name: tuple(r.capabilities) for r in team.roles}
        else:
            if not given:
                raise TeamError(f"{team.where('patterns', 'router', 'routes')}: routes: name at least one role")
            for name, keywords in given.items():
                where = team.where("patterns", "router", "routes", name)
                if name not in roles:
                    raise TeamError(f"{where}: no role {name!r} in team {team.name!r} (roles: {', '.join(roles)})")
                if not keywords:
                    raise TeamError(f"{where}: give route {name!r} at least one keyword")
            routes = {name: tuple(keywords) for name, keywords in given.items()}
        return cls(routes=routes, threshold=settings.threshold, max_hops=settings.max_hops,
                   escalate_on=tuple(settings.escalate_on), policy=settings.escalation_policy)

    def ranked(self, text: str, among: list[str] | None = None) -> list[Scored]:
        """The routes (or those in `among`) best first by keyword hits; ties keep declaration order."""
        return ranked({r: self.routes[r] for r in among or self.routes}, text)

    def triggers(self, text: str) -> list[str]:
        """The `escalate_on` phrases found in `text`."""
        return [p for p in self.escalate_on if re.search(rf"\b{re.escape(p)}\b", text, re.I)]


_WORD = re.compile(r"[a-z0-9]+")
_SUFFIXES = ("ing", "ed", "es", "s", "e")


def stem(word: str) -> str:
    """A crude stem, so 'charged' meets 'charge' and 'tests' meets 'testing'."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def keyword_hits(text: str, keywords: tuple[str, ...] | list[str]) -> list[str]:
    """The keywords found in `text`: a phrase as words in a row, a word by its stem."""
    stems = [stem(w) for w in _WORD.findall(text.lower())]
    joined = f" {' '.join(stems)} "
    found = []
    for kw in keywords:
        words = [stem(w) for w in _WORD.findall(kw.lower())]
        if words and f" {' '.join(words)} " in joined:
            found.append(kw)
    return found


@dataclass(frozen=True)
class Scored:
    """A route's fit for a text: its share of all keyword hits (1/n each when nothing matches) and the hits."""

    route: str
    share: float
    hits: list[str]


def ranked(routes: dict[str, tuple[str, ...]] | dict[str, list[str]], text: str,
           tiebreak: dict[str, float] | None = None) -> list[Scored]:
    """Routes best first by keyword hits; ties go by `tiebreak` (lower first), then declaration order."""
    hits = {name: keyword_hits(text, keywords) for name, keywords in routes.items()}
    total = sum(len(h) for h in hits.values())
    scored = [Scored(name, len(h) / total if total else 1 / len(routes), h) for name, h in hits.items()]
    order = list(routes)
    return sorted(scored, key=lambda s: (-len(s.hits), (tiebreak or {}).get(s.route, 0.0), order.index(s.route)))
