"""The parallel pattern on the offline model: split, fan out under a cap and a time limit, synthesize."""

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
from conftest import cli_env, with_runner
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from graphs import parallel
from graphs.runtime import Runner, serializer
from nodes import offline_model
from nodes.fanout import assign
from nodes.offline_parallel import items_of
from nodes.teams import load_team
from state.context import RunContext
from state.parallel import Part
from state.plan import TaskStatus
from state.protocol import AnyMessage, Kind
from state.roles import Role, Team, TeamError
from tools.journal import read_messages

COMPARE = "Compare Notion, Asana and Trello for a 10-person team"
FIVE = "Compare Notion, Asana, Trello, Jira and Linear for a 10-person team"


def analysts(n: int = 3, **settings: Any) -> Team:
    """One analyst per competitor: roles sharing one capability take the parts in turn."""
    roles = [Role(name=f"analyst_{i}", capabilities=["analysis"], prompt="You are a market analyst.")
             for i in range(1, n + 1)]
    return Team(name="analysts", description="market analysts", roles=roles, patterns={"parallel": settings})


def run(db: Path, task: str, ctx: RunContext, team: Team | str, thread: str) -> tuple[Any, list[AnyMessage], list]:
    async def go(runner: Runner):
        outcome = await runner.start("parallel", task, ctx, team=team, thread_id=thread)
        graph = runner.compile(outcome.info)
        history = [s async for s in graph.aget_state_history({"configurable": {"thread_id": thread}})]
        return outcome, await runner.journal(thread), history

    return with_runner(db, go)  # type: ignore[return-value]


def notes(messages: list[AnyMessage], task_id: str, prefix: str) -> list[AnyMessage]:
    return [m for m in messages if m.kind == Kind.PROGRESS and m.correlation_id == task_id
            and m.note.startswith(prefix)]


def test_the_planner_splits_on_listed_items_and_analysts_take_turns() -> None:
    assert items_of(COMPARE) == (["Notion", "Asana", "Trello"], "for a 10-person team")
    assert items_of("Build a REST API for todo management") == ([], "")
    parts = [Part(id=f"T{i}", title=f"part {i}", description="d", capability=cap, acceptance_criteria=["c"])
             for i, cap in enumerate(["analysis", "analysis", "analysis", "juggling", "juggling"], start=1)]
    tasks, why = assign(parts, analysts(2))
    assert [t.assignee for t in tasks] == ["analyst_1", "analyst_2", "analyst_1", "analyst_1", "analyst_2"]
    assert all(not t.depends_on for t in tasks)
    assert why == ["No role lists 'juggling': T4 goes to analyst_1 in turn.",
                   "No role lists 'juggling': T5 goes to analyst_2 in turn."]


def test_branches_run_in_one_super_step_and_the_cap_holds(db: Path, ctx: RunContext) -> None:
    ctx.latency = 0.05
    team = load_team("software").model_copy(update={"patterns": {"parallel": {"max_concurrency": 2}}})
    outcome, messages, history = run(db, FIVE, ctx, team, "cap")
    plan, board = outcome.values["plan"], outcome.values["board"]
    assert outcome.status == "completed"
    assert [t.title.split()[1] for t in plan.tasks] == ["Notion", "Asana", "Trello", "Jira", "Linear"]
    assert all(r.status == TaskStatus.DONE for r in board.values())

    # Several workers in one super-step, never more than the cap: the checkpoints' next steps.
    at_once = [list(s.next).count("work") for s in history]
    assert max(at_once) == 2 and sorted(n for n in at_once if n) == [1, 2, 2]
    # The journal agrees: three waves, and never more than two agents between start and artifact.
    waves = [m for m in messages if m.kind == Kind.CHECKPOINT and m.label.startswith("wave")]
    assert [w.note.split(":")[0] for w in waves] == ["2 of 2 slots, 120 s each"] * 2 + ["1 of 2 slots, 120 s each"]
    assert waves[0].note.endswith("3 waiting")
    events = sorted([(m.timestamp, +1) for m in messages if m.kind == Kind.PROGRESS and m.note.startswith("started")]
                    + [(m.timestamp, -1) for m in messages if m.kind == Kind.ARTIFACT])
    running = [sum(d for _, d in events[:i + 1]) for i in range(len(events))]
    assert max(running) == 2
    # The rest start only when slots free: T3 is assigned after T1 and T2 delivered.
    ids = [m.id for m in messages]
    first = max(ids.index(m.id) for m in messages if m.kind == Kind.ARTIFACT and m.correlation_id in ("T1", "T2"))
    assert ids.index(next(m.id for m in messages if m.kind == Kind.TASK_ASSIGN and m.correlation_id == "T3")) > first
    assert all(t.title in outcome.values["result"] for t in plan.tasks)


