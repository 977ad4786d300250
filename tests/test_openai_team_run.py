"""A whole team run on the real-model path: the CLI, `--model openai:...`, ChatOpenAI, real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TODO_TASK, cli_env, in_memory
from openai_server import OpenAICompatServer


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as s:
        yield s


def _cli(db: Path, server: OpenAICompatServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a new process, its OpenAI client pointed at the local server."""
    env = {**cli_env(db), "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.url}
    return subprocess.run([sys.executable, "-m", "graphs.cli", *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_team_run_through_an_openai_compatible_server(db: Path, server: OpenAICompatServer) -> None:
    out = _cli(db, server, "run", "hierarchical", TODO_TASK, "--thread", "http", "--model", "openai:gpt-test",
               "--model", "planner=openai:planner-large", "--auto-approve")
    assert out.returncode == 0, out.stderr
    assert "status: completed" in out.stdout
    assert "offline model" not in out.stdout.split("checkpoints:")[0], "the offline label must not claim this run"

    bodies = list(server.requests)
    models = {b["model"] for b in bodies}
    assert models == {"gpt-test", "planner-large"}, "per-role mapping: a strong planner, a default for the rest"
    planner = [b for b in bodies if b["model"] == "planner-large"]
    assert len(planner) == 1 and planner[0]["response_format"]["type"] == "json_schema"
    reviews = [b for b in bodies if b.get("response_format", {}).get("json_schema", {}).get("name") == "ReviewVerdict"]
    workers = [b for b in bodies if any(t["function"]["name"] == "write_file" for t in b.get("tools", []))]
    assert len(reviews) >= 6 and len(workers) >= 10  # 5 subtasks, a review round-trip, two turns per worker

    # Scoped context: a worker's brief holds its own subtask and only its direct dependencies.
    shown = json.loads(_cli(db, server, "show", "http", "--json").stdout)
    deps = {t["id"]: set(t["depends_on"]) for t in shown["plan"]["tasks"]}
    for body in workers:
        ask = next(m["content"] for m in body["messages"] if m["role"] == "user")
        brief = json.loads(ask.split("```json")[1].split("```")[0])
        assert {i["task_id"] for i in brief["inputs"]} == deps[brief["subtask"]["id"]]
        assert "tasks" not in brief and "plan" not in brief
    assert shown["status"] == "completed" and shown["result"]


# langchain-openai model_dumps the SDK's final ParsedChatCompletion while streaming (langchain-ai/langchain#35538).
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_graph_streamed_in_messages_mode_streams_from_the_server(server: OpenAICompatServer, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """In `messages` mode every ChatOpenAI call streams (SSE); tokens and usage still arrive."""
    import asyncio

    from state.context import RunContext

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ctx = RunContext(model="openai:gpt-test", base_url=server.url, workspace_root=str(tmp_path))
    graph = in_memory()
    config = {"configurable": {"thread_id": "stream"}}

    async def run() -> list:
        return [chunk async for chunk in graph.astream({"task": TODO_TASK}, config, context=ctx,
                                                        stream_mode="messages")]

    chunks = asyncio.run(run())
    streamed_by = {meta["langgraph_node"] for _, meta in chunks}
    assert {"plan", "work", "review"} <= streamed_by
    assert any(getattr(msg, "usage_metadata", None) for msg, _ in chunks), "no usage arrived while streaming"
    assert server.requests and all(body["stream"] is True for body in server.requests)
    assert asyncio.run(graph.aget_state(config)).interrupts, "the run did not reach the approval gate"


def test_json_tool_calling_through_an_openai_compatible_server(db: Path, server: OpenAICompatServer) -> None:
    """`--tool-calling json` on the real-model path: no request offers tools; workers deliver through JsonTurn."""
    out = _cli(db, server, "run", "hierarchical", TODO_TASK, "--thread", "json", "--model", "openai:small-local",
               "--tool-calling", "json", "--auto-approve")
    assert out.returncode == 0, out.stderr
    bodies = list(server.requests)
    assert not any(b.get("tools") and any(t["function"]["name"] == "write_file" for t in b["tools"]) for b in bodies)
    turns = [b for b in bodies if b.get("response_format", {}).get("json_schema", {}).get("name") == "JsonTurn"]
    assert len(turns) >= 5
    shown = json.loads(_cli(db, server, "show", "json", "--json").stdout)
    assert all(r["status"] == "done" and r["artifact"] for r in shown["board"].values())
