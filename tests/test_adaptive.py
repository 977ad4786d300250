"""Adaptive planning in the hierarchical pattern, driven through the offline model's behaviour controls:
plan repair, failure recovery, scope changes, splits, side findings, preemption, loops, plan approval, sizing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import TODO_TASK, with_runner

from graphs.hierarchical import build
from graphs.runtime import Outcome, Runner
from nodes.dispatcher import _Step
from nodes.orchestrator import repair_delegation
from nodes.supervisor import HierarchicalSettings
from nodes.teams import load_team
from state.context import RunContext
from state.plan import Plan, PlannedTask, TaskRecord, TaskStatus
from state.protocol import Kind, Replan
from state.roles import Team, TeamError
from state.team import Decision, Ledger
from state.teams import Assignment, Delegation
from tools.amendments import post_amendment

INVEST = "Should we invest in Tesla?"


def run(db: Path, ctx: RunContext, task: str = TODO_TASK, *, team: Any = None, thread: str = "t",
        answers: list[Decision] | None = None) -> tuple[Outcome, list[Any]]:
    """Start a run and answer its interrupts with `answers` in turn (then stop); return the outcome and journal."""

    async def go(runner: Runner) -> tuple[Outcome, list[Any]]:
        outcome = await runner.start("hierarchical", task, ctx, team=team, thread_id=thread)
        for decision in answers or []:
            if outcome.status != "awaiting_approval":
                break
            outcome = await runner.approve(thread, decision)
        return outcome, await runner.journal(thread)

    return with_runner(db, go)  # type: ignore[return-value]


def replans(messages: list[Any], action: str) -> list[Replan]:
    return [m for m in messages if m.kind == Kind.REPLAN and m.action == action]


def two_backends() -> Team:
    """The software team with a second role that can do backend work."""
    team = load_team("software")
    backend = team.role("backend")
    spare = backend.model_copy(update={"name": "backend_2", "capabilities": ["backend"]})
    return team.model_copy(update={"name": "software2", "roles": [*team.roles, spare]})


def test_a_nonsense_plan_is_repaired_and_said_so(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"planner": "lie"}
    outcome, messages = run(db, ctx)
    repair = replans(messages, "repair")
    assert repair, "no repair was journaled"
    reason = repair[0].reason
    assert "unknown" in reason and "cycle" in reason, reason
    plan = outcome.values["plan"]
    ids = [t.id for t in plan.tasks]
    assert len(set(ids)) == len(ids)
    assert all(d in ids for t in plan.tasks for d in t.depends_on)
    assert outcome.status == "awaiting_approval" and outcome.interrupt["kind"] == "approval"


def test_a_garbled_answer_goes_back_to_the_planner(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"planner": "malformed:1"}
    outcome, messages = run(db, ctx)
    assert "answer 1" in replans(messages, "repair")[0].reason
    assert len(outcome.values["plan"].tasks) >= 4  # the second answer was a real plan


def test_a_planner_that_never_answers_well_gets_a_one_subtask_plan(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"planner": "malformed"}
    outcome, messages = run(db, ctx, answers=[Decision(approved=True)])
    assert len(outcome.values["plan"].tasks) == 1
    assert "one subtask" in replans(messages, "repair")[0].reason
    assert outcome.status == "completed" and outcome.values["result"]


def test_a_failed_subtask_is_reassigned_to_another_role_with_its_capability(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"backend": "raise"}  # fails on every retry: the subtask fails, not the run
    outcome, messages = run(db, ctx, team=two_backends(), answers=[Decision(approved=True)])
    [moved] = replans(messages, "reassign")
    assert "reassigned to backend_2" in moved.reason and "InjectedFailure" in moved.reason
    task = next(t for t in outcome.values["plan"].tasks if t.id == moved.correlation_id)
    assert task.assignee == "backend_2"
    assert outcome.values["board"][task.id].status == TaskStatus.DONE
    assert outcome.status == "completed"


def test_a_subtask_nobody_can_finish_is_split_then_escalated_and_a_person_skips_it(db: Path, ctx: RunContext
                                                                                    ) -> None:
    ctx.fail = {"backend": "raise"}
    outcome, messages = run(db, ctx, answers=[Decision(approved=False, comment="not needed")] * 3)
    [split] = replans(messages, "split")[1:]
    escalations = replans(messages, "escalate")
    assert [m.correlation_id for m in escalations] == split.tasks  # each part failed too: a person decides
    assert "every recovery tried" in escalations[0].reason
    assert outcome.status == "awaiting_approval" and outcome.interrupt["kind"] == "approval"
    skips = replans(messages, "skip")
    assert len(skips) == len(split.tasks) and all("not needed" in m.reason for m in skips)
    board = outcome.values["board"]
    assert all(board[t].status == TaskStatus.FAILED and board[t].final for t in split.tasks)


def test_an_escalated_subtask_can_be_edited_and_retried(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"backend": "raise"}
    edit = Decision(approved=True, comment="give it to the architect", edit={"assignee": "architect"})
    outcome, messages = run(db, ctx, answers=[edit, Decision(approved=False), Decision(approved=False)])
    [retry] = [m for m in replans(messages, "escalate") if m.sender == "human"]
    assert "with edits" in retry.reason
    task = next(t for t in outcome.values["plan"].tasks if t.id == retry.correlation_id)
    assert task.assignee == "architect"
    assert outcome.values["board"][task.id].status == TaskStatus.DONE
    assert outcome.interrupt["kind"] == "approval"


def test_a_scope_change_is_planned_into_a_paused_run_keeping_finished_work(db: Path, ctx: RunContext) -> None:
    async def go(runner: Runner) -> tuple[Outcome, Outcome, list[Any]]:
        first = await runner.start("hierarchical", TODO_TASK, ctx, thread_id="amend")
        await post_amendment(runner.store, "amend", "Also add OAuth login")
        again = await runner.approve("amend", Decision(approved=True))  # the gate sees the amendment first
        return first, again, await runner.journal("amend")

    first, again, messages = with_runner(db, go)  # type: ignore[misc]
    [amend] = replans(messages, "amend")
    assert "OAuth" in amend.reason and amend.tasks
    before = {t.id for t in first.values["plan"].tasks}
    assert set(amend.tasks).isdisjoint(before)
    assert again.status == "awaiting_approval"  # asked again, about the plan that now includes the addition
    board = again.values["board"]
    assert all(board[t].status == TaskStatus.DONE for t in amend.tasks)
    rounds = [m for m in messages if m.kind == Kind.TASK_ASSIGN and m.correlation_id in before and m.round == 1]
    assert len(rounds) == len(before), "finished work was redone"


def test_a_worker_that_finds_its_subtask_too_big_gets_it_split(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"backend": "complex"}
    outcome, messages = run(db, ctx)
    assert any(m.kind == Kind.BLOCKER and "bigger than planned" in m.reason for m in messages)
    [split] = replans(messages, "split")
    plan, board = outcome.values["plan"], outcome.values["board"]
    parent = split.correlation_id
    assert board[parent].status == TaskStatus.SPLIT and split.tasks
    parts = [t for t in plan.tasks if t.split_from == parent]
    assert [p.id for p in parts] == split.tasks and all(board[p.id].status == TaskStatus.DONE for p in parts)
    dependents = [t for t in plan.tasks if set(split.tasks) <= set(t.depends_on)]
    assert dependents and not any(parent in t.depends_on for t in plan.tasks)


def test_side_findings_are_fixed_now_or_logged_with_a_reason(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"backend": "finding", "frontend": "finding"}
    outcome, messages = run(db, ctx, "Build a web app for todo management")
    decided = replans(messages, "finding")
    fixed = [m for m in decided if m.reason.startswith("fix now")]
    logged = [m for m in decided if m.reason.startswith("logged for later")]
    assert fixed and logged, [m.reason for m in decided]
    assert fixed[0].tasks and fixed[0].tasks[0] in outcome.values["board"]
    assert outcome.values["ledger"].facts


def test_a_critical_review_finding_preempts_work_not_started(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"reviewer": "critical"}
    two_at_a_time = load_team("investment").model_copy(update={"patterns": {"hierarchical": {"max_workers": 2}}})
    outcome, messages = run(db, ctx, INVEST, team=two_at_a_time)
    [preempt] = replans(messages, "preempt")
    assert preempt.correlation_id == "T1" and preempt.tasks[1:], preempt.reason
    after = messages[messages.index(preempt):]
    done = next(i for i, m in enumerate(after) if m.kind == Kind.REVIEW_RESULT and m.correlation_id == "T1"
                and m.approved)
    held = set(preempt.tasks[1:])
    assert not [m for m in after[:done] if m.kind == Kind.TASK_ASSIGN and m.correlation_id in held]
    assert all(r.status == TaskStatus.DONE for r in outcome.values["board"].values())  # then the rest went on


def test_a_loop_is_caught_by_the_ledger_not_the_round_limit(db: Path, ctx: RunContext) -> None:
    ctx.fail, ctx.max_review_rounds = {"reviewer": "disagree"}, 10
    outcome, messages = run(db, ctx)
    looping = [m for m in messages if m.kind == Kind.REPLAN and "looping" in m.reason]
    assert looping
    rounds = max(m.round for m in messages if m.kind == Kind.TASK_ASSIGN)
    assert rounds < 10
    assert outcome.status == "awaiting_approval"


def test_the_plan_gate_approves_edits_and_rejects(db: Path, ctx: RunContext) -> None:
    ctx.approve_plan = True
    outcome, _ = run(db, ctx, thread="gate")
    assert outcome.interrupt["kind"] == "plan"
    assert {t["status"] for t in outcome.interrupt["tasks"]} == {"new"}
    plan = outcome.interrupt["plan"]
    plan["subtasks"] = plan["subtasks"][:2]
    edited, messages = run(db, ctx, thread="gate2", answers=[Decision(approved=True, edit=plan)])
    [edit] = replans(messages, "edit")
    assert "removed" in edit.reason
    assert [t.id for t in edited.values["plan"].tasks] == [s["id"] for s in plan["subtasks"]]
    rejected, messages = run(db, ctx, thread="gate3", answers=[Decision(approved=False)])
    assert rejected.status == "rejected"
    assert not [m for m in messages if m.kind == Kind.TASK_ASSIGN]


def test_team_size_follows_the_plan_and_the_cap(db: Path, ctx: RunContext) -> None:
    _, messages = run(db, ctx, INVEST, team="investment")
    [size] = replans(messages, "size")
    assert "critical path 1 step: up to 5 at once" in size.reason and "at most 5.0x" in size.reason
    capped = load_team("investment").model_copy(update={"patterns": {"hierarchical": {"max_workers": 2}}})
    _, messages = run(db, ctx, INVEST, team=capped, thread="capped")
    [size] = replans(messages, "size")
    assert "up to 2 at once" in size.reason and "max_workers=2" in size.reason and "at most 2.0x" in size.reason
    first_round = [m for m in messages if m.kind == Kind.TASK_ASSIGN]
    assert [m.correlation_id for m in first_round[:2]] == ["T1", "T2"]


def test_a_delegation_to_teams_that_do_not_exist_is_repaired() -> None:
    teams = {"software-1": load_team("software"), "software-2": load_team("software")}
    draft = Delegation(summary="s", assignments=[Assignment(team="software1", brief="Design it."),
                                                 Assignment(team="T9", brief="Nobody's."),
                                                 Assignment(team="software-1", brief="Build it.")])
    assignments, fixes = repair_delegation(draft, teams, "Build an app")
    assert [(a.team, a.brief) for a in assignments] == [("software-1", "Design it. Build it.")]
    assert fixes == ["no team 'software1': read as 'software-1'", "no team 'T9': its brief dropped",
                     "two briefs for 'software-1': joined"]
    everyone, fixes = repair_delegation(None, teams, "Build an app")
    assert [(a.team, a.brief) for a in everyone] == [("software-1", "Build an app"), ("software-2", "Build an app")]
    assert fixes == ["no usable assignment: every team takes the whole task"]


def test_a_subtask_whose_model_fails_is_retried_on_the_fallback_model(db: Path, ctx: RunContext,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    ctx.models, ctx.base_url = {"backend": "openai:gone"}, "http://127.0.0.1:9/v1"  # nothing listens there
    team = load_team("software").model_copy(update={"patterns": {"hierarchical": {"fallback_model": "offline"}}})
    outcome, messages = run(db, ctx, team=team)
    [moved] = replans(messages, "reassign")
    assert "on the fallback model offline" in moved.reason and "ConnectionError" in moved.reason
    task = next(t for t in outcome.values["plan"].tasks if t.id == moved.correlation_id)
    assert task.assignee == "backend" and task.model == "offline"
    assert outcome.values["board"][task.id].status == TaskStatus.DONE


def test_after_a_scope_change_only_new_or_changed_subtasks_are_put_to_the_person(db: Path, ctx: RunContext) -> None:
    ctx.approve_plan = True

    async def go(runner: Runner) -> Outcome:
        first = await runner.start("hierarchical", TODO_TASK, ctx, thread_id="twice")
        await runner.approve("twice", Decision(approved=True))  # the plan gate, then the team works to the end
        return await runner.amend("twice", "Also add OAuth login"), first

    again, first = with_runner(db, go)  # type: ignore[misc]
    assert again.interrupt["kind"] == "plan"
    status = {t["id"]: t["status"] for t in again.interrupt["tasks"]}
    old = {t["id"] for t in first.interrupt["tasks"]}
    assert {k for k, v in status.items() if v == "new"} == set(status) - old  # only the addition is asked about
    assert all(status[k] == "approved" for k in old)


def test_a_fallback_model_no_provider_serves_fails_the_build() -> None:
    team = load_team("software").model_copy(update={"patterns": {"hierarchical": {"fallback_model": "nope"}}})
    with pytest.raises(TeamError, match=r"fallback_model.*unknown model 'nope'"):
        build(team=team)


def test_past_its_replans_the_run_gives_up_what_is_unfinished_and_ends(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"backend": "raise"}
    no_replans = load_team("software").model_copy(update={"patterns": {"hierarchical": {"max_replans": 0}}})
    outcome, messages = run(db, ctx, team=no_replans)
    [given_up] = replans(messages, "give up")
    assert "used its 0 replans" in given_up.reason
    assert outcome.status == "awaiting_approval" and outcome.interrupt["kind"] == "approval"
    assert outcome.values["board"][given_up.correlation_id].final


def test_a_team_that_stalls_is_replanned_not_left_spinning() -> None:
    plan = Plan(summary="s", tasks=[PlannedTask(id="T1", title="t", description="d", capability="backend",
                                                acceptance_criteria=["a"], assignee="backend")])
    board = {"T1": TaskRecord(status=TaskStatus.ASSIGNED, round=2, feedback=["new point"])}
    found = HierarchicalSettings(stall_steps=3)
    step = _Step(plan, dict(board), Ledger(step=5, last_progress=2), found, load_team("software"))
    step.catch_loops_and_stalls()
    assert step.board["T1"].status == TaskStatus.FAILED and "stalled" in (step.board["T1"].reason or "")
    calm = _Step(plan, dict(board), Ledger(step=4, last_progress=2), found, load_team("software"))
    calm.catch_loops_and_stalls()
    assert calm.board["T1"].status == TaskStatus.ASSIGNED


def test_a_plan_whose_dependencies_name_roles_is_repaired_and_the_run_finishes(db: Path, ctx: RunContext) -> None:
    """What a small real model does (the lane saw it): `depends_on: ["architect"]` instead of `["T1"]`."""
    ctx.fail = {"planner": "lie"}
    outcome, messages = run(db, ctx)
    reason = replans(messages, "repair")[0].reason
    assert "depends on 'architect', a role and not an id: read as T1" in reason, reason
    last = outcome.values["plan"].tasks[-1]
    assert "T1" in last.depends_on and "architect" not in last.depends_on

    async def approve(runner: Runner) -> Outcome:
        return await runner.approve(outcome.info.thread_id, Decision(approved=True))

    finished = with_runner(db, approve)
    assert finished.status == "completed" and finished.shortfall is None  # type: ignore[attr-defined]
