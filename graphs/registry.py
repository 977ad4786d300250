"""The orchestration patterns troupe can run, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import StateGraph

from graphs import hierarchical

PATTERNS: dict[str, tuple[Callable[..., StateGraph[Any, Any, Any, Any]], str]] = {
    "hierarchical": (hierarchical.build, "supervisor plans; specialists work in parallel; review loop; approval gate"),
}


def builder(name: str) -> Callable[..., StateGraph[Any, Any, Any, Any]]:
    try:
        return PATTERNS[name][0]
    except KeyError:
        raise LookupError(f"unknown pattern {name!r}; known: {', '.join(PATTERNS)}") from None
