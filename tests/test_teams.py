"""Teams of teams: delegation three levels deep, nested approval answered from the top, SIGKILL and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import TODO_TASK, cli_env, with_runner

from graphs import teams
from graphs.runtime import Runner
from state.context import RunContext
from state.roles import TeamError
from state.team import Decision

LAUNCH = "Plan a product launch"
LEAVES = {"content/articles", "content/social", "design", "outreach"}


def _artifacts(messages: list[dict]) -> Counter[str]:
    """Sub-team hand-offs (ARTIFACTs a sub-team's supervisor sends up), by team path."""
    return Counter(m["correlation_id"] for m in messages
                   if m["kind"] == "ARTIFACT" and m["sender"].endswith("/supervisor"))


def test_launch_recipe_delegates_three_levels_deep_and_rolls_up(troupe, tmp_path: Path) -> None:
    out = troupe("run", "launch", LAUNCH, "--thread", "launch", "--latency", "0", "--auto-approve",
                 "--workspace-root", str(tmp_path / "ws"))
    assert out.returncode == 0, out.stderr
    assert "status: completed" in out.stdout
    shown = json.loads(troupe("show", "launch", "--json").stdout)
    msgs = shown["messages"]
    # Both orchestrators delegated: the top one to three teams, the content one to two teams of its own.
    plans = {m["sender"]: m["recipient"] for m in msgs
             if m["kind"] == "CHECKPOINT" and m["label"] == "delegation ready"}
    assert plans == {"orchestrator": "content, design, outreach", "content/orchestrator": "articles, social"}
    # Every team at every level handed its report up exactly once; the innermost ones before their parent.
    handed = _artifacts(msgs)
    assert handed == Counter({**{p: 1 for p in LEAVES}, "content": 1})
    order = [m["correlation_id"] for m in msgs if m["kind"] == "ARTIFACT" and m["sender"].endswith("/supervisor")]
    assert order.index("content") > max(order.index("content/articles"), order.index("content/social"))
    # Each team worked in its own folder; the roll-up names every sub-team's report.
    ws = tmp_path / "ws" / "launch"
    for leaf in ("content/launch/articles/launch", "content/launch/social/launch", "design/launch", "outreach/launch"):
        assert (ws / leaf / "SUMMARY.md").exists(), leaf
    assert {t["id"]: r["status"] for t in shown["plan"]["tasks"] for k, r in shown["state"]["board"].items()
            if k == t["id"]} == {"content": "done", "design": "done", "outreach": "done"}
    report = (ws / "SUMMARY.md").read_text()
    assert all(f"{t}/launch/SUMMARY.md" in report for t in ("content", "design", "outreach"))


def test_innermost_approval_is_answered_from_the_top_in_new_processes(troupe, tmp_path: Path) -> None:
    first = troupe("run", "launch", LAUNCH, "--thread", "hold", "--latency", "0", "--await-approval",
                   "--workspace-root", str(tmp_path / "ws"))
    assert first.returncode == 4, first.stderr
    assert "troupe approve hold" in first.stdout
    # The gate waiting is the innermost one: the articles team (content > articles), three levels down.
    assert "researcher" in first.stdout and "social_writer" not in first.stdout
    rejected = troupe("approve", "hold", "--reject", "--comment", "off-message")
    assert rejected.returncode == 4, rejected.stderr
    answers = 1
    while "troupe approve hold" in (out := troupe("approve", "hold")).stdout:
        answers += 1
        assert answers < 10
    assert "status: completed" in out.stdout, out.stdout + out.stderr
    assert answers + 1 == len(LEAVES)  # one question per innermost team, each answered at the top
    msgs = json.loads(troupe("show", "hold", "--json").stdout)["messages"]
    verdicts = [(m["sender"], m["label"], m["note"]) for m in msgs
                if m["kind"] == "CHECKPOINT" and m["correlation_id"] == "approval"
                and m["label"] != "approval requested"]
    assert verdicts[0] == ("human", "rejected", "off-message")
    blocked = [m for m in msgs if m["kind"] == "BLOCKER"]
    assert [(m["sender"], m["correlation_id"]) for m in blocked] == [
        ("content/articles/supervisor", "content/articles")]
    assert "rejected" in blocked[0]["reason"]
    assert _artifacts(msgs) == Counter({"content/social": 1, "content": 1, "design": 1, "outreach": 1})


def test_sigkilled_nested_run_resumes_without_redoing_finished_teams(troupe, db: Path, tmp_path: Path) -> None:
    inner = tmp_path / "ws" / "kill" / "content" / "kill"
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "launch", LAUNCH, "--thread", "kill", "--latency", "0.05",
         "--auto-approve", "--workspace-root", str(tmp_path / "ws")],
        env=cli_env(db), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    social = inner / "social" / "kill"
    while not (inner / "articles" / "kill" / "SUMMARY.md").exists() or not any(social.glob("T*")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the second team inside content"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = json.loads(troupe("show", "kill", "--json").stdout)
    assert before["status"] in ("stopped", "awaiting_approval")  # killed inside the social team's work or gate
    assert not (inner / "SUMMARY.md").exists()  # the content team had not finished
    resumed = troupe("resume", "kill", "--auto-approve")
    assert resumed.returncode == 0, resumed.stderr
    assert "status: completed" in resumed.stdout
    msgs = json.loads(troupe("show", "kill", "--json").stdout)["messages"]
    handed = _artifacts(msgs)
    assert handed == Counter({**{p: 1 for p in LEAVES}, "content": 1}), handed
    # The articles team, finished before the kill, planned once; nothing above it delegated twice.
    delegations = Counter(m["sender"] for m in msgs if m["kind"] == "CHECKPOINT" and m["label"] == "delegation ready")
    assert delegations == Counter({"orchestrator": 1, "content/orchestrator": 1})
    plans = Counter(m["note"] for m in msgs if m["kind"] == "CHECKPOINT" and m["label"] == "plan ready")
    assert all(n == 1 for n in plans.values()) and len(plans) == len(LEAVES), plans


def test_depth_limit_and_cycles_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TeamError, match=r"launch > launch-content > content is 3 levels deep; max_depth is 2"):
        teams.build(team="launch", max_depth=2)
    (tmp_path / "loop-a.yaml").write_text("name: loop-a\ndescription: a\n"
                                          "roles: [{name: a, capabilities: [x], prompt: p}]\n"
                                          "patterns: {teams: {subteams: {b: loop-b}}}\n")
    (tmp_path / "loop-b.yaml").write_text("name: loop-b\ndescription: b\n"
                                          "roles: [{name: b, capabilities: [y], prompt: p}]\n"
                                          "patterns: {teams: {subteams: {a: loop-a}}}\n")
    monkeypatch.setenv("TROUPE_TEAMS", str(tmp_path))
    with pytest.raises(TeamError, match=r"cycle: loop-a > loop-b > loop-a"):
        teams.build(team="loop-a", max_depth=6)
    with pytest.raises(TeamError, match=r"subteams.*unknown team 'nope'"):
        teams.build(team="launch", subteams={"x": "nope"})


def test_default_team_splits_its_roles_into_two_teams(db: Path, ctx: RunContext) -> None:
    async def go(runner: Runner) -> tuple[object, ...]:
        outcome = await runner.start("teams", TODO_TASK, ctx, thread_id="split")
        asked = []
        while outcome.status == "awaiting_approval":
            asked.append({t["assignee"] for t in outcome.interrupt["tasks"]})
            outcome = await runner.approve("split", Decision(approved=True, by="auto"))
        return outcome, asked, await runner.journal("split")

    outcome, asked, journal = with_runner(db, go)  # type: ignore[misc]
    assert outcome.status == "completed"  # type: ignore[attr-defined]
    assert [t.id for t in outcome.values["plan"].tasks] == ["software-1", "software-2"]  # type: ignore[attr-defined]
    assert asked[0] <= {"architect", "db_engineer", "backend", "frontend"}  # first half of the roles
    assert asked[1] <= {"qa", "tech_writer", "researcher"}
    assert [m.correlation_id for m in journal if m.kind == "ARTIFACT" and m.sender.endswith("/supervisor")] == \
        ["software-1", "software-2"]
