"""`troupe run --approve-plan` and `troupe approve --edit FILE`: a person approves, edits or rejects the plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from conftest import TODO_TASK, with_runner

from graphs.runtime import Runner
from state.context import RunContext

PLAN_QUESTION = "Approve the plan before any worker starts?"


def _one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("troupe: error:") and "Traceback" not in result.stderr, lines
    return lines[0]


def _show(troupe, thread: str) -> dict[str, Any]:
    return json.loads(troupe("show", thread, "--json").stdout)


def _request(db: Path, thread: str) -> dict[str, Any]:
    """What the run waits for a person to answer (its interrupt's payload)."""

    async def read(runner: Runner) -> dict[str, Any]:
        return (await runner.outcome(await runner.info(thread))).interrupt

    return with_runner(db, read)  # type: ignore[return-value]


def test_a_bad_edit_file_is_one_line_and_sends_nothing(db: Path, ctx: RunContext, tmp_path: Path, troupe) -> None:
    with_runner(db, lambda r: r.start("hierarchical", TODO_TASK, ctx, thread_id="gate"))
    before = _show(troupe, "gate")
    files = {"unclosed.yaml": "subtasks: [unclosed\n", "list.json": '[{"id": "T1"}]', "empty.yaml": "",
             "fine.yaml": "title: Shorter\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    cases = {
        "missing.yaml": "cannot read the edit file {path}: No such file or directory",
        "binary.yaml": "cannot read the edit file {path}: 'utf-8' codec can't decode",
        "unclosed.yaml": "the edit file {path} is not YAML or JSON (line 2): expected ',' or ']'",
        "list.json": "the edit file {path} holds list, not a mapping",
        "empty.yaml": "the edit file {path} holds nothing, not a mapping",
        "fine.yaml": "run 'gate' waits at its approval gate, which takes no edit",
    }
    for name, expected in cases.items():
        path = tmp_path / name
        assert expected.format(path=path) in _one_line_error(troupe("approve", "gate", "--edit", str(path)))
    assert _show(troupe, "gate") == before  # nothing was sent: no answer journaled, the run still waits


def test_approve_plan_is_a_run_setting_also_for_recipes(troupe) -> None:
    out = troupe("run", "dev-team", "Build a web app for todo management", "--thread", "dev", "--latency", "0",
                 "--approve-plan", "--await-approval")
    assert out.returncode == 4, out.stderr
    assert _show(troupe, "dev")["context"]["approve_plan"] is True
    assert PLAN_QUESTION in out.stdout  # waits on the graph side: the plan gate


def test_the_plan_gate_stops_before_any_worker_and_applies_an_edit(db: Path, tmp_path: Path, troupe) -> None:
    """Waits on the graph side: the plan gate, its payload and the validation of an edit."""
    out = troupe("run", "hierarchical", TODO_TASK, "--thread", "gated", "--latency", "0", "--approve-plan",
                 "--await-approval")
    assert out.returncode == 4, out.stderr
    assert PLAN_QUESTION in out.stdout and "waiting for approval of the plan: `troupe approve gated`" in out.stdout
    assert not [m for m in _show(troupe, "gated")["messages"] if m["kind"] == "TASK_ASSIGN"]
    request = _request(db, "gated")
    assert request["kind"] == "plan" and {t["status"] for t in request["tasks"]} == {"new"}

    # An unusable edit is refused by the run, which asks again saying why.
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump({"summary": "x", "subtasks": "not a list"}))
    again = troupe("approve", "gated", "--edit", str(tmp_path / "broken.yaml"))
    assert again.returncode == 4 and PLAN_QUESTION in again.stdout and "note: " in again.stdout, again.stderr

    # A usable one is applied: one subtask retitled, one nothing depends on dropped.
    plan = _request(db, "gated")["plan"]
    subtasks = plan["subtasks"]
    dropped = next(s for s in subtasks if not any(s["id"] in o["depends_on"] for o in subtasks))
    retitled = "Design the todo API contract (edited)"
    edited = {**plan, "subtasks": [{**s, "title": retitled} if s is subtasks[0] else s
                                   for s in subtasks if s is not dropped]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    approved = troupe("approve", "gated", "--edit", str(tmp_path / "plan.yaml"), "--comment", "smaller")
    assert approved.returncode == 4 and "Approve the team's work" in approved.stdout, approved.stderr
    after = _show(troupe, "gated")
    titles = [t["title"] for t in after["plan"]["tasks"]]
    assert titles[0] == retitled and dropped["title"] not in titles and len(titles) == len(subtasks) - 1
    assert all(r["status"] == "done" for r in after["board"].values())
    assert [m for m in after["messages"] if m["kind"] == "REPLAN" and m["action"] == "edit"]
    assert "status: completed" in troupe("approve", "gated").stdout


def test_approve_plan_without_a_terminal_approves_it_and_says_so(troupe) -> None:
    """Waits on the graph side: the plan gate."""
    out = troupe("run", "hierarchical", TODO_TASK, "--thread", "nobody", "--latency", "0", "--approve-plan")
    assert out.returncode == 0, out.stderr
    assert PLAN_QUESTION in out.stdout and "auto-approving the plan: no terminal to ask" in out.stdout
    assert "status: completed" in out.stdout


def test_rejecting_the_plan_ends_the_run_before_any_work(troupe) -> None:
    """Waits on the graph side: the plan gate."""
    assert troupe("run", "hierarchical", TODO_TASK, "--thread", "nope", "--latency", "0", "--approve-plan",
                  "--await-approval").returncode == 4
    out = troupe("approve", "nope", "--reject", "--comment", "wrong approach")
    assert out.returncode == 3 and "status: rejected" in out.stdout, out.stderr
    assert not [m for m in _show(troupe, "nope")["messages"] if m["kind"] == "TASK_ASSIGN"]
