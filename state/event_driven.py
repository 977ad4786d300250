"""The event-driven pattern's settings, what a handler answers, and its graph state.

The checkpointed state holds plain dicts only (no serializer allow-list needed) and stays bounded by
`max_events`: the queue of pending events (each with a short cause chain), the events in flight, the
handlers' latest reports (cleared by the dispatcher each round), the ids handled per topic, the dead
letters and the count of publications dropped as loops. Every event, delivery and handling is a protocol
message in the journal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict  # pydantic builds schemas (Studio's input form) only from this one on 3.11

from state.loops import STOP_ON_REPEAT
from state.roles import Team

EventStatus = Literal["running", "completed"]
StopReason = Literal["quiet", "max_events", "loop"]
"""Why the run ended: nothing left to deliver; `max_events` reached (later publications dropped); or quiet once
publications that repeated an event of their own cause chain were dropped (loop detection)."""
TOPIC = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$"
PAYLOAD_CHARS = 400
"""An event's payload is a short text; longer work goes to the handler's artifact."""
CHAIN_LINKS = 6
"""Cause-chain links a handler sees: the root event and the latest ancestors."""


class EventSettings(BaseModel):
    """`patterns.event_driven` in a team file, or `build()` keywords."""

    model_config = ConfigDict(extra="forbid")

    subscriptions: dict[str, list[str]] | None = Field(default=None, description=(
        "Topics each role handles, {role: [topic, ...]}; None: a chain derived from the roles (see `derived`)."))
    initial_topic: str = Field(default="task", pattern=TOPIC, description="The topic the task is published on.")
    max_events: int = Field(default=50, ge=1, le=1000, description=(
        "Events published at most in one run (the task included); later publications are dropped and reported."))
    handler_timeout: float = Field(default=120.0, gt=0, description="Seconds one attempt of one handler may take.")
    stop_on_repeat: bool = Field(default=True, description=STOP_ON_REPEAT + " Here: a publication equal to an event "
                                 "of its own cause chain (the same topic and payload) is dropped: the cycle ends.")

    @field_validator("subscriptions")
    @classmethod
    def _topics(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for role, topics in (value or {}).items():
            if bad := [t for t in topics if not re.match(TOPIC, t)]:
                raise ValueError(f"role {role!r}: {bad[0]!r} is not a topic name (letters, digits, _ . : / -)")
            if len(set(topics)) != len(topics):
                raise ValueError(f"role {role!r} names a topic twice: {topics}")
        return value


class Publication(BaseModel):
    """An event a handler publishes."""

    topic: str = Field(pattern=TOPIC, description="The topic, taken from the topic directory in the brief.")
    payload: str = Field(min_length=1, max_length=PAYLOAD_CHARS, description="What happened, in one or two sentences.")


class Reaction(BaseModel):
    """What a subscriber answers to one event."""

    summary: str = Field(min_length=1, max_length=300, description="What you did about the event, in one sentence.")
    details: str = Field(default="", description="Your work on it (findings, steps, decisions) in Markdown.")
    publish: list[Publication] = Field(default_factory=list, max_length=5, description=(
        "Events your work raises for others (empty when nothing follows from it)."))


class Link(TypedDict):
    """One event of a cause chain, as a handler sees it."""

    id: str
    topic: str
    source: str
    payload: str


class EventRecord(TypedDict):
    """A published event, as the dispatcher queues and delivers it."""

    id: str
    """'E1', 'E2', ... in the order the dispatcher accepted them."""
    topic: str
    seq: int
    """Its position in its topic (1, 2, ...): events of a topic are delivered in this order."""
    payload: str
    source: str
    """Who published it ('user' for the task)."""
    cause: str | None
    """The event whose handling published it."""
    chain: list[Link]
    """Its ancestors, root first (at most CHAIN_LINKS)."""


class InFlight(TypedDict):
    """An event delivered this round and the subscribers it went to."""

    event: EventRecord
    subscribers: list[str]


class Delivery(TypedDict):
    """A handler's whole view (the `Send` payload): one event, its cause chain inside, and who handles it."""

    event: EventRecord
    subscriber: str
    round: int


class Report(TypedDict):
    """A handler's outcome for one delivery, read and cleared by the dispatcher."""

    event: str | None
    """The event handled (None: the task's publication by the user)."""
    subscriber: str
    ok: bool
    reason: str
    """Why it failed (empty when it did not)."""
    publish: list[dict[str, str]]
    """{topic, payload} of each event it publishes."""


class DeadLetter(TypedDict):
    """An event nobody handled (no subscriber), or a delivery whose handler failed."""

    event: str
    topic: str
    payload: str
    subscriber: str | None
    reason: str


def merge_reports(left: dict[str, Report] | None, right: dict[str, Report | None]) -> dict[str, Report]:
    """Reports reducer: handlers add theirs by delivery key; the dispatcher clears what it read (None)."""
    merged = dict(left or {})
    for key, report in right.items():
        if report is None:
            merged.pop(key, None)
        else:
            merged[key] = report
    return merged


def number(event_id: str | None) -> int:
    """'E12' -> 12 (the order events were accepted in); the task's publication is 0."""
    return int(event_id[1:]) if event_id and event_id[1:].isdigit() else 0


@dataclass(frozen=True)
class Routing:
    """Who handles which topic, and the run's bounds (a team's settings, resolved and checked)."""

    subscriptions: dict[str, list[str]]
    initial_topic: str
    max_events: int
    handler_timeout: float
    stop_on_repeat: bool = True

    def subscribers(self, topic: str) -> list[str]:
        return [role for role, topics in self.subscriptions.items() if topic in topics]

    def directory(self) -> dict[str, list[str]]:
        """Topic -> its subscribers, in the order topics are first named."""
        out: dict[str, list[str]] = {}
        for role, topics in self.subscriptions.items():
            for t in topics:
                out.setdefault(t, []).append(role)
        return out


def derived(team: Team, initial: str) -> dict[str, list[str]]:
    """The default: a chain with fan-out. Role i handles the topics of roles i-2 and i-1 (a role's topic is its
    main capability; before the first role comes the initial topic), so every event goes to two roles."""
    topics = [initial, initial, *(r.capabilities[0] for r in team.roles)]
    return {r.name: list(dict.fromkeys(topics[i:i + 2])) for i, r in enumerate(team.roles)}


class EventInput(TypedDict):
    task: str
    """What happened: published on the initial topic."""


class EventOutput(TypedDict, total=False):
    status: EventStatus
    result: str | None
    """Says why the run stopped (quiet or max_events); the state's `stop` holds it as a value."""
    handled: dict[str, list[str]]
    dead_letters: list[DeadLetter]


class EventState(TypedDict, total=False):
    """Checkpointed state: bounded by `max_events`, whatever the number of rounds."""

    task: str
    round: int
    pending: dict[str, EventRecord]
    inflight: dict[str, InFlight]
    reports: Annotated[dict[str, Report], merge_reports]
    seqs: dict[str, int]
    """The last sequence number given per topic."""
    published: int
    dropped: int
    looped: int
    """Publications dropped because they repeated an event of their own cause chain."""
    handled: dict[str, list[str]]
    """Topic -> ids of its events delivered to every subscriber, in order."""
    dead_letters: list[DeadLetter]
    stop: StopReason
    status: EventStatus
    result: str | None
