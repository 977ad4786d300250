"""The orchestration patterns troupe can run, by name."""

from __future__ import annotations

from collections.abc import Callable

from langgraph.graph import StateGraph

from graphs import hierarchical

PATTERNS: dict[str, tuple[Callable[..., StateGraph], str]] = {
    "hierarchical": (hierarchical.build, "supervisor plans; specialists work in parallel; review loop; approval gate"),
}


def builder(name: str) -> Callable[..., StateGraph]:
    try:
        return PATTERNS[name][0]
    except KeyError:
        raise LookupError(f"unknown pattern {name!r}; known: {', '.join(PATTERNS)}") from None
