"""The CLI: bad input gets one clear line and a non-zero exit code, never a traceback, and loses nothing."""

from __future__ import annotations

import json

import pytest
from conftest import TODO_TASK

from nodes.offline_model import MODES


def _one_line_error(result, *, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("troupe: error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "hierarchical", "   "], "the task is empty"),
        (["run", "nope", TODO_TASK], "unknown pattern or recipe 'nope'; patterns: hierarchical"),
        (["run", "hierarchical", TODO_TASK, "--model", "gpt-4"], "unknown model 'gpt-4'"),
        (["run", "hierarchical", TODO_TASK, "--model", "chef=offline"], "model setting 'chef': neither a model role"),
        (["run", "hierarchical", TODO_TASK, "--team", "circus"], "unknown team 'circus'"),
        (["run", "hierarchical", TODO_TASK, "--thread", "a/b"], "bad thread id 'a/b'"),
        (["run", "hierarchical", TODO_TASK, "--fail", "qa=sulk"], "--fail qa=sulk: the mode is one of raise, timeout"),
        (["resume", "ghost"], "no run with thread id 'ghost'"),
        (["show", "ghost"], "no run with thread id 'ghost'"),
        (["approve", "ghost"], "no run with thread id 'ghost'"),
        (["approve", "ghost", "--edit", "no-such-plan.yaml"], "cannot read the edit file no-such-plan.yaml"),
        (["amend", "ghost", "Also add OAuth login"], "no run with thread id 'ghost'"),
        (["amend", "ghost", " "], "the amendment is empty"),
        (["run", "sequential", TODO_TASK, "--approve-plan"], "a sequential run has no plan to approve: approve_plan "
         "(--approve-plan) works on hierarchical and teams runs"),
        (["run", "content", TODO_TASK, "--approve-plan"], "a sequential run has no plan to approve"),
        (["run"], "the following arguments are required: PATTERN|RECIPE, task"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_clear_line(troupe, args: list[str], expected: str) -> None:
    assert expected in _one_line_error(troupe(*args))


def test_answering_a_run_that_is_not_waiting_changes_nothing(troupe) -> None:
    done = troupe("run", "hierarchical", TODO_TASK, "--thread", "fin", "--latency", "0", "--auto-approve")
    assert done.returncode == 0, done.stderr
    assert "auto-approving: --auto-approve" in done.stdout and "status: completed" in done.stdout
    before = json.loads(troupe("show", "fin", "--json").stdout)
    # The shared context store holds one progress record per subtask, kept current.
    progress = {p["task_id"]: p for p in before["progress"]}
    assert progress.keys() == {t["id"] for t in before["plan"]["tasks"]}
    assert all(p["status"] == "done" and p["assignee"] == t["assignee"]
               for t in before["plan"]["tasks"] for p in [progress[t["id"]]])
    line = _one_line_error(troupe("approve", "fin", "--reject"))
    assert "run 'fin' is not waiting for approval (status: completed)" in line
    assert "already completed" in _one_line_error(troupe("resume", "fin"))
    assert "already exists" in _one_line_error(troupe("run", "hierarchical", TODO_TASK, "--thread", "fin"))
    assert json.loads(troupe("show", "fin", "--json").stdout) == before
    text = troupe("show", "fin").stdout
    assert text.startswith("fin  hierarchical  completed")
    assert all(f"{t['id']:<4}done" in text for t in before["plan"]["tasks"])
    assert f"messages ({len(before['messages'])}):" in text and "REVIEW_RESULT" in text


def test_no_terminal_means_auto_approval_and_says_so(troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--thread", "auto", "--latency", "0")
    assert out.returncode == 0, out.stderr
    assert "offline model (deterministic stand-in, no LLM)" in out.stdout
    assert "auto-approving: no terminal to ask" in out.stdout
    assert "status: completed" in out.stdout and "workspace: " in out.stdout


def test_await_approval_stops_at_the_gate_and_runs_lists_it(troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--thread", "wait", "--latency", "0", "--await-approval")
    assert out.returncode == 4, out.stderr
    assert "waiting for approval: `troupe approve wait`" in out.stdout
    listing = troupe("runs").stdout
    assert "wait" in listing and "awaiting_approval" in listing


def test_a_failing_model_stops_the_run_resumably(troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--thread", "boom", "--latency", "0", "--fail", "planner=raise")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "run stopped: InjectedFailure" in out.stderr and "troupe resume boom" in out.stderr
    shown = json.loads(troupe("show", "boom", "--json").stdout)
    assert shown["status"] == "failed" and "InjectedFailure" in shown["error"]
    assert "boom" in troupe("runs").stdout


def test_a_run_that_failed_on_its_model_resumes_with_a_fixed_model(troupe) -> None:
    import socket

    with socket.socket() as s:  # an endpoint nobody answers on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    out = troupe("run", "hierarchical", TODO_TASK, "--thread", "fixme", "--model", "openai:gpt-test",
                 "--base-url", dead, "--latency", "0")
    assert out.returncode == 1 and "run stopped:" in out.stderr and "troupe resume fixme" in out.stderr
    assert json.loads(troupe("show", "fixme", "--json").stdout)["status"] == "failed"

    assert "unknown model 'gpt-4'" in _one_line_error(troupe("resume", "fixme", "--model", "gpt-4"))
    fixed = troupe("resume", "fixme", "--model", "offline")
    assert fixed.returncode == 0, fixed.stderr
    assert "status: completed" in fixed.stdout
    shown = json.loads(troupe("show", "fixme", "--json").stdout)
    assert shown["context"]["model"] == "offline" and shown["status"] == "completed"


def test_the_fail_help_names_every_offline_mode(troupe) -> None:
    shown = " ".join(troupe("run", "--help").stdout.split())
    assert all(f"'{mode}'" in shown for mode in MODES), shown


def test_version_names_the_installed_release(troupe) -> None:
    from importlib.metadata import version

    out = troupe("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"troupe {version('troupe')}")


def test_db_is_taken_before_or_after_the_subcommand(troupe, tmp_path) -> None:
    other = tmp_path / "other.sqlite"
    done = troupe("run", "hierarchical", TODO_TASK, "--thread", "after", "--latency", "0", "--db", str(other))
    assert done.returncode == 0, done.stderr
    assert f"checkpoints: {other}" in done.stdout
    for argv in (["runs", "--db", str(other)], ["--db", str(other), "runs"]):
        assert troupe(*argv).stdout.startswith("after "), argv
    assert "no runs yet" in troupe("runs").stdout  # $TROUPE_DB, the fixture's database, was not touched
    assert "after" in troupe("show", "after", "--db", str(other)).stdout


def test_runs_and_patterns_speak_json(troupe) -> None:
    from graphs.registry import PATTERNS

    assert json.loads(troupe("runs", "--json").stdout) == []
    held = troupe("run", "hierarchical", TODO_TASK, "--thread", "listed", "--latency", "0", "--await-approval")
    assert held.returncode == 4, held.stderr
    [run] = json.loads(troupe("runs", "--json").stdout)
    assert {k: run[k] for k in ("thread_id", "pattern", "status", "owner", "task")} == {
        "thread_id": "listed", "pattern": "hierarchical", "status": "awaiting_approval", "owner": None,
        "task": TODO_TASK}
    assert isinstance(run["created"], float)
    assert json.loads(troupe("patterns", "--json").stdout) == PATTERNS


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_names_it(troupe, db) -> None:
    import signal
    import subprocess
    import sys

    from conftest import cli_env

    # A child inherits an ignored SIGINT (a background job's), and Python then installs no Ctrl-C handler: restore it.
    proc = subprocess.Popen([sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--thread", "cut",
                             "--latency", "0.5"], env=cli_env(db), text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    while "TASK_ASSIGN" not in proc.stdout.readline():  # the team is at work
        pass
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, (out[-1500:], err)
    assert "the run stopped after its last finished step (`troupe resume cut`)" in err
    shown = json.loads(troupe("show", "cut", "--json").stdout)
    assert (shown["status"], shown["error"]) == ("stopped", None)  # not "failed" with a CancelledError
    assert "status: completed" in troupe("resume", "cut", "--auto-approve").stdout