def test_a_timed_out_branch_is_reported_missing_while_the_others_finish(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"analyst_2": "timeout"}
    outcome, messages, _ = run(db, COMPARE, ctx, analysts(agent_timeout=0.5), "slow")
    board = outcome.values["board"]
    assert outcome.status == "completed"
    assert {k: r.status for k, r in board.items()} == {"T1": "done", "T2": "failed", "T3": "done"}
    assert board["T2"].reason == "timed out after 0.5 s on each of 3 attempts"
    assert len(notes(messages, "T2", "started")) == 3  # the retry policy's attempts, each cut at 0.5 s
    failed = notes(messages, "T2", "failed: timed out after 0.5 s")
    assert failed and failed[0].sender == "analyst_2"
    # The others were not held up by it: they delivered before it gave up.
    delivered = [m for m in messages if m.kind == Kind.ARTIFACT]
    assert {m.correlation_id for m in delivered} == {"T1", "T3"}
    assert all(m.timestamp < failed[0].timestamp for m in delivered)
    # The synthesis says what is missing and why.
    settled = next(m for m in messages if m.kind == Kind.CHECKPOINT and m.correlation_id == "synthesis")
    assert settled.note == "2/3 parts done; missing: T2: timed out after 0.5 s on each of 3 attempts"
    assert "- T2: timed out after 0.5 s" in outcome.values["result"].split("## Open items")[1]
    workspace = Path(ctx.workspace_root) / "slow"
    assert sorted(p.name for p in workspace.iterdir()) == ["SUMMARY.md", "T1-analysis.md", "T3-analysis.md"]


def test_a_branch_whose_model_raises_fails_only_itself(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"analyst_3": "raise"}
    outcome, messages, _ = run(db, COMPARE, ctx, analysts(), "raise")
    board = outcome.values["board"]
    assert outcome.status == "completed"
    assert [board[t].status for t in ("T1", "T2", "T3")] == ["done", "done", "failed"]
    assert board["T3"].reason.startswith("InjectedFailure: offline model told to fail for 'analyst_3'")
    assert board["T3"].reason.endswith("(gave up after 3 attempts)")
    assert notes(messages, "T3", "failed: InjectedFailure")[0].sender == "analyst_3"
    assert "- T3: InjectedFailure" in outcome.values["result"]


def test_review_is_a_setting_and_reviewers_count_against_the_cap(db: Path, ctx: RunContext) -> None:
    ctx.draft_flaw_rate = 1.0  # every first draft misses a criterion: each part goes back once
    outcome, messages, history = run(db, COMPARE, ctx, analysts(review=True, max_concurrency=2), "review")
    assert outcome.status == "completed"
    assert all(r.status == TaskStatus.DONE and r.round == 2 for r in outcome.values["board"].values())
    verdicts = Counter((m.correlation_id, m.approved) for m in messages if m.kind == Kind.REVIEW_RESULT)
    assert verdicts == {(t, ok): 1 for t in ("T1", "T2", "T3") for ok in (False, True)}
    assert max(sum(n in ("work", "review") for n in s.next) for s in history) == 2
    assert not any(m.kind == Kind.PROGRESS and "without review" in m.note for m in messages)


def stubborn_reviewer(brief: dict[str, Any], play: Any) -> dict[str, Any]:
    """A reviewer that asks for the same change every round, whatever the worker does (a stubborn model)."""
    return {"approved": False, "unmet_criteria": ["Cites a source for every price"],
            "feedback": "Not addressed yet: Cites a source for every price"}


@pytest.mark.parametrize("stop_on_repeat", [True, False])
def test_a_part_sent_back_with_the_same_verdict_twice_fails_at_once(
        db: Path, ctx: RunContext, monkeypatch: pytest.MonkeyPatch, stop_on_repeat: bool) -> None:
    monkeypatch.setitem(offline_model.STRUCTURED, "ReviewVerdict", stubborn_reviewer)
    ctx.max_review_rounds = 5
    team = analysts(review=True, stop_on_repeat=stop_on_repeat)
    outcome, messages, _ = run(db, COMPARE, ctx, team, f"stubborn-{stop_on_repeat}")
    board = outcome.values["board"]
    rounds = 2 if stop_on_repeat else 5  # the second identical verdict stops it, not the bound
    assert outcome.status == "completed"
    assert {k: (r.status, r.round) for k, r in board.items()} == {t: ("failed", rounds) for t in ("T1", "T2", "T3")}
    assert Counter(m.correlation_id for m in messages if m.kind == Kind.REVIEW_RESULT) == {
        t: rounds for t in ("T1", "T2", "T3")}
    assert Counter(m.correlation_id for m in messages if m.kind == Kind.TASK_ASSIGN) == {
        t: rounds for t in ("T1", "T2", "T3")}
    loops = [m for m in messages if m.kind == Kind.CHECKPOINT and m.label == "loop detected"]
    if not stop_on_repeat:
        assert not loops and board["T1"].reason.startswith("still unresolved after 5 rounds")
        return
    why = "the reviewer sent it back in round 2 with the same unmet criteria as in round 1: Cites a source for " \
          "every price"
    assert [(m.sender, m.recipient, m.correlation_id) for m in loops] == [
        ("supervisor", f"analyst_{i}", f"T{i}") for i in (1, 2, 3)]
    assert all(m.note == f"{why}; another round (of at most 5) would repeat it, so {m.correlation_id} fails now"
               for m in loops)
    assert all(r.reason == why for r in board.values())
    assert f"- T1: {why}" in outcome.values["result"].split("## Open items")[1]


