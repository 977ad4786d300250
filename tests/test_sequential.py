"""The sequential pipeline on the offline model: stages in order, checks that send work back, the round bound."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import TODO_TASK, cli_env, with_runner
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from graphs import sequential
from graphs.runtime import Runner, serializer
from nodes.teams import load_team
from state.context import RunContext
from state.plan import TaskStatus
from state.protocol import AnyMessage, Kind
from state.roles import Role, Team, TeamError
from tools.journal import read_messages

BLOG = "Write a blog post about solar power"
CONTENT = ["researcher", "strategist", "writer", "editor"]
WRITERS = Team(name="writers", description="A four-stage content team with no pipeline settings: the defaults apply.",
               roles=[Role(name=name, capabilities=[skill], prompt=f"You are the team's {name}.")
                      for name, skill in zip(CONTENT, ["research", "outline", "writing", "editing"], strict=True)])
RECIPE = ["researcher", "outliner", "writer", "fact_checker", "seo", "editor"]


def run(ctx: RunContext, thread: str = "seq", **settings: Any) -> tuple[dict[str, Any], list[AnyMessage]]:
    """One `WRITERS` run in memory, built with `settings` as build() keywords: (final state, journal)."""
    store = InMemoryStore()
    graph = sequential.build(team=WRITERS, **settings).compile(checkpointer=InMemorySaver(serde=serializer()),
                                                                store=store)

    async def go() -> tuple[dict[str, Any], list[AnyMessage]]:
        config = {"configurable": {"thread_id": thread}}
        await graph.ainvoke({"task": BLOG}, config, context=ctx)
        return dict((await graph.aget_state(config)).values), await read_messages(store, thread)

    return asyncio.run(go())


def assigned(messages: list[AnyMessage]) -> list[tuple[str, int]]:
    """(stage id, round) of every TASK_ASSIGN, in journal order."""
    return [(m.correlation_id, m.round) for m in messages if m.kind == Kind.TASK_ASSIGN]


def test_stages_run_in_team_order_each_building_on_the_stage_before(ctx: RunContext) -> None:
    state, messages = run(ctx)
    plan = state["plan"]
    assert [t.assignee for t in plan.tasks] == CONTENT
    assert assigned(messages) == [("S1", 1), ("S2", 1), ("S3", 1), ("S4", 1)]  # seed 7: the writer's draft passes
    workspace = Path(ctx.workspace_root) / "seq"
    for before, t in zip(plan.tasks, plan.tasks[1:], strict=False):
        text = (workspace / state["board"][t.id].artifact).read_text()
        assert text.split("Builds on: ")[1].splitlines()[0] == f"{before.id} ({state['board'][before.id].artifact})"
    check = [m for m in messages if m.kind == Kind.REVIEW_RESULT]
    assert [(m.sender, m.recipient, m.correlation_id, m.approved) for m in check] == [("editor", "writer", "S3", True)]
    assert state["status"] == "completed" and state["result"].endswith("## Still flagged\n\n- nothing")
    assert (workspace / "SUMMARY.md").read_text().strip() == state["result"]


def test_the_offline_checker_sends_work_back_on_some_seeds_only(ctx: RunContext) -> None:
    looped = {seed for seed in range(1, 9)
              if ("S3", 2) in assigned(run(RunContext(**{**ctx.__dict__, "seed": seed}), f"s{seed}")[1])}
    assert looped and looped != set(range(1, 9)), looped


def test_a_check_sends_the_work_back_to_the_named_stage_and_the_later_stages_run_again(ctx: RunContext) -> None:
    ctx.draft_flaw_rate = 1.0  # every first draft leaves a criterion out, so the editor finds it
    state, messages = run(ctx, checks={"editor": "strategist"})
    ids = [m.id for m in messages]
    back = next(m for m in messages if m.kind == Kind.REVIEW_RESULT)
    assert (back.sender, back.recipient, back.correlation_id, back.approved) == ("editor", "strategist", "S2", False)
    assert back.unmet_criteria and all(f.startswith("Not addressed: ") for f in back.unmet_criteria)
    # Back to the strategist with the findings, then the writer and the editor again; the researcher stays done.
    assert assigned(messages) == [("S1", 1), ("S2", 1), ("S3", 1), ("S4", 1), ("S2", 2), ("S3", 2), ("S4", 2)]
    resend = next(m for m in messages if m.kind == Kind.TASK_ASSIGN and m.round == 2)
    assert resend.feedback == back.unmet_criteria and ids.index(back.id) < ids.index(resend.id)
    workspace = Path(ctx.workspace_root) / "seq"
    outline = (workspace / state["board"]["S2"].artifact).read_text()
    assert all(f.removeprefix("Not addressed: ") in outline for f in back.unmet_criteria)
    rerun = [m for m in messages if m.kind == Kind.TASK_ASSIGN and m.correlation_id in ("S3", "S4") and m.round == 2]
    assert all("S2 (strategist) was revised" in m.feedback[0] for m in rerun)
    final = [m for m in messages if m.kind == Kind.REVIEW_RESULT][-1]
    assert final.approved and final.round == 2 and ids.index(final.id) > ids.index(rerun[-1].id)
    assert {k: (r.status, r.round) for k, r in state["board"].items()} == {
        "S1": (TaskStatus.DONE, 1), "S2": (TaskStatus.DONE, 2), "S3": (TaskStatus.DONE, 2), "S4": (TaskStatus.DONE, 2)}
    assert state["result"].endswith("- nothing")


@pytest.mark.parametrize("max_rounds", [1, 3])
def test_at_the_round_bound_the_run_goes_on_and_the_result_says_what_is_still_flagged(
        ctx: RunContext, db: Path, max_rounds: int) -> None:
    ctx.fail = {"editor": "disagree"}  # the editor never passes the writer's work, with the same dispute each time
    # Loop detection off (the team file's setting): only the round bound stops the check.
    team = WRITERS.model_copy(update={"patterns": {"sequential": {"max_rounds": max_rounds, "stop_on_repeat": False}}})

    async def go(runner: Runner) -> tuple[Any, list[AnyMessage]]:
        return await runner.start("sequential", BLOG, ctx, team=team, thread_id="bound"), await runner.journal("bound")

    outcome, messages = with_runner(db, go)
    verdicts = [m for m in messages if m.kind == Kind.REVIEW_RESULT]
    assert [(m.sender, m.correlation_id, m.approved, m.round) for m in verdicts] == [
        ("editor", "S3", False, n) for n in range(1, max_rounds + 1)]
    assert [r for s, r in assigned(messages) if s == "S3"] == list(range(1, max_rounds + 1))
    bound = [m for m in messages if m.kind == Kind.CHECKPOINT and m.label == "max rounds reached"]
    assert len(bound) == 1 and bound[0].correlation_id == "S3"
    assert outcome.status == "completed" and outcome.values["board"]["S4"].status == TaskStatus.DONE
    flagged = outcome.values["result"].split("## Still flagged")[1]
    assert f"S3 writer (still flagged by editor after {max_rounds} rounds): editor disputes" in flagged
    assert "S3 writer" in (outcome.info.workspace / "SUMMARY.md").read_text().split("## Still flagged")[1]
    assert not any(m.kind == Kind.CHECKPOINT and m.label == "loop detected" for m in messages)


@pytest.mark.parametrize(("flaw_rate", "stopped_at"), [(0.0, 2), (1.0, 3)])
def test_a_check_that_repeats_its_verdict_is_final_at_once(ctx: RunContext, flaw_rate: float, stopped_at: int
                                                           ) -> None:
    """The stubborn editor disputes the same criterion every round: once its findings repeat, another round is
    pointless. A flawed first draft gets a different verdict first ('Not addressed: ...'), so one round more."""
    ctx.fail, ctx.draft_flaw_rate = {"editor": "disagree"}, flaw_rate
    state, messages = run(ctx, "repeat", max_rounds=6)
    verdicts = [m for m in messages if m.kind == Kind.REVIEW_RESULT]
    assert [(m.correlation_id, m.approved, m.round) for m in verdicts] == [
        ("S3", False, n) for n in range(1, stopped_at + 1)]  # not the 6 the bound allows
    assert verdicts[-1].unmet_criteria == verdicts[-2].unmet_criteria
    assert (verdicts[0].unmet_criteria == verdicts[-1].unmet_criteria) == (stopped_at == 2)
    assert [r for s, r in assigned(messages) if s == "S3"] == list(range(1, stopped_at + 1))
    [loop] = [m for m in messages if m.kind == Kind.CHECKPOINT and m.label == "loop detected"]
    why = f"still flagged by editor after {stopped_at} rounds: round {stopped_at}'s verdict repeats round " \
          f"{stopped_at - 1}'s"
    assert (loop.sender, loop.correlation_id) == ("editor", "S3") and loop.note.startswith(why)
    assert "another round (of at most 6) would not change it" in loop.note
    assert not any(m.kind == Kind.CHECKPOINT and m.label == "max rounds reached" for m in messages)
    assert state["status"] == "completed" and state["board"]["S4"].status == TaskStatus.DONE
    assert f"- S3 writer ({why}): editor disputes" in state["result"].split("## Still flagged")[1]
    assert len(state["verdicts"]["S4"]) == 12  # the checkpoint keeps a short signature, not the findings

    # build(stop_on_repeat=False): the same run spins to the bound.
    state, messages = run(ctx, "spin", max_rounds=6, stop_on_repeat=False)
    assert [m.round for m in messages if m.kind == Kind.REVIEW_RESULT] == [1, 2, 3, 4, 5, 6]
    assert not any(m.kind == Kind.CHECKPOINT and m.label == "loop detected" for m in messages)


def test_a_garbage_verdict_or_a_failed_stage_is_reported_not_fatal(ctx: RunContext) -> None:
    ctx.fail = {"editor": "malformed"}  # the editor's work is garbage too: it wrote nothing
    state, messages = run(ctx, "garbage", checks={"writer": "strategist", "editor": "writer"})
    board = state["board"]
    check = next(m for m in messages if m.kind == Kind.REVIEW_RESULT)
    assert (check.sender, check.correlation_id) == ("writer", "S2")  # the writer's check of the outline still happens
    assert board["S4"].status == TaskStatus.FAILED and "wrote no artifact" in board["S4"].reason
    assert state["status"] == "completed" and "S4: wrote no artifact" in state["result"]

    ctx.fail = {"reviewer": "malformed"}  # every check's answer is garbage (checks use the reviewer model role)
    state, messages = run(ctx, "unchecked")
    check = next(m for m in messages if m.kind == Kind.REVIEW_RESULT)
    assert not check.approved and "editor's verdict was malformed" in check.feedback
    assert "S3 writer (not checked by editor): editor's verdict was malformed" in state["result"]


@pytest.mark.parametrize(("settings", "error"), [
    ({"stages": ["writer", "nobody"]}, "build(stages=...): stages[1]: unknown stage 'nobody'"),
    ({"checks": {"writer": "editor"}}, "checks.writer: 'editor' is not earlier than it"),
    ({"checks": {"editor": "ghost"}}, "checks.editor: 'ghost' is not a stage"),
    ({"stages": ["writer", "editor"], "checks": {"editor": "researcher"}}, "'researcher' is not a stage"),
    ({"needs": {"strategist": ["writer"]}}, "needs.strategist: 'writer' is not earlier than it"),
    ({"stages": ["writer", "writer"]}, "stage 'writer' is listed twice"),
    ({"max_rounds": 0}, "sequential.build(max_rounds=0): Input should be greater than or equal to 1"),
])
def test_bad_settings_fail_the_build_with_a_clear_error(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(TeamError) as caught:
        sequential.build(team=WRITERS, **settings)
    assert error in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_check_in_a_team_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text("name: mini\ndescription: two stages\nroles:\n"
                    "  - {name: writer, capabilities: [writing], prompt: Write.}\n"
                    "  - {name: editor, capabilities: [editing], prompt: Edit.}\n"
                    "patterns:\n  sequential:\n    checks:\n      writer: editor\n")
    with pytest.raises(TeamError, match=r"mini.yaml:9: patterns.sequential.checks.writer: 'editor' is not earlier"):
        sequential.build(team=path)
    team = Team.model_validate({**load_team(path).model_dump(), "patterns": {}})
    assert sequential.build(team=team)  # the same team without the bad check builds


@pytest.mark.parametrize(("team", "stages", "check"), [("content", RECIPE, "fact_checker checks writer"),
                                                        ("software", None, "researcher checks tech_writer")])
def test_the_default_teams_run_from_the_cli(troupe, team: str, stages: list[str] | None, check: str) -> None:
    chosen = ["--team", team] if team == "content" else []  # software is the CLI's default team
    out = troupe("run", "sequential", BLOG if team == "content" else TODO_TASK, *chosen, "--latency", "0",
                 "--thread", team)
    assert out.returncode == 0, out.stderr
    shown = json.loads(troupe("show", team, "--json").stdout)
    roles = stages or [r["name"] for r in shown["team"]["roles"]]
    assert shown["status"] == "completed" and [t["assignee"] for t in shown["plan"]["tasks"]] == roles
    first = [m["recipient"] for m in shown["messages"] if m["kind"] == "TASK_ASSIGN" and m["round"] == 1]
    assert first == roles
    assert check in shown["plan"]["summary"] and "## Still flagged" in out.stdout


def test_a_sigkilled_run_resumes_without_redoing_finished_stages(db: Path, tmp_path: Path, troupe) -> None:
    workspace = tmp_path / "ws" / "kill"
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "sequential", TODO_TASK, "--thread", "kill", "--latency", "0.3",
         "--workspace-root", str(tmp_path / "ws")],
        env=cli_env(db), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (workspace / "s3_backend.py").exists():  # the third stage is at work
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached its third stage"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    before = json.loads(troupe("show", "kill", "--json").stdout)
    assert before["status"] == "stopped"
    finished = {k for k, r in before["board"].items() if r["status"] == "done"}
    assert {"S1", "S2"} <= finished and "S7" not in finished

    resumed = troupe("resume", "kill")
    assert resumed.returncode == 0, resumed.stderr
    assert "status: completed" in resumed.stdout
    after = json.loads(troupe("show", "kill", "--json").stdout)
    started = Counter(m["correlation_id"] for m in after["messages"]
                      if m["kind"] == "PROGRESS" and m["note"].startswith("started round 1"))
    assert all(started[s] == 1 for s in finished), f"finished stages were redone: {started}"
    assert set(started) == set(after["board"]) and all(r["status"] == "done" for r in after["board"].values())
    assert (workspace / "SUMMARY.md").exists()


def test_every_route_is_drawn() -> None:
    mermaid = sequential.graph.get_graph().draw_mermaid()
    for edge in ("plan --> advance", "advance -.-> work", "advance -.-> check", "advance -.-> finish",
                 "work --> advance", "check --> advance", "finish --> __end__"):
        assert edge in mermaid
