"""The swarm pattern's state and settings: who is active, the hand-off chain, each agent's scoped channel.

The checkpointed state holds the active agent (remembered across turns of a thread), this turn's hand-off
chain (at most `max_handoffs + 1` names) and a short signature of each of its hand-offs (loop detection), the
stack of frames (one per agent that handed work on and wants
it back: the hand-off payload, the outputs of its own tool calls, the results peers returned) and the
final result. Transcripts never enter the state: each agent's turn sees its frame only, the journal keeps
the record. Only plain dicts (TypedDicts) and str appear in checkpoints: no allow-list entry is needed.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic builds schemas (Studio's input form) only from this one on 3.11

from state.loops import STOP_ON_REPEAT
from state.roles import Team, TeamError

SwarmStatus = Literal["working", "completed", "escalated", "failed"]

TRANSFER_PREFIX = "transfer_to_"
"""`transfer_to_<peer>`: hand the work (or a part of it) to a peer."""
RETURN_PREFIX = "return_to_"
"""`return_to_<caller>`: give the result back to the agent that handed the work over."""
HANDOFF_PREFIXES = (TRANSFER_PREFIX, RETURN_PREFIX)
KEPT_OUTPUTS = 8
"""Tool outputs a frame keeps (the latest), each cut to KEPT_CHARS."""
KEPT_CHARS = 300


class ToolOutput(TypedDict):
    """What one of an agent's own tool calls answered; kept when the same turn also handed off."""

    tool: str
    output: str


class PeerResult(TypedDict):
    """What a peer gave back to the agent that handed it work."""

    agent: str
    result: str
    files: list[str]
    ok: bool


class Frame(TypedDict):
    """One agent's scoped channel: what it was handed, by whom, and what it has so far."""

    agent: str
    request: str
    """The hand-off payload (the user's task for the agent that owns the turn)."""
    caller: str | None
    """The agent that wants the result back (None: this agent answers the user)."""
    kept: list[ToolOutput]
    results: list[PeerResult]


class HelperOrder(TypedDict):
    """A `Send` payload: one of several peers handed a part of the work at once."""

    agent: str
    task: str
    request: str
    caller: str
    reason: str
    turn: int


class Transfer(BaseModel):
    """Hand work to the peer this tool is named after."""

    request: str = Field(description="What the peer should do: the whole request, or the part that is theirs.")
    reason: str = Field(description="Why this peer: the skills of theirs the request needs.")
    come_back: bool = Field(default=False, description="True to get their result back and carry on yourself.")


class GiveBack(BaseModel):
    """Give your result back to the agent that handed you the work."""

    result: str = Field(description="What you did for them, and where (files).")


class SwarmInput(TypedDict):
    task: str


class SwarmOutput(TypedDict, total=False):
    status: SwarmStatus
    result: str | None
    active: str | None
    chain: list[str]


class SwarmState(TypedDict, total=False):
    """Checkpointed state; small and bounded (frames <= max_handoffs + 1, kept <= KEPT_OUTPUTS each)."""

    task: str
    turn: int
    active: str | None
    """The agent that has the conversation: where the next turn of the thread starts."""
    chain: list[str]
    """This turn's hand-off chain: the agent it started with, then each hand-off's target(s) ('qa+backend')."""
    handoffs: list[str]
    """The signature of each of this turn's hand-offs (who, to whom, which request; `state.loops`), in order."""
    frames: list[Frame]
    returns: Annotated[list[PeerResult], operator.add]
    """Results of peers handed work in parallel (their join); emptied by the agent that reads them."""
    status: SwarmStatus
    result: str | None


class SwarmSettings(BaseModel):
    """The team file's `patterns.swarm` section, or `build()` keywords."""

    model_config = ConfigDict(extra="forbid")

    peers: list[str] | None = Field(default=None, description="The roles that take part (default: every role).")
    entry: str | None = Field(default=None, description="The peer that takes a thread's first turn (default: the "
                                                        "first peer).")
    max_handoffs: int = Field(default=8, ge=1, le=50, description="Hand-offs one turn may make before the circuit "
                                                                  "breaker stops it.")
    stop_on_repeat: bool = Field(default=True, description=STOP_ON_REPEAT + " Here: a hand-off that repeats one of "
                                 "the turn's earlier hand-offs (the same agent, peers and request), or a pair handing "
                                 "the work back and forth, trips the circuit breaker at once.")


@dataclass(frozen=True)
class Swarm:
    """The settings resolved against a team: the peers (with their keywords), the entry, the chain bound."""

    peers: dict[str, tuple[str, ...]]
    entry: str
    max_handoffs: int
    stop_on_repeat: bool = True

    @classmethod
    def of(cls, team: Team, settings: SwarmSettings) -> Swarm:
        roles = [r.name for r in team.roles]
        names = settings.peers if settings.peers is not None else roles
        for i, name in enumerate(names):
            if name not in roles:
                raise TeamError(f"{team.where('patterns', 'swarm', 'peers', i)}: no role {name!r} in team "
                                f"{team.name!r} (roles: {', '.join(roles)})")
        if len(set(names)) < 2 or len(set(names)) != len(names):
            raise TeamError(f"{team.where('patterns', 'swarm', 'peers')}: name two or more different roles")
        entry = settings.entry or names[0]
        if entry not in names:
            raise TeamError(f"{team.where('patterns', 'swarm', 'entry')}: entry {entry!r} is not a peer "
                            f"(peers: {', '.join(names)})")
        peers = {n: tuple(dict.fromkeys([*team.role(n).capabilities, n.replace("_", " ")])) for n in names}
        return cls(peers=peers, entry=entry, max_handoffs=settings.max_handoffs,
                   stop_on_repeat=settings.stop_on_repeat)


def loop_in(chain: list[str]) -> list[str] | None:
    """The repeating pair at the chain's end (A -> B -> A -> B), or None."""
    if len(chain) >= 4:
        a, b, c, d = chain[-4:]
        if a == c and b == d and a != b:
            return [a, b]
    return None
