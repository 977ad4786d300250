"""The CLI's output modes and exit codes, `watch` from a second process, `history` and `fork`, and a light `--help`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TODO_TASK, cli_env

from graphs.cli import EXIT_CODES
from graphs.views import EVENTS


def test_help_and_version_import_no_langgraph() -> None:
    probe = ("import sys\nfrom graphs.cli import main\n"
             "for argv in (['--help'], ['run', '--help'], ['--version']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('langgraph', 'langchain_core', 'pydantic')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "exit codes: 0 completed, 1 failed, 2 bad input, 3 finished with work not done" in out.stdout


@pytest.mark.parametrize(("args", "status", "code"), [
    (("run", "sequential", TODO_TASK), "completed", 0),
    (("run", "hierarchical", TODO_TASK, "--await-approval"), "awaiting_approval", 4),
    (("run", "parallel", "Compare Notion, Asana and Trello", "--fail", "analyst=raise", "--team", "research-report"),
     "completed", 3),
    (("run", "event_driven", "A customer reports that checkout is down", "--fail", "backend=raise"), "completed", 3),
    (("run", "sequential", TODO_TASK, "--budget-tokens", "500"), "out_of_budget", 5),
])
def test_exit_codes_say_where_the_run_ended(troupe, args: tuple[str, ...], status: str, code: int) -> None:
    out = troupe(*args, "--latency", "0", "--json")
    assert out.returncode == code, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == status
    assert (doc["shortfall"] is not None) == (code == EXIT_CODES["incomplete"])


def test_json_lines_is_one_event_per_line_ending_with_the_outcome(troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--latency", "0", "--json-lines", "--thread", "jl")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert set(kinds) <= set(EVENTS) and {"note", "plan", "step", "message", "usage", "gate", "outcome"} <= set(kinds)
    assert kinds[-1] == "outcome" and events[-1]["outcome"]["status"] == "completed"
    assert all(isinstance(e["t"], float | int) for e in events)
    calls = [e["call"] for e in events if e["event"] == "usage"]
    assert {"agent", "model", "input_tokens", "output_tokens", "usd", "cached"} <= set(calls[0])
    assert events[-1]["outcome"]["usage"]["calls"] == len(calls)
    assigned = [e["message"] for e in events if e["event"] == "message" and e["message"]["kind"] == "TASK_ASSIGN"]
    assert assigned and all(m["reason"].startswith("the plan needs") for m in assigned)


def test_quiet_prints_only_the_outcome(troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--latency", "0", "--quiet", "--thread", "q", "--await-approval")
    assert out.returncode == 4, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "waiting for approval: `troupe approve q` (or --reject)"
    assert lines[1:3] == ["status: awaiting_approval", "thread: q"] and len(lines) == 4


def test_show_answers_why_an_agent_got_its_work(troupe) -> None:
    assert troupe("run", "hierarchical", TODO_TASK, "--latency", "0", "--thread", "why").returncode == 0
    shown = troupe("show", "why").stdout
    assert "TASK_ASSIGN T3: Implement the todo management endpoints [why: the plan needs 'backend', its main skill]" \
        in shown
    assert "usage: 20 calls" in shown and "architect" in shown.split("usage:")[1]


def test_watch_follows_a_run_driven_by_another_process(db: Path, troupe) -> None:
    driver = subprocess.Popen([sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--thread",
                               "live", "--latency", "0.5", "--await-approval", "--no-cache"], env=cli_env(db),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = troupe("runs", "--json")
            if runs.returncode == 0 and any(r["status"] == "running" for r in json.loads(runs.stdout)):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run never showed as running")
        watched = troupe("watch", "live", "--json-lines", "--interval", "0.1")
        assert driver.wait(timeout=120) == 4, driver.stderr.read() if driver.stderr else ""
    finally:
        driver.kill()
    assert watched.returncode == 0, watched.stderr
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert events[0]["event"] == "note" and "watching hierarchical run live" in events[0]["text"]
    messages = [e["message"] for e in events if e["event"] == "message"]
    assert [m["kind"] for m in messages].count("TASK_ASSIGN") >= 5
    assert [e["call"] for e in events if e["event"] == "usage"]
    assert events[-1]["event"] == "outcome" and events[-1]["outcome"]["status"] == "awaiting_approval"
    assert events[-1]["t"] > 0.5  # it followed the run for a while, not a snapshot at the end


def test_history_lists_checkpoints_and_fork_starts_a_new_run_from_one(troupe) -> None:
    assert troupe("run", "hierarchical", TODO_TASK, "--latency", "0", "--thread", "orig", "--await-approval"
                  ).returncode == 4
    before = json.loads(troupe("show", "orig", "--json").stdout)
    points = json.loads(troupe("history", "orig", "--json").stdout)
    assert [p["number"] for p in points] == list(range(len(points))) and len(points) > 5
    after_plan = next(p for p in points if "dispatch" in p["next"])
    text = troupe("history", "orig").stdout
    assert after_plan["checkpoint_id"] in text and "troupe fork orig --at NUMBER" in text
    forked = troupe("fork", "orig", "--at", str(after_plan["number"]), "--thread", "again", "--auto-approve",
                    "--json")
    assert forked.returncode == 0, forked.stderr
    assert json.loads(forked.stdout)["status"] == "completed"
    copy = json.loads(troupe("show", "again", "--json").stdout)
    assert copy["plan"] == before["plan"]  # it went on from the old run's plan, not a new one
    planned = [m for m in copy["messages"] if m["kind"] == "CHECKPOINT" and m["correlation_id"] == "plan"]
    assert len(planned) == 1  # the plan message came with the copy; it was not planned again
    assert json.loads(troupe("show", "orig", "--json").stdout) == before  # the old run is as it was
    bad = troupe("fork", "orig", "--at", "zzz")
    assert bad.returncode == 2 and "no checkpoint of this run matches 'zzz'" in bad.stderr
