"""`troupe amend THREAD TEXT` (and `Runner.amend`): a scope change reaches a hierarchical run wherever it stands."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TODO_TASK, with_runner

from graphs.runtime import Runner, TroupeError
from state.context import RunContext
from state.team import Decision
from tools.amendments import read_amendments

ADDITION = "Also add OAuth login"


class _Stop(Exception):
    """Raised by a listener to stop a run, as a killed process would."""


def _stop(mode: str, chunk: Any) -> None:
    """Stop when the first node has finished, before its step is saved."""
    if mode == "updates":
        raise _Stop


def _one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("troupe: error:") and "Traceback" not in result.stderr, lines
    return lines[0]


def _inbox(db: Path, thread: str) -> list[str]:
    return [a.text for a in with_runner(db, lambda r: read_amendments(r.store, thread))]  # type: ignore[attr-defined]


def _stopped_run(db: Path, ctx: RunContext, thread: str) -> None:
    """A run stopped in its first step, as a killed process leaves it (that step's node done, the step not saved)."""

    async def go(runner: Runner) -> None:
        with pytest.raises(_Stop):
            await runner.start("hierarchical", TODO_TASK, ctx, thread_id=thread, listener=_stop)

    with_runner(db, go)
    gc.collect()  # LangGraph leaves the cut-short step's checkpoint write pending; its lock goes with the garbage


def _show(troupe, thread: str) -> dict[str, Any]:
    return json.loads(troupe("show", thread, "--json").stdout)


def test_amend_refuses_in_one_line_and_writes_nothing(db: Path, ctx: RunContext, troupe) -> None:
    async def setup(runner: Runner) -> None:
        await runner.start("hierarchical", TODO_TASK, ctx, thread_id="waiting")
        for thread, approved in (("done", True), ("no", False)):
            await runner.start("hierarchical", TODO_TASK, ctx, thread_id=thread)
            await runner.approve(thread, Decision(approved=approved))
        await runner.start("sequential", "Write a blog post about solar power", ctx, thread_id="seq")

    with_runner(db, setup)
    cases = {
        ("waiting", "   "): "the amendment is empty: say what to add",
        ("ghost", ADDITION): "no run with thread id 'ghost'",
        ("done", ADDITION): "run 'done' is already completed: start a new run with the addition",
        ("no", ADDITION): "run 'no' is already rejected: start a new run with the addition",
        ("seq", ADDITION): "a sequential run: amend works on hierarchical runs and the recipes that run it",
    }
    for (thread, text), expected in cases.items():
        assert expected in _one_line_error(troupe("amend", thread, text))
    for thread in ("waiting", "ghost", "done", "no", "seq"):
        assert _inbox(db, thread) == [], thread

    async def from_python(runner: Runner) -> None:
        with pytest.raises(TroupeError, match="already completed"):
            await runner.amend("done", ADDITION)

    with_runner(db, from_python)
    assert _inbox(db, "done") == []


def test_amend_on_a_stopped_run_waits_in_its_inbox(db: Path, ctx: RunContext, troupe) -> None:
    _stopped_run(db, ctx, "halted")
    before = _show(troupe, "halted")
    assert before["status"] == "stopped"
    out = troupe("amend", "halted", ADDITION)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("amendment recorded; a run going on in another process plans it at its next "
                                       "step, a stopped one when resumed: `troupe resume halted`")
    assert _inbox(db, "halted") == [ADDITION]
    assert _show(troupe, "halted") == before  # nothing ran


def test_a_stopped_run_plans_the_amendment_when_resumed(db: Path, ctx: RunContext, troupe) -> None:
    """Waits on the graph side: the supervisor reads the inbox when the run goes on."""
    _stopped_run(db, ctx, "later")
    assert troupe("amend", "later", ADDITION).returncode == 0
    done = troupe("resume", "later", "--auto-approve")
    assert done.returncode == 0 and "status: completed" in done.stdout, done.stderr
    assert "REPLAN" in done.stdout
    shown = _show(troupe, "later")
    replans = [m for m in shown["messages"] if m["kind"] == "REPLAN" and m["action"] == "amend"]
    assert len(replans) == 1 and replans[0]["tasks"]
    assert all(shown["board"][t]["status"] == "done" for t in replans[0]["tasks"] if t in shown["board"])


def test_amend_at_the_final_gate_replans_keeps_finished_work_and_finishes(db: Path, troupe) -> None:
    """Waits on the graph side: the final gate reads the inbox before asking and the supervisor replans."""
    first = troupe("run", "hierarchical", TODO_TASK, "--thread", "grow", "--latency", "0", "--await-approval")
    assert first.returncode == 4 and "waiting for approval: `troupe approve grow`" in first.stdout, first.stderr
    before = _show(troupe, "grow")
    old_ids = {t["id"] for t in before["plan"]["tasks"]}

    out = troupe("amend", "grow", ADDITION, "--auto-approve")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].endswith(
        "amendment recorded; the run was waiting at its final approval gate: it replans now")
    assert "REPLAN" in out.stdout and "status: completed" in out.stdout
    assert _inbox(db, "grow") == [ADDITION]

    after = _show(troupe, "grow")
    new_ids = {t["id"] for t in after["plan"]["tasks"]} - old_ids
    assert new_ids, "the addition added no subtask"
    assert all(after["board"][t]["status"] == "done" for t in new_ids)
    # Finished work is kept: the old subtasks' records are as they were, and none of them was assigned again.
    assert {t: after["board"][t] for t in old_ids} == before["board"]
    assigned = [m["correlation_id"] for m in after["messages"][len(before["messages"]):] if m["kind"] == "TASK_ASSIGN"]
    assert set(assigned) == new_ids
    replans = [m for m in after["messages"] if m["kind"] == "REPLAN" and m["action"] == "amend"]
    assert len(replans) == 1 and new_ids <= set(replans[0]["tasks"]) and "OAuth" in replans[0]["reason"]


