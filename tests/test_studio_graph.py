"""What langgraph.json points Studio at: module-level graphs compiled without a checkpointer, one per pattern and
per recipe, whose checkpoints any LangGraph server can load (`state.channels`)."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, Overwrite, Send

from graphs.registry import PATTERNS, builder
from graphs.runtime import recipes, serializer
from nodes.teams import BUILT_IN
from state.context import RunContext

ROOT = Path(__file__).resolve().parents[1]
GRAPHS: dict[str, str] = json.loads((ROOT / "langgraph.json").read_text())["graphs"]


def load(name: str) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The graph langgraph.json names `name`, imported as the server imports it."""
    path, _, attr = GRAPHS[name].partition(":")
    graph: CompiledStateGraph[Any, Any, Any, Any] = getattr(
        importlib.import_module(Path(path).with_suffix("").as_posix().lstrip("./").replace("/", ".")), attr)
    return graph


def plain(value: Any) -> bool:
    """JSON only (a pending `Send` carrying JSON): what a server that loads none of our classes reads back as it is."""
    if isinstance(value, Send):
        return plain(value.arg)
    if isinstance(value, Overwrite):
        return plain(value.value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_langgraph_json_graphs_load_without_their_own_checkpointer() -> None:
    assert GRAPHS, "no graphs declared"
    for name in GRAPHS:
        graph = load(name)
        assert graph.name == name
        assert graph.checkpointer is None, "langgraph dev refuses graphs that bring their own checkpointer"


def test_every_route_of_the_hierarchical_graph_is_drawn() -> None:
    from graphs.hierarchical import graph

    mermaid = graph.get_graph().draw_mermaid()
    for edge in ("dispatch -.-> work", "dispatch -.-> review", "dispatch -.-> check", "check -.-> approve",
                 "check -.-> dispatch", "approve -.-> synthesize", "approve -.-> __end__", "work --> dispatch",
                 "review --> dispatch"):
        assert edge in mermaid


def test_studio_serves_every_pattern_and_every_recipe() -> None:
    shipped = [name for name in recipes() if (BUILT_IN / f"{name}.yaml").is_file()]
    assert list(GRAPHS) == [*PATTERNS, *shipped]


@pytest.mark.parametrize("name", list(GRAPHS))
def test_studio_gets_the_narrow_input_and_output_schemas(name: str) -> None:
    """What Studio's input form is built from: a task in; status, result and the pattern's own record out."""
    graph = load(name)
    schema = graph.get_input_jsonschema()
    assert schema["required"] == ["task"] and list(schema["properties"]) == ["task"]
    out = set(graph.get_output_jsonschema()["properties"])
    assert {"status", "result"} < out and len(out) <= 4, out


@pytest.mark.parametrize("name", list(GRAPHS))
def test_the_state_studio_shows_has_exactly_the_keys_of_the_state_schema(name: str) -> None:
    """The server shows a graph's channels as its state; a node's input schema would add its fields to them."""
    graph = load(name)
    schema = graph.builder.state_schema
    assert set(graph.stream_channels_list) == schema.__required_keys__ | schema.__optional_keys__


@pytest.mark.parametrize("pattern", PATTERNS)
def test_checkpoints_hold_plain_json_from_the_start_through_every_gate_to_the_end(pattern: str,
                                                                                  tmp_path: Path) -> None:
    """Read with a serializer that loads our classes, a checkpoint would show any model it held."""
    saver = InMemorySaver(serde=serializer())
    graph = builder(pattern)().compile(checkpointer=saver, store=InMemoryStore())
    config: Any = {"configurable": {"thread_id": "plain"}}
    ctx = RunContext(workspace_root=str(tmp_path))

    async def run() -> dict[str, Any]:
        out = await graph.ainvoke({"task": "Build a REST API for todo management"}, config, context=ctx)
        while "__interrupt__" in out:
            out = await graph.ainvoke(Command(resume={"approved": True}), config, context=ctx)
        return dict(out)

    assert asyncio.run(run())["status"] == "completed"
    checkpoints = list(saver.list(config))
    assert len(checkpoints) > 3
    assert [c.checkpoint["id"] for c in checkpoints if not plain(c.checkpoint["channel_values"])] == []
    # The plan and the board are checkpointed as their writes (`JsonDelta`): those are JSON too.
    writes = [(channel, value) for c in checkpoints for _, channel, value in c.pending_writes or []
              if channel in ("plan", "board")]
    assert [w for w in writes if not plain(w[1])] == []
    assert writes or "board" not in graph.channels