def test_settings_come_from_the_team_file_then_build_keywords(ctx: RunContext) -> None:
    team = analysts(max_concurrency=3, agent_timeout=7)
    graph = parallel.build(team=team, max_concurrency=1).compile(checkpointer=InMemorySaver(serde=serializer()),
                                                                   store=InMemoryStore())
    asyncio.run(graph.ainvoke({"task": COMPARE}, {"configurable": {"thread_id": "set"}}, context=ctx))
    waves = [m.note for m in asyncio.run(read_messages(graph.store, "set"))
             if m.kind == Kind.CHECKPOINT and m.label.startswith("wave")]
    assert waves == ["1 of 1 slots, 7 s each: T1 (analyst_1); 2 waiting", "1 of 1 slots, 7 s each: T2 (analyst_2); "
                     "1 waiting", "1 of 1 slots, 7 s each: T3 (analyst_3)"]


def test_bad_settings_fail_the_build_in_one_line(tmp_path: Path) -> None:
    team_file = tmp_path / "team.yaml"
    team_file.write_text("name: quick\ndescription: d\nroles:\n  - name: analyst\n    capabilities: [analysis]\n"
                         "    prompt: p\npatterns:\n  parallel:\n    max_concurrency: 0\n")
    with pytest.raises(TeamError, match=r"team\.yaml:9: patterns\.parallel\.max_concurrency: .* equal to 1$"):
        parallel.build(team=team_file)
    with pytest.raises(TeamError, match=r"^parallel setting agent_timeout: Input should be greater than 0$"):
        parallel.build(agent_timeout=0)
    with pytest.raises(TeamError, match=r"patterns\.parallel\.cap: .*Extra inputs are not permitted"):
        parallel.build(team=analysts(cap=2))


def test_the_default_team_runs_the_issue_example_from_the_cli(troupe) -> None:
    out = troupe("run", "parallel", COMPARE, "--thread", "cli", "--latency", "0")
    assert out.returncode == 0, out.stderr
    assert "status: completed" in out.stdout
    shown = json.loads(troupe("show", "cli", "--json").stdout)
    tasks = shown["state"]["plan"]["tasks"]
    assert [(t["title"].split()[1], t["assignee"]) for t in tasks] == [
        ("Notion", "researcher"), ("Asana", "researcher"), ("Trello", "researcher")]
    assert [m["label"] for m in shown["messages"] if m["kind"] == "CHECKPOINT"] == [
        "split ready", "wave 1", "parts settled", "completed"]


def test_a_sigkilled_run_resumes_without_redoing_finished_branches(tmp_path: Path, db: Path, troupe) -> None:
    """Killed while one branch hangs and its siblings have finished: they are kept (pending writes)."""
    team_file = tmp_path / "analysts.yaml"
    team_file.write_text(json.dumps(analysts(agent_timeout=3).model_dump(mode="json")))
    workspace = tmp_path / "ws" / "kill"
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "parallel", COMPARE, "--thread", "kill", "--latency", "0.3",
         "--team-file", str(team_file), "--fail", "analyst_2=timeout:1", "--workspace-root", str(tmp_path / "ws")],
        env=cli_env(db), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not all((workspace / f"{t}-analysis.md").exists() for t in ("T1", "T3")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the branches never wrote their artifacts"
        time.sleep(0.01)
    time.sleep(1.0)  # T1 and T3 return (one more 0.3 s model call); T2 hangs until its 3 s limit
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    before = json.loads(troupe("show", "kill", "--json").stdout)
    assert before["status"] == "stopped"
    assert {m["correlation_id"] for m in before["messages"] if m["kind"] == "ARTIFACT"} == {"T1", "T3"}

    resumed = troupe("resume", "kill")
    assert resumed.returncode == 0, resumed.stderr
    assert "status: completed" in resumed.stdout
    after = json.loads(troupe("show", "kill", "--json").stdout)
    assert {k: r["status"] for k, r in after["state"]["board"].items()} == {"T1": "done", "T2": "done", "T3": "done"}
    started = Counter(m["correlation_id"] for m in after["messages"]
                      if m["kind"] == "PROGRESS" and m["note"].startswith("started"))
    assert started["T1"] == started["T3"] == 1, f"finished branches were redone: {started}"
    assert started["T2"] >= 3  # hung before the kill, hung again after it (attempt 1), then answered
    assert Counter(m["correlation_id"] for m in after["messages"] if m["kind"] == "ARTIFACT") == {
        "T1": 1, "T2": 1, "T3": 1}
    assert (workspace / "SUMMARY.md").exists()
