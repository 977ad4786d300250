"""The hierarchical team end to end on the offline model: plan, parallel work, review loop, approval."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TODO_TASK, in_memory, with_runner
from langchain.agents import create_agent
from langchain_core.runnables import RunnableConfig, RunnableLambda

from graphs.runtime import Outcome, Runner
from nodes.offline_model import OfflineChatModel
from state.context import RunContext
from state.plan import TaskStatus
from state.protocol import Kind, Replan
from state.team import Decision
from tools.workspace import WORKSPACE_TOOLS


def test_run_plans_works_in_parallel_reviews_and_stops_at_the_gate(db: Path, ctx: RunContext, troupe) -> None:
    async def start(runner: Runner):
        outcome = await runner.start("hierarchical", TODO_TASK, ctx, thread_id="todo")
        graph = runner.compile(outcome.info)
        history = [s async for s in graph.aget_state_history({"configurable": {"thread_id": "todo"}})]
        return outcome, history, await runner.journal("todo")

    outcome, history, messages = with_runner(db, start)

    # The plan: >= 4 subtasks, distinct specialists, dependencies, acceptance criteria.
    plan = outcome.values["plan"]
    assert len(plan.tasks) >= 4
    assert len({t.assignee for t in plan.tasks}) == len(plan.tasks)
    assert any(t.depends_on for t in plan.tasks)
    assert all(t.acceptance_criteria for t in plan.tasks)

    # Independent subtasks ran in the same super-step: a checkpoint whose next step is several workers.
    parallel = [s for s in history if list(s.next).count("work") >= 2]
    assert parallel, "no super-step ran two workers at once"
    assigned_together = {m.correlation_id for m in messages if m.kind == Kind.TASK_ASSIGN and m.round == 1}
    independent = [t for t in plan.tasks if t.depends_on == [plan.tasks[0].id]]
    assert len(independent) >= 2 and {t.id for t in independent} <= assigned_together

    # A review round-trip: changes requested, the subtask sent back, then approved.
    rejected = [m for m in messages if m.kind == Kind.REVIEW_RESULT and not m.approved]
    assert rejected, "the seeded share of flawed first drafts produced no change request"
    task_id = rejected[0].correlation_id
    ids = [m.id for m in messages]
    reassigned = [m for m in messages if m.kind == Kind.TASK_ASSIGN and m.correlation_id == task_id and m.round == 2]
    approved = [m for m in messages if m.kind == Kind.REVIEW_RESULT and m.correlation_id == task_id and m.approved]
    assert reassigned and reassigned[0].feedback == rejected[0].unmet_criteria
    assert approved and ids.index(rejected[0].id) < ids.index(reassigned[0].id) < ids.index(approved[0].id)
    artifact = Path(ctx.workspace_root) / "todo" / outcome.values["board"][task_id].artifact
    assert all(c in artifact.read_text() for c in rejected[0].unmet_criteria)

    # The approval gate stopped the run before the final assembly.
    assert outcome.status == "awaiting_approval"
    assert outcome.interrupt["question"].startswith("Approve")
    assert all(r.status == TaskStatus.DONE for r in outcome.values["board"].values())
    assert "result" not in outcome.values
    assert not (Path(ctx.workspace_root) / "todo" / "SUMMARY.md").exists()

    # `troupe approve` in a new process finishes it.
    done = troupe("approve", "todo", "--comment", "ship it")
    assert done.returncode == 0, done.stderr
    assert "status: completed" in done.stdout
    summary = (Path(ctx.workspace_root) / "todo" / "SUMMARY.md").read_text()
    assert all(t.title in summary for t in plan.tasks) and "ship it" in summary
    shown = json.loads(troupe("show", "todo", "--json").stdout)
    assert shown["status"] == "completed"
    gate = [m for m in shown["messages"] if m["kind"] == "CHECKPOINT" and m["correlation_id"] == "approval"]
    assert [m["label"] for m in gate] == ["approval requested", "approved"] and gate[1]["sender"] == "human"


def test_rejection_ends_the_run_without_assembly(db: Path, ctx: RunContext, troupe) -> None:
    with_runner(db, lambda r: r.start("hierarchical", TODO_TASK, ctx, thread_id="rej"))
    out = troupe("approve", "rej", "--reject", "--comment", "not now")
    assert out.returncode == 3, out.stderr
    assert "status: rejected" in out.stdout
    assert not (Path(ctx.workspace_root) / "rej" / "SUMMARY.md").exists()


def test_a_worker_sees_only_its_own_scope(db: Path, ctx: RunContext) -> None:
    """Work orders carry the subtask and its direct dependencies' hand-offs, never the whole team."""

    async def orders(runner: Runner):
        outcome = await runner.start("hierarchical", TODO_TASK, ctx, thread_id="scope")
        graph = runner.compile(outcome.info)
        sends = []
        async for snap in graph.aget_state_history({"configurable": {"thread_id": "scope"}}):
            sends += [t for t in snap.tasks if t.name == "work"]
        return outcome, sends

    outcome, _ = with_runner(db, orders)
    plan = outcome.values["plan"]
    workspace = Path(ctx.workspace_root) / "scope"
    for t in plan.tasks:
        text = (workspace / outcome.values["board"][t.id].artifact).read_text()
        others = {d.id for d in plan.tasks} - set(t.depends_on) - {t.id}
        builds_on = text.split("Builds on:")[1].splitlines()[0] if "Builds on:" in text else ""
        assert all(f"{d} (" in builds_on for d in t.depends_on)
        assert not any(f"{o} (" in builds_on for o in others)


