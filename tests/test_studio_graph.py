"""What langgraph.json points Studio at: module-level graphs compiled without a checkpointer."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from graphs.registry import PATTERNS

ROOT = Path(__file__).resolve().parents[1]


def test_langgraph_json_graphs_load_without_their_own_checkpointer() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert config["graphs"], "no graphs declared"
    for name, ref in config["graphs"].items():
        path, _, attr = ref.partition(":")
        module = importlib.import_module(Path(path).with_suffix("").as_posix().lstrip("./").replace("/", "."))
        graph = getattr(module, attr)
        assert graph.name == name
        assert graph.checkpointer is None, "langgraph dev refuses graphs that bring their own checkpointer"


def test_every_route_of_the_hierarchical_graph_is_drawn() -> None:
    from graphs.hierarchical import graph

    mermaid = graph.get_graph().draw_mermaid()
    for edge in ("dispatch -.-> work", "dispatch -.-> review", "dispatch -.-> check", "check -.-> approve",
                 "check -.-> dispatch", "approve -.-> synthesize", "approve -.-> __end__", "work --> dispatch",
                 "review --> dispatch"):
        assert edge in mermaid


def test_studio_serves_every_pattern() -> None:
    assert list(json.loads((ROOT / "langgraph.json").read_text())["graphs"]) == list(PATTERNS)


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_studio_gets_the_narrow_input_and_output_schemas(pattern: str) -> None:
    """What Studio's input form is built from: a task in; status, result and the pattern's own record out."""
    graph = importlib.import_module(f"graphs.{pattern}").graph
    schema = graph.get_input_jsonschema()
    assert schema["required"] == ["task"] and list(schema["properties"]) == ["task"]
    out = set(graph.get_output_jsonschema()["properties"])
    assert {"status", "result"} < out and len(out) <= 4, out
