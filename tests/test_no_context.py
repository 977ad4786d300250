"""A pattern's graph invoked with plain LangGraph calls and no `context=` runs on the default settings (the offline
model, workspaces under ./workspaces), as a newcomer in a notebook would call it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from graphs.registry import PATTERNS, builder
from graphs.runtime import serializer


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_graph_invoked_without_context_runs_on_the_defaults(pattern: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    graph = builder(pattern)().compile(checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    config = {"configurable": {"thread_id": "plain"}}
    out = asyncio.run(graph.ainvoke({"task": "Build a REST API for todo management"}, config))
    assert out, "the run returned nothing"
    snapshot = asyncio.run(graph.aget_state(config))
    assert snapshot.interrupts or not snapshot.next, "the run stopped somewhere other than a gate or its end"
    if pattern != "consensus":  # voters answer in the state: no files
        assert (tmp_path / "workspaces" / "plain").is_dir(), "its files are not under ./workspaces"