def test_a_failed_branch_does_not_redo_its_finished_sibling(db: Path, ctx: RunContext) -> None:
    """Pending writes: when one parallel worker crashes the run, the one that finished in that step is not re-run.

    A model's injected failure no longer crashes a run (the subtask fails and is recovered), so the crash is a
    brought backend agent raising a non-transient error (no retry); the resumed run gets a backend agent that works.
    """
    config: RunnableConfig = {"configurable": {"thread_id": "pw", "checkpoint_ns": ""}}
    saved: list[str] = []
    runners: list[Runner] = []

    async def crash(_: dict[str, Any]) -> dict[str, Any]:
        # Crash only once the sibling in this super-step is saved as a pending write (a crash before would cancel it);
        # nodes write the board as JSON.
        for _ in range(3000):  # at most about 30 s; then it crashes anyway and the test fails on `saved`
            latest = await runners[-1].saver.aget_tuple(config)
            saved.extend(task_id for _, channel, value in (latest.pending_writes or []) if channel == "board"
                          for task_id, record in value.items() if record["status"] == TaskStatus.IN_REVIEW)
            if saved:
                break
            await asyncio.sleep(0.01)
        raise RuntimeError("the backend agent crashed")

    working = create_agent(OfflineChatModel(role="worker", draft_flaw_rate=0.0), tools=list(WORKSPACE_TOOLS))

    async def go() -> tuple[Exception, Outcome, Outcome, list[Any]]:
        async with Runner.open(db, agents={"backend": RunnableLambda(crash)}) as runner:
            runners.append(runner)
            with pytest.raises(RuntimeError) as error:
                await runner.start("hierarchical", TODO_TASK, ctx, thread_id="pw")
            stopped = await runner.outcome(await runner.info("pw"))
        async with Runner.open(db, agents={"backend": working}) as runner:  # the cause fixed
            resumed = await runner.resume("pw")
            return error.value, stopped, resumed, await runner.journal("pw")

    error, stopped, resumed, messages = asyncio.run(go())
    assert str(error) == "the backend agent crashed"
    assert stopped.status == "failed" and "RuntimeError('the backend agent crashed')" in (stopped.error or "")
    assert resumed.status == "awaiting_approval" and resumed.gate == "approval"
    assert all(r.status == TaskStatus.DONE for r in resumed.values["board"].values())
    started = [m.correlation_id for m in messages if m.kind == Kind.PROGRESS and m.note.startswith("started round 1")]
    plan = resumed.values["plan"]
    backend = next(t.id for t in plan.tasks if t.assignee == "backend")
    sibling = next(t.id for t in plan.tasks if t.assignee == "db_engineer")
    assert saved == [sibling], "the crash came before the sibling's work was saved"
    assert started.count(sibling) == 1, "the finished sibling was re-run on resume"
    assert started.count(backend) == 2  # the crash (not transient: not retried), then once after resume


@pytest.mark.parametrize(("role", "reason"), [("reviewer", "the reviewer's answer was malformed"),
                                              ("worker", "wrote no artifact")])
