"""Workers on models without tool calling: a model that writes its tool calls as text is read and switched to JSON
(`auto`), a role set to `json` never gets native tools, and `native` never switches."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import TODO_TASK
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda

from graphs.runtime import Runner
from nodes.json_tools import CATALOGUE, RESULTS, text_tool_calls
from nodes.teams import load_team
from nodes.worker import _ToolLoop
from state.context import RunContext
from state.protocol import Kind
from state.roles import ModelSettings
from tools.workspace import WORKSPACE_TOOLS, workspace_config


def _run(db: Path, ctx: RunContext, **kw):
    async def go():
        async with Runner.open(db) as runner:
            out = await runner.start("hierarchical", TODO_TASK, ctx, thread_id="tc", **kw)
            return out, await runner.journal("tc")

    return asyncio.run(go())


def test_a_model_that_writes_tool_calls_as_text_finishes_through_the_json_fallback(db: Path, ctx: RunContext,
                                                                                  prompts) -> None:
    ctx.fail = {"backend": "no-tools"}
    out, journal = _run(db, ctx)
    assert out.status == "awaiting_approval"
    board = out.values["board"]
    assert all(r.status.value == "done" for r in board.values())
    [said] = [m for m in journal if m.kind == Kind.CHECKPOINT and m.label == "tool calling: json"]
    assert said.sender == "backend" and "wrote its tool call as text" in said.note
    backend = next(t for t in out.values["plan"].tasks if t.assignee == "backend")
    assert (out.info.workspace / board[backend.id].artifact).read_text().strip()
    asked_json = [text for agent, text in prompts if agent == "backend" and CATALOGUE in text]
    assert asked_json, "the backend's later turns are asked as JSON"
    assert not any(CATALOGUE in text for agent, text in prompts if agent != "backend")


def test_native_never_switches_and_json_never_offers_native_tools(db: Path, ctx: RunContext, prompts) -> None:
    ctx.fail, ctx.tool_calling = {"backend": "no-tools"}, "native"
    out, journal = _run(db, ctx)
    assert not any(m.kind == Kind.CHECKPOINT and m.label == "tool calling: json" for m in journal)
    first_backend_failure = next(m for m in journal if m.kind == Kind.PROGRESS and m.sender == "backend"
                                 and m.note.startswith("failed"))
    assert "wrote no artifact" in first_backend_failure.note

    team = load_team("software")
    writer = team.role("tech_writer")
    writer.model_settings = ModelSettings(tool_calling="json")
    prompts.clear()
    ctx.fail, ctx.tool_calling = {}, "auto"
    out, journal = _run(db.with_name("json.sqlite"), ctx, team=team)
    assert out.status == "awaiting_approval"
    assert all(r.status.value == "done" for r in out.values["board"].values())
    writer_prompts = [text for agent, text in prompts if agent == "tech_writer"]
    assert writer_prompts and all(CATALOGUE in text for text in writer_prompts)
    assert not any(m.kind == Kind.CHECKPOINT and m.label == "tool calling: json" for m in journal)


def test_tool_calls_written_as_text_are_read_in_the_shapes_small_models_use() -> None:
    known = {"write_file", "read_file"}
    assert [c["args"] for c in text_tool_calls('{"name": "write_file", "arguments": {"path": "a.md", "content": "x"}}',
                                               known)] == [{"path": "a.md", "content": "x"}]
    fenced = 'I will write it.\n```json\n[{"name": "read_file", "parameters": {"path": "T1.md"}}]\n```'
    assert [(c["name"], c["args"]) for c in text_tool_calls(fenced, known)] == [("read_file", {"path": "T1.md"})]
    tagged = '<tool_call>{"name": "write_file", "arguments": "{\\"path\\": \\"b.md\\", \\"content\\": \\"y\\"}"}' \
             '</tool_call>'
    assert [c["args"]["path"] for c in text_tool_calls(tagged, known)] == ["b.md"]
    assert text_tool_calls('{"name": "rm_rf", "arguments": {}} and {broken', known) == []
    assert text_tool_calls("Here is the design: {resources: todo}", known) == []


def test_the_cli_takes_tool_calling(troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--tool-calling", "json", "--latency", "0", "--quiet",
                 "--fail", "qa=no-tools", "--auto-approve")
    assert out.returncode == 0, out.stderr
    bad = troupe("run", "hierarchical", TODO_TASK, "--tool-calling", "sometimes")
    assert bad.returncode == 2 and "invalid choice: 'sometimes'" in bad.stderr


class _Prose:
    """A model that answers a tool-calling request in prose, and does the work when asked for JSON: it reads its
    input first, then delivers."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def bind_tools(self, tools):  # type: ignore[no-untyped-def]
        return RunnableLambda(lambda _: (self.asked.append("native"), AIMessage("Sure, I will write it."))[1])

    def with_structured_output(self, schema):  # type: ignore[no-untyped-def]
        def turn(messages):  # type: ignore[no-untyped-def]
            self.asked.append("json")
            results = [m.text for m in messages if isinstance(m, HumanMessage) and m.text.startswith(RESULTS)]
            if results:
                assert "the contract" in results[0]
                return {"artifact": "# Design\nper the contract\n", "summary": "Wrote the design."}
            return {"tool_requests": [{"tool": "read_file", "args": {"path": "T0.md"}}]}

        return RunnableLambda(turn)


def test_a_model_that_answers_in_prose_is_asked_again_as_json(tmp_path: Path) -> None:
    (tmp_path / "T0.md").write_text("the contract")
    chat = _Prose()
    loop = _ToolLoop(chat, {t.name: t for t in WORKSPACE_TOOLS}, "auto", workspace_config(tmp_path), "T1.md")
    written, summary, _ = asyncio.run(loop.run([HumanMessage("Write T1.md")], 4))
    assert list(written) == ["T1.md"] and (tmp_path / "T1.md").read_text() == "# Design\nper the contract\n"
    assert summary == "Wrote the design." and chat.asked == ["native", "json", "json"]
    assert loop.fell_back == "answered without calling a tool or writing its artifact"
