"""The orchestration patterns troupe can run, by name, with when to pick each.

Modules are imported when a pattern is used, so listing patterns (or `troupe --help`) loads no graph.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langgraph.graph import StateGraph

PATTERNS: dict[str, str] = {
    "hierarchical": "a task that decomposes: a supervisor plans, specialists work in parallel, review, approval",
    "sequential": "clear stages: a pipeline where a checking stage can send work back to an earlier one",
    "parallel": "many similar, independent sub-problems: fan out under a cap and a time limit, then synthesize",
    "router": "heterogeneous requests: classify, send to one specialist, second opinion or a person when unsure",
    "debate": "a question that needs an agreed answer: debaters argue over rounds, a judge decides",
    "consensus": "an answer that must survive faulty agents: independent answers, decided by a voting rule",
    "swarm": "no central controller: peers hand work to each other (several at once, and back), loops broken",
    "event_driven": "work that reacts to events: agents subscribe to topics, events fan out until all is quiet",
    "teams": "a task too big for one team: an orchestrator delegates to teams of teams, results roll up",
}
"""Pattern name -> what it is for and when to pick it (`troupe patterns`)."""


def builder(name: str) -> Callable[..., StateGraph[Any, Any, Any, Any]]:
    """The `build` function of pattern `name` (its module in `graphs/`)."""
    if name not in PATTERNS:
        raise LookupError(f"unknown pattern {name!r}; known: {', '.join(PATTERNS)}")
    build: Callable[..., StateGraph[Any, Any, Any, Any]] = importlib.import_module(f"graphs.{name}").build
    return build