def test_garbage_from_a_model_fails_the_task_not_the_run(db: Path, ctx: RunContext, role: str, reason: str) -> None:
    """Garbage fails the subtask; the supervisor recovers it (no other role has its capability and there is no
    fallback model, so it is split) and, when the parts fail the same way, asks a person. Skipped, the parts'
    dependents are blocked and the run goes on to the final gate. No crash anywhere."""
    ctx.fail = {role: "malformed"}

    async def go(runner: Runner) -> tuple[Outcome, Outcome, list[str], list[Any]]:
        outcome = escalated = await runner.start("hierarchical", TODO_TASK, ctx, thread_id="garbage")
        skipped: list[str] = []
        while outcome.gate == "escalation" and len(skipped) < 10:
            skipped += [t["id"] for t in outcome.interrupt["tasks"]]
            outcome = await runner.approve("garbage", Decision(approved=False, comment="garbage in"))
        return escalated, outcome, skipped, await runner.journal("garbage")

    escalated, outcome, skipped, messages = with_runner(db, go)  # type: ignore[misc]
    assert escalated.status == "awaiting_approval" and escalated.gate == "escalation", escalated.error
    assert reason in escalated.interrupt["details"]
    plan, board = outcome.values["plan"], outcome.values["board"]
    first = plan.tasks[0].id

    # The first subtask failed with the reason and, with nobody else to give it to, was split.
    decided, done = replans(messages, "split")
    assert decided.correlation_id == done.correlation_id == first
    assert reason in decided.reason and "no other role or model left" in decided.reason
    parts = done.tasks
    assert parts and [t.id for t in plan.tasks if t.split_from == first] == parts
    assert board[first].status == TaskStatus.SPLIT and reason in board[first].history[0]

    # Each part failed the same way and went to a person, who skipped it: FAILED for good.
    escalations = replans(messages, "escalate")
    assert [m.correlation_id for m in escalations] == parts == skipped
    assert all(reason in m.reason and "every recovery tried" in m.reason for m in escalations)
    assert [m.correlation_id for m in replans(messages, "skip")] == parts
    for p in parts:
        assert board[p].status == TaskStatus.FAILED and board[p].final and reason in board[p].history[0]
        assert board[p].reason == "skipped by human: garbage in"

    # Only once a part is skipped for good is the rest blocked; the run reaches the final gate.
    blocked = {k for k, r in board.items() if r.status == TaskStatus.BLOCKED}
    assert blocked == set(board) - {first, *parts}
    blockers = [i for i, m in enumerate(messages) if m.kind == Kind.BLOCKER]
    assert {messages[i].correlation_id for i in blockers} == blocked
    assert min(blockers) > min(i for i, m in enumerate(messages) if m.kind == Kind.REPLAN and m.action == "skip")
    assert not [m for m in messages if m.kind == Kind.TASK_ASSIGN and m.correlation_id in blocked]
    assert outcome.status == "awaiting_approval" and outcome.gate == "approval"


def replans(messages: list[Any], action: str) -> list[Replan]:
    return [m for m in messages if m.kind == Kind.REPLAN and m.action == action]


def test_checkpointed_state_stays_small(db: Path, ctx: RunContext) -> None:
    """The journal lives in the store: checkpoints do not grow with the number of messages."""

    async def go(runner: Runner):
        await runner.start("hierarchical", TODO_TASK, ctx, thread_id="small")
        async with runner.saver.conn.execute("SELECT length(checkpoint) FROM checkpoints") as cur:
            sizes = [row[0] for row in await cur.fetchall()]
        return sizes, await runner.journal("small")

    sizes, messages = with_runner(db, go)
    assert len(messages) > 30
    # About 5.8 kB at most (5.2 kB before adaptive planning added the ledger, the plan's and the board's new fields).
    assert max(sizes) < 16_000, sizes
    values = asyncio.run(_values(db))
    assert set(values) <= {"task", "plan", "board", "status", "decision", "result", "ledger", "requests"}
    # The supervisor's ledgers are small (about 260 bytes here): counters, short hashes and ids; facts capped at 20.
    assert len(values["ledger"].model_dump_json()) < 1_000, values["ledger"]
    assert values.get("requests", []) == []  # taken and cleared by the supervisor


async def _values(db: Path) -> dict[str, Any]:
    async with Runner.open(db) as runner:
        info = await runner.info("small")
        return (await runner.outcome(info)).values


def test_a_hung_model_call_times_out_and_is_retried(ctx: RunContext) -> None:
    """The node timeout cancels a hung call; the RetryPolicy's next attempt succeeds."""
    ctx.fail = {"planner": "timeout:1"}  # the first attempt hangs, the second answers
    graph = in_memory(node_timeout=0.5)
    config = {"configurable": {"thread_id": "slow"}}
    asyncio.run(graph.ainvoke({"task": TODO_TASK}, config, context=ctx))
    state = asyncio.run(graph.aget_state(config))
    assert state.interrupts, "the run did not reach the approval gate"
    assert len(state.values["plan"].tasks) >= 4
