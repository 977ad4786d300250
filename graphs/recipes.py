"""The recipes as graphs for `langgraph dev` and Studio (langgraph.json): each recipe's pattern built with its team,
compiled without a checkpointer (the server attaches its own), named after the recipe. A recipe is a ready-made
team that names its pattern (`troupe recipes`); a new one is added here and to langgraph.json."""

from __future__ import annotations

from typing import Any

from langgraph.graph.state import CompiledStateGraph

from graphs.registry import builder
from graphs.runtime import resolve


def build(name: str) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Recipe `name` as `troupe run NAME` runs it: its pattern with its team."""
    pattern, team = resolve(name)
    return builder(pattern)(team=team).compile(name=name)


assistant = build("assistant")
content = build("content")
dev_team = build("dev-team")
investment = build("investment")
launch = build("launch")
meeting_prep = build("meeting-prep")
research_report = build("research-report")
support = build("support")
