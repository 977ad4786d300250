"""The swarm end to end on the offline model: hand-offs (to several at once, and back), loops broken, memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TODO_TASK, cli_env, with_runner
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from graphs.runtime import Runner, serializer
from graphs.swarm import build
from state.context import RunContext
from state.protocol import AnyMessage, Kind
from state.roles import TeamError
from tools.journal import read_messages

PARALLEL = "Design the backend and the tests for todo management"  # architect's, backend's and qa's words
WITH_QA = "Design the API and the tests for todo management"  # architect's and qa's
BACKEND = "Implement the backend for todo management"  # backend's only
FOLLOW_UP = "Add paging to the list endpoint"  # nobody's words: whoever has the conversation does it


def swarm(**settings: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    return build(team="software", **settings).compile(checkpointer=InMemorySaver(serde=serializer()),
                                                      store=InMemoryStore())


def turns(graph: Any, ctx: RunContext, thread: str, *tasks: str) -> tuple[list[dict[str, Any]], list[AnyMessage]]:
    async def go() -> tuple[list[dict[str, Any]], list[AnyMessage]]:
        config = {"configurable": {"thread_id": thread}}
        outs = [await graph.ainvoke({"task": t}, config, context=ctx) for t in tasks]
        return outs, await read_messages(graph.store, thread)

    return asyncio.run(go())


def handoffs(messages: list[AnyMessage]) -> list[tuple[str, str, str]]:
    return [(m.sender, m.recipient, m.title) for m in messages if m.kind == Kind.TASK_ASSIGN and m.sender != "user"]


def returned(messages: list[AnyMessage]) -> list[tuple[str, str]]:
    return [(m.sender, m.recipient) for m in messages if m.kind == Kind.PROGRESS and m.note.startswith("returned")]


def test_a_parallel_hand_off_brings_every_result_back(ctx: RunContext) -> None:
    graph = swarm()
    [out], messages = turns(graph, ctx, "par", PARALLEL)
    assert out["status"] == "completed" and out["chain"] == ["architect", "backend+qa"]
    assert [(s, r) for s, r, _ in handoffs(messages)] == [("architect", "backend"), ("architect", "qa")]
    assert all("hand-off 1 (come back)" in t for _, _, t in handoffs(messages))  # one hand-off, two peers at once
    assert sorted(returned(messages)) == [("backend", "architect"), ("qa", "architect")]
    kinds = [(m.kind, m.sender) for m in messages]
    back = kinds.index((Kind.CHECKPOINT, "architect"))  # "results back": after both returns, before the answer
    assert back > max(i for i, m in enumerate(messages) if m.kind == Kind.PROGRESS)
    assert "backend gave back" in out["result"] and "qa gave back" in out["result"]
    assert out["active"] == "architect"  # it handed off, got every result, and answered
    files = sorted(p.name for p in (Path(ctx.workspace_root) / "par").iterdir())
    assert files == ["T1-architect.md", "T1-backend.py", "T1-qa.py"]
    state = asyncio.run(graph.aget_state({"configurable": {"thread_id": "par"}})).values
    assert state["frames"] == [] and state["returns"] == []  # nothing left to grow in the checkpoints


def test_a_peer_returns_control_and_the_same_turn_tool_output_is_kept(ctx: RunContext) -> None:
    [out], messages = turns(swarm(), ctx, "ret", WITH_QA)
    [(sender, to, title)] = handoffs(messages)
    assert (sender, to) == ("architect", "qa") and "(come back)" in title
    order = [(m.kind, m.sender) for m in messages]
    # architect wrote its part in the reply that handed off: the file and its tool output survive the hand-off
    assert order.index((Kind.ARTIFACT, "architect")) < order.index((Kind.TASK_ASSIGN, "architect"))
    assert returned(messages) == [("qa", "architect")]
    answered = next(m for m in messages if m.kind == Kind.CHECKPOINT and m.label == "answered")
    assert answered.sender == "architect"  # control came back to the agent that handed off
    assert "wrote" in out["result"] and "bytes to T1-architect.md" in out["result"]  # the kept tool output
    assert "qa gave back: qa did the testing part (T1-qa.py)" in out["result"]
    assert out["active"] == "architect" and out["chain"] == ["architect", "qa"]


def test_a_two_agent_loop_is_broken_with_the_chain_journaled(ctx: RunContext) -> None:
    ctx.fail = {"backend": "disagree"}  # backend says "not mine" and hands the work back
    [out], messages = turns(swarm(), ctx, "loop", BACKEND)
    assert out["status"] == "escalated"
    assert out["chain"] == ["architect", "backend", "architect", "backend"]
    assert [(s, r) for s, r, _ in handoffs(messages)] == [("architect", "backend"), ("backend", "architect")]
    [blocker] = [m for m in messages if m.kind == Kind.BLOCKER]
    assert blocker.reason == ("circuit breaker: architect and backend keep handing the work back and forth; "
                              "chain: architect -> backend -> architect -> backend")
    [loop] = [m for m in messages if m.kind == Kind.CHECKPOINT and m.label == "loop detected"]
    assert messages.index(loop) == messages.index(blocker) - 1 and loop.sender == "architect"
    assert loop.note.startswith("architect and backend keep handing the work back and forth, so another hand-off (of "
                                "at most 8) would not get the work done")
    assert "Escalated to a person" in out["result"] and out["active"] == "architect"
    assert not any(m.kind == Kind.ARTIFACT for m in messages)  # broken early, not spun to the recursion limit


CIRCLE = ["architect", "backend", "qa"]


@pytest.mark.parametrize("stop_on_repeat", [True, False])
def test_a_hand_off_that_repeats_an_earlier_one_trips_the_breaker(ctx: RunContext, stop_on_repeat: bool) -> None:
    """Three peers that each confidently say "clearly yours" pass the same request round a circle, which no pair
    shows: the fourth hand-off repeats the first, so the breaker trips there, not at max_handoffs (8)."""
    ctx.fail = dict.fromkeys(CIRCLE, "lie")
    graph = swarm(peers=CIRCLE, stop_on_repeat=stop_on_repeat)
    [out], messages = turns(graph, ctx, "circle", FOLLOW_UP)
    assert out["status"] == "escalated" and out["result"].startswith("Escalated to a person")
    moves = [(s, r) for s, r, _ in handoffs(messages)]
    [blocker] = [m for m in messages if m.kind == Kind.BLOCKER]
    loops = [m for m in messages if m.kind == Kind.CHECKPOINT and m.label == "loop detected"]
    if not stop_on_repeat:  # only the bound stops it: 8 hand-offs round the circle, the 9th trips the breaker
        assert len(moves) == 8 and len(out["chain"]) == 10 and not loops
        assert "more than max_handoffs (8) hand-offs" in blocker.reason
        return
    assert out["chain"] == ["architect", "backend", "qa", "architect", "backend"]
    assert moves == [("architect", "backend"), ("backend", "qa"), ("qa", "architect")]  # the 4th is not carried out
    why = "hand-off 4 repeats hand-off 1: architect hands backend the same request again"
    assert [m.note.split(", so ")[0] for m in loops] == [why]
    assert blocker.reason == f"circuit breaker: {why}; chain: architect -> backend -> qa -> architect -> backend"
    state = asyncio.run(graph.aget_state({"configurable": {"thread_id": "circle"}})).values
    assert len(state["handoffs"]) == 3 and all(len(h) == 12 for h in state["handoffs"])  # short signatures only


def test_max_handoffs_bounds_a_chain(ctx: RunContext) -> None:
    ctx.fail = {"backend": "disagree"}
    [out], messages = turns(swarm(max_handoffs=1), ctx, "bound", BACKEND)
    assert out["status"] == "escalated" and out["chain"] == ["architect", "backend", "architect"]
    [blocker] = [m for m in messages if m.kind == Kind.BLOCKER]
    assert "more than max_handoffs (1) hand-offs; chain: architect -> backend -> architect" in blocker.reason


def test_the_active_agent_is_remembered_across_turns(ctx: RunContext) -> None:
    outs, messages = turns(swarm(), ctx, "two", BACKEND, FOLLOW_UP)
    assert [o["active"] for o in outs] == ["backend", "backend"]
    assert [o["chain"] for o in outs] == [["architect", "backend"], ["backend"]]  # turn 2 starts at backend
    starts = [m.title for m in messages if m.kind == Kind.TASK_ASSIGN and m.sender == "user"]
    assert starts == [f"turn 1 starts with the entry peer architect: {BACKEND}",
                      f"turn 2 starts with the remembered active agent backend: {FOLLOW_UP}"]
    # without the memory the follow-up (nobody's words) would be done by the entry peer, architect
    [fresh], _ = turns(swarm(), ctx, "fresh", FOLLOW_UP)
    assert fresh["active"] == "architect"


class Parent(TypedDict, total=False):
    task: str
    result: str
    turns: int


async def _count(state: Parent) -> dict[str, int]:
    return {"turns": (state.get("turns") or 0) + 1}


@pytest.mark.parametrize(("stateful", "starts"), [(True, ["architect", "backend"]), (None, ["architect", "architect"])])
def test_the_active_agent_is_remembered_as_a_subgraph(ctx: RunContext, stateful: bool | None, starts: list[str]
                                                      ) -> None:
    """Compiled with checkpointer=True the swarm keeps its state per thread inside a parent graph; without it
    (LangGraph's default for subgraphs) each parent turn would start afresh at the entry peer."""
    parent = StateGraph(Parent)
    parent.add_node("swarm", build(team="software").compile(checkpointer=stateful, name="swarm"))
    parent.add_node("count", _count)
    parent.add_edge(START, "swarm")
    parent.add_edge("swarm", "count")
    parent.add_edge("count", END)
    graph = parent.compile(checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    outs, messages = turns(graph, ctx, "parent", BACKEND, FOLLOW_UP)
    assert [o["turns"] for o in outs] == [1, 2]  # two turns of the parent graph
    assert [m.recipient for m in messages if m.kind == Kind.TASK_ASSIGN and m.sender == "user"] == starts
    assert outs[1]["result"].startswith(f"{starts[1]} did the")


@pytest.mark.parametrize(("task", "mode", "why"), [
    (PARALLEL, "raise", "InjectedFailure"),  # a parallel helper's model raises past its retries
    (WITH_QA, "malformed", "no usable answer in 4 model turns"),  # a peer handed work answers garbage
])
def test_a_failing_peer_costs_its_part_only(ctx: RunContext, task: str, mode: str, why: str) -> None:
    ctx.fail = {"qa": mode}
    [out], messages = turns(swarm(), ctx, "fail", task)
    assert out["status"] == "completed" and out["active"] == "architect"
    [blocker] = [m for m in messages if m.kind == Kind.BLOCKER]
    assert (blocker.sender, blocker.recipient) == ("qa", "architect") and why in blocker.reason
    assert "qa failed:" in out["result"] and "architect did the design part" in out["result"]


def test_a_failing_agent_with_nobody_to_return_to_fails_the_turn_with_a_reason(ctx: RunContext) -> None:
    ctx.fail = {"backend": "malformed"}
    [out], messages = turns(swarm(), ctx, "fail", BACKEND)
    assert out["status"] == "failed" and out["active"] == "architect"  # the next turn starts where this one did
    [blocker] = [m for m in messages if m.kind == Kind.BLOCKER]
    assert blocker.sender == "backend" and blocker.reason == "failed: no usable answer in 4 model turns"
    assert out["result"] == "backend failed: no usable answer in 4 model turns"


@pytest.mark.parametrize(("settings", "error"), [
    ({"peers": ["architect", "pilot"]}, "no role 'pilot' in team 'software'"),
    ({"peers": ["qa"]}, "name two or more different roles"),
    ({"peers": ["qa", "backend"], "entry": "architect"}, "entry 'architect' is not a peer (peers: qa, backend)"),
    ({"max_handoffs": 0}, "swarm.build(max_handoffs=0): Input should be greater than or equal to 1"),
])
def test_bad_settings_fail_the_build_with_one_line(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(TeamError) as info:
        build(team="software", **settings)
    assert error in str(info.value) and "\n" not in str(info.value)


def test_the_cli_runs_the_default_team(db: Path, troupe: Any) -> None:
    run = troupe("run", "swarm", TODO_TASK, "--thread", "todo")
    assert run.returncode == 0, run.stderr
    assert "status: completed" in run.stdout
    shown = json.loads(troupe("show", "todo", "--json").stdout)
    assert shown["state"]["active"] == "architect" and shown["state"]["chain"] == ["architect"]
    assert [m["kind"] for m in shown["messages"]] == ["TASK_ASSIGN", "ARTIFACT", "CHECKPOINT"]

    async def outcome(runner: Runner) -> str:
        return (await runner.outcome(await runner.info("todo"))).status

    assert with_runner(db, outcome) == "completed"


def test_a_killed_swarm_resumes_at_its_hand_off_without_redoing_it(db: Path, tmp_path: Path, troupe: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "swarm", PARALLEL, "--thread", "kill", "--latency", "0.3",
         "--workspace-root", str(tmp_path / "ws")],
        env=cli_env(db), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any((tmp_path / "ws" / "kill" / f"T1-{peer}.py").exists() for peer in ("backend", "qa")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached its parallel hand-off"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # inside the helpers' super-step: the hand-off before it is saved
    proc.wait()
    assert json.loads(troupe("show", "kill", "--json").stdout)["status"] == "stopped"

    resumed = troupe("resume", "kill")
    assert resumed.returncode == 0 and "status: completed" in resumed.stdout, resumed.stderr
    after = json.loads(troupe("show", "kill", "--json").stdout)
    assigned = [(m["sender"], m["recipient"]) for m in after["messages"] if m["kind"] == "TASK_ASSIGN"]
    assert assigned == [("user", "architect"), ("architect", "backend"), ("architect", "qa")]  # not redone
    assert "backend gave back" in after["state"]["result"] and "qa gave back" in after["state"]["result"]


def test_a_brought_agent_does_its_part_and_gives_it_back(ctx: RunContext) -> None:
    qa = create_agent(GenericFakeChatModel(messages=iter([AIMessage("Tests: list, create, 404 on a missing todo.")])),
                      tools=[], name="qa")
    graph = build(team="software", agents=[qa]).compile(checkpointer=InMemorySaver(serde=serializer()),
                                                        store=InMemoryStore())
    [out], messages = turns(graph, ctx, "brought", WITH_QA)
    assert returned(messages) == [("qa", "architect")]
    assert "qa gave back: Tests: list, create, 404 on a missing todo." in out["result"]
    assert (Path(ctx.workspace_root) / "brought" / "T1-qa.py").read_text().startswith("Tests: list, create")