def test_amend_while_a_subtask_waits_for_its_answer(db: Path, troupe) -> None:
    """Waits on the graph side: the per-task gate names its kind ("authorize"), and the answer lets the run plan it."""
    first = troupe("run", "assistant", "I need to attend a conference in Berlin next month", "--thread", "trip",
                   "--latency", "0", "--await-approval")
    assert first.returncode == 4 and "Approve T3 for travel" in first.stdout, first.stderr
    before = _show(troupe, "trip")
    out = troupe("amend", "trip", "Also book a restaurant for the team dinner")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("amendment recorded; the run waits at a subtask's approval gate and plans it "
                                       "after that answer: `troupe approve trip`")
    assert _show(troupe, "trip") == before
    answered = troupe("approve", "trip")
    assert answered.returncode == 4 and "REPLAN" in answered.stdout, answered.stderr


def test_amend_at_the_plan_gate_puts_the_grown_plan_to_the_person(troupe) -> None:
    first = troupe("run", "hierarchical", TODO_TASK, "--thread", "early", "--latency", "0", "--approve-plan",
                   "--await-approval")
    assert first.returncode == 4 and "waiting for approval of the plan" in first.stdout, first.stderr
    old_ids = {t["id"] for t in _show(troupe, "early")["plan"]["tasks"]}
    out = troupe("amend", "early", ADDITION, "--await-approval")
    assert out.returncode == 4, out.stderr
    assert out.stdout.splitlines()[0].endswith("amendment recorded; the run was waiting at its plan gate: it replans "
                                               "now")
    assert "waiting for approval of the plan: `troupe approve early`" in out.stdout
    shown = _show(troupe, "early")
    new_ids = {t["id"] for t in shown["plan"]["tasks"]} - old_ids
    assert new_ids and all(f"  {t}  new" in out.stdout for t in new_ids)  # the addition is put to the person too
    assert not [m for m in shown["messages"] if m["kind"] == "TASK_ASSIGN"]  # still nothing started
