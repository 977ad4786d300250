"""At a terminal each gate asks the person, and their answer is what the run records; without a person each gate
gets an automatic answer that says so. Also what a person is shown: the gates' requests and REPLAN lines."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TODO_TASK, cli_env

from graphs.commands import settle as _settle
from graphs.console import approval_text, describe
from graphs.runtime import Outcome, RunInfo
from graphs.views import View
from state.context import RunContext
from state.protocol import Replan
from state.team import Decision

PLAN: dict[str, Any] = {
    "kind": "plan", "question": "Approve the plan before any worker starts?",
    "tasks": [{"id": "T1", "title": "Design the todo API", "assignee": "architect", "status": "approved"},
              {"id": "T2", "title": "Build the endpoints", "assignee": "backend", "status": "new"}],
    "details": "Split the todo API into 2 subtasks.\n2 subtasks, critical path 2 steps: up to 1 at once",
    "plan": {"summary": "Split the todo API into 2 subtasks.", "subtasks": [
        {"id": "T1", "title": "Design the todo API", "description": "Data model and contract", "capability": "design",
         "depends_on": [], "acceptance_criteria": ["Every endpoint is listed"]},
        {"id": "T2", "title": "Build the endpoints", "description": "CRUD endpoints for todos", "capability": "backend",
         "depends_on": ["T1"], "acceptance_criteria": ["Returns 404 for a missing todo"]}]},
}
ESCALATION: dict[str, Any] = {
    "kind": "escalation",
    "question": "T3.1 could not be finished after 2 attempts: retry (approve), skip (reject) or edit it?",
    "tasks": [{"id": "T3.1", "title": "Build the endpoints", "assignee": "backend", "status": "escalated"}],
    "details": "round 3: review not passed: Returns 404 for a missing todo\nreassigned to fullstack: failed again",
    "subtask": {"title": "Build the endpoints", "description": "CRUD endpoints for todos", "capability": "backend",
                "acceptance_criteria": ["Returns 404 for a missing todo", "Validates input"], "assignee": "backend"},
}
APPROVAL: dict[str, Any] = {
    "kind": "approval", "question": "Approve the team's work for final assembly?",
    "tasks": [{"id": "T1", "title": "Design the todo API", "assignee": "architect", "status": "done",
               "artifact": "T1-design.md", "reason": None}],
}


def _read_until(fd: int, marker: bytes, deadline: float) -> bytes:
    seen = b""
    while marker not in seen:
        assert time.monotonic() < deadline, f"never saw {marker!r}; got:\n{seen.decode(errors='replace')}"
        try:
            seen += os.read(fd, 4096)
        except OSError:
            break
    return seen


def test_a_person_at_the_terminal_is_asked(db: Path, troupe) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--thread", "tty", "--latency", "0"],
        env=cli_env(db), stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )
    os.close(follower)
    deadline = time.monotonic() + 60
    screen = _read_until(leader, b"approve? [y/N]", deadline)
    assert b"auto-approving" not in screen
    os.write(leader, b"y\n")
    _read_until(leader, b"comment (optional):", deadline)
    os.write(leader, b"looks good\n")
    screen = _read_until(leader, b"status: completed", deadline)
    assert proc.wait(timeout=30) == 0
    os.close(leader)
    shown = json.loads(troupe("show", "tty", "--json").stdout)
    answer = [m for m in shown["messages"] if m["kind"] == "CHECKPOINT" and m["label"] == "approved"]
    assert answer and answer[0]["sender"] == "human" and answer[0]["note"] == "looks good"


PLAN_TEXT = """\
Approve the plan before any worker starts?
  T1  approved  architect    Design the todo API
  T2  new       backend      Build the endpoints (after T1)
  Split the todo API into 2 subtasks.
  2 subtasks, critical path 2 steps: up to 1 at once"""


def test_the_plan_gate_shows_each_subtask_new_or_approved_and_the_sizing() -> None:
    assert approval_text(PLAN) == PLAN_TEXT
    bare = {**PLAN, "details": "", "error": "the edited plan is not usable: subtasks: Input should be a valid list"}
    assert approval_text(bare).splitlines()[3:] == [
        "  plan: Split the todo API into 2 subtasks.",
        "  note: the edited plan is not usable: subtasks: Input should be a valid list"]


def test_the_escalation_shows_the_attempts_and_the_subtask_an_edit_changes() -> None:
    assert approval_text(ESCALATION) == """\
T3.1 could not be finished after 2 attempts: retry (approve), skip (reject) or edit it?
  T3.1  escalated backend      Build the endpoints
  attempts:
    round 3: review not passed: Returns 404 for a missing todo
    reassigned to fullstack: failed again
  subtask:
    title: Build the endpoints
    description: CRUD endpoints for todos
    capability: backend
    acceptance_criteria:
      - Returns 404 for a missing todo
      - Validates input
    assignee: backend"""


@pytest.mark.parametrize(("tasks", "suffix"), [(["T3.1", "T3.2"], " -> T3.1, T3.2"), ([], "")])
def test_a_replan_reads_as_one_line_with_its_action_and_reason(tasks: list[str], suffix: str) -> None:
    why = "backend failed twice; qa has the capability"
    m = Replan(sender="supervisor", recipient="team", correlation_id="T3", action="reassign", reason=why, tasks=tasks)
    assert describe(m) == f"[supervisor -> team] REPLAN T3: reassign: {why}{suffix}"


class _Terminal(io.StringIO):
    """A fake terminal: each line the person types (a callable runs when it is read, e.g. to edit a file), then EOF."""

    def __init__(self, *typed: str | Callable[[], str]) -> None:
        super().__init__()
        self.typed = list(typed)

    def isatty(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        if not self.typed:
            return ""
        line = self.typed.pop(0)
        return (line() if callable(line) else line) + "\n"


class _Runner:
    """Stands in for `Runner.approve`: records each answer and returns the next outcome."""

    def __init__(self, *then: Outcome) -> None:
        self.then, self.decisions = list(then), []

    async def approve(self, thread_id: str, decision: Decision, *, listener: Any = None) -> Outcome:
        self.decisions.append(decision)
        return self.then.pop(0)


def _outcome(tmp_path: Path, request: dict[str, Any] | None) -> Outcome:
    info = RunInfo(thread_id="t", pattern="hierarchical", task="x", created=0.0,
                   context=RunContext(workspace_root=str(tmp_path)))
    return Outcome(info, "awaiting_approval" if request else "completed", {}, request, None, "i" if request else None)


def _settled(runner: _Runner, first: Outcome, mode: str | None) -> tuple[Outcome, str]:
    out = io.StringIO()
    return asyncio.run(_settle(runner, first, mode, View(out))), out.getvalue()  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "why"), [(None, "no terminal to ask"), ("auto", "--auto-approve")])
def test_without_a_person_each_gate_gets_its_automatic_answer(tmp_path: Path, monkeypatch, mode: str | None,
                                                              why: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    runner = _Runner(*(_outcome(tmp_path, r) for r in (ESCALATION, APPROVAL, None)))
    final, feed = _settled(runner, _outcome(tmp_path, PLAN), mode)
    assert final.status == "completed"
    assert runner.decisions == [Decision(approved=True, comment="auto-approved", by="auto"),
                                Decision(approved=False, comment="no person to ask: skipped", by="auto"),
                                Decision(approved=True, comment="auto-approved", by="auto")]
    stamped = [line for line in feed.splitlines() if re.match(r" *\d+\.\ds  ", line)]  # the gate texts go between
    assert [line.split("s  ", 1)[1].split(":")[0] for line in stamped] == [
        "auto-approving the plan", "auto-skipping T3.1", "auto-approving"]
    assert all(why in line for line in stamped)


@pytest.mark.parametrize(("request_", "says"), [
    (PLAN, "waiting for approval of the plan: `troupe approve t` (or --reject, or --edit FILE with the changed plan)"),
    (ESCALATION, "waiting at an escalation: `troupe approve t` retries, --reject skips, --edit FILE changes the "
                 "subtask, then retries"),
    (APPROVAL, "waiting for approval: `troupe approve t` (or --reject)"),
])
def test_a_waiting_run_says_how_to_answer_its_gate(tmp_path: Path, capsys, request_: dict[str, Any], says: str) -> None:
    View().outcome(_outcome(tmp_path, request_))
    assert says in capsys.readouterr().out


def test_await_approval_answers_nothing(tmp_path: Path) -> None:
    runner = _Runner()
    first = _outcome(tmp_path, ESCALATION)
    assert _settled(runner, first, "hold")[0] is first and runner.decisions == []


def _at_terminal(monkeypatch, *typed: str | Callable[[], str]) -> io.StringIO:
    """The person at a terminal types `typed`; returns what they see."""
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdin", _Terminal(*typed))
    monkeypatch.setattr(sys, "stdout", screen)
    return screen


def _editor(tmp_path: Path, monkeypatch, change: str) -> None:
    """$EDITOR is a program that applies `change` (Python, on the YAML file's `data`) to the file it is given."""
    script = tmp_path / "editor.py"
    script.write_text("import sys, yaml\npath = sys.argv[1]\ndata = yaml.safe_load(open(path))\n"
                      f"{change}\nyaml.safe_dump(data, open(path, 'w'))\n")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")


@pytest.mark.parametrize(("request_", "typed", "approved"), [
    (APPROVAL, ["y", "ship it"], True), (APPROVAL, ["", ""], False),
    (PLAN, ["yes", "ship it"], True), (PLAN, ["n", "ship it"], False),
    (ESCALATION, ["maybe", "r", "ship it"], True), (ESCALATION, ["skip", "ship it"], False),
])
def test_at_a_terminal_the_person_answers_each_gate(tmp_path: Path, monkeypatch, request_: dict[str, Any],
                                                    typed: list[str], approved: bool) -> None:
    screen = _at_terminal(monkeypatch, *typed)
    runner = _Runner(_outcome(tmp_path, None))
    _settled(runner, _outcome(tmp_path, request_), None)
    assert runner.decisions == [Decision(approved=approved, comment=typed[-1], by="human")]
    prompt = {"plan": "approve? [y/N/e] ", "escalation": "retry, skip or edit? [r/s/e] "}.get(request_["kind"],
                                                                                            "approve? [y/N] ")
    assert screen.getvalue().count(prompt) == len(typed) - 1  # an unknown answer to an escalation asks again


def test_at_a_terminal_the_plan_is_edited_in_the_editor(tmp_path: Path, monkeypatch) -> None:
    _editor(tmp_path, monkeypatch, "data['subtasks'][0]['title'] = 'Design the API contract'")
    _at_terminal(monkeypatch, "e", "shorter")
    runner = _Runner(_outcome(tmp_path, None))
    _settled(runner, _outcome(tmp_path, PLAN), None)
    edited = {**PLAN["plan"], "subtasks": [{**PLAN["plan"]["subtasks"][0], "title": "Design the API contract"},
                                           PLAN["plan"]["subtasks"][1]]}
    assert runner.decisions == [Decision(approved=True, comment="shorter", by="human", edit=edited)]
    assert yaml.safe_load((tmp_path / "t" / "plan-edit.yaml").read_text()) == edited  # in the run's workspace


def test_at_a_terminal_an_escalated_subtask_is_edited_then_retried(tmp_path: Path, monkeypatch) -> None:
    _editor(tmp_path, monkeypatch, "data['assignee'] = 'frontend'")
    _at_terminal(monkeypatch, "e", "")
    runner = _Runner(_outcome(tmp_path, None))
    _settled(runner, _outcome(tmp_path, ESCALATION), None)
    assert runner.decisions == [Decision(approved=True, by="human", edit={**ESCALATION["subtask"],
                                                                          "assignee": "frontend"})]


def test_without_an_editor_the_person_edits_the_file_and_an_unusable_one_asks_again(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    path = tmp_path / "t" / "plan-edit.yaml"

    def saves(text: str) -> Callable[[], str]:
        """The person saves `text` in the file, then presses Enter."""

        def save() -> str:
            path.write_text(text)
            return ""

        return save

    screen = _at_terminal(monkeypatch, "e", saves("- not a mapping\n"), "e", saves("summary: One step\nsubtasks: []\n"),
                          "")
    runner = _Runner(_outcome(tmp_path, None))
    _settled(runner, _outcome(tmp_path, PLAN), None)
    assert runner.decisions == [Decision(approved=True, by="human", edit={"summary": "One step", "subtasks": []})]
    seen = screen.getvalue()
    assert seen.count(f"edit {path}, then press Enter") == 2 and "holds list, not a mapping" in seen
    assert seen.count("approve? [y/N/e] ") == 2


def test_input_ending_leaves_the_gate_waiting(tmp_path: Path, monkeypatch) -> None:
    _at_terminal(monkeypatch)
    runner = _Runner()
    first = _outcome(tmp_path, ESCALATION)
    assert _settled(runner, first, None)[0] is first and runner.decisions == []


def test_a_person_at_the_terminal_edits_the_plan_before_any_work(db: Path, tmp_path: Path, troupe) -> None:
    script = tmp_path / "editor.py"
    script.write_text("import sys, yaml\npath = sys.argv[1]\ndata = yaml.safe_load(open(path))\n"
                      "data['subtasks'][0]['title'] = 'Design the todo API contract'\n"
                      "yaml.safe_dump(data, open(path, 'w'))\n")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--thread", "planned", "--latency", "0",
         "--approve-plan"],
        env={**cli_env(db), "EDITOR": f"{sys.executable} {script}"}, stdin=follower, stdout=follower,
        stderr=follower, close_fds=True,
    )
    os.close(follower)
    deadline = time.monotonic() + 60
    screen = _read_until(leader, b"approve? [y/N/e]", deadline)
    assert b"Approve the plan before any worker starts?" in screen and b"TASK_ASSIGN" not in screen
    os.write(leader, b"e\n")
    _read_until(leader, b"comment (optional):", deadline)
    os.write(leader, b"one title clearer\n")
    screen = _read_until(leader, b"approve? [y/N]", deadline)
    assert b"Design the todo API contract" in screen
    os.write(leader, b"y\n")
    _read_until(leader, b"comment (optional):", deadline)
    os.write(leader, b"\n")
    _read_until(leader, b"status: completed", deadline)
    assert proc.wait(timeout=30) == 0
    os.close(leader)
    shown = json.loads(troupe("show", "planned", "--json").stdout)
    assert shown["plan"]["tasks"][0]["title"] == "Design the todo API contract"
    edit = [m for m in shown["messages"] if m["kind"] == "REPLAN" and m["action"] == "edit"]
    assert edit and edit[0]["sender"] == "human" and "one title clearer" in edit[0]["reason"]


def test_an_editor_that_cannot_start_falls_back_to_editing_by_hand(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))
    path = tmp_path / "t" / "subtask-edit.yaml"

    def save() -> str:
        path.write_text("assignee: frontend\n")
        return ""

    screen = _at_terminal(monkeypatch, "e", save, "over to frontend")
    runner = _Runner(_outcome(tmp_path, None))
    _settled(runner, _outcome(tmp_path, ESCALATION), None)
    assert runner.decisions == [Decision(approved=True, comment="over to frontend", edit={"assignee": "frontend"})]
    assert "cannot start the editor" in screen.getvalue() and f"edit {path}, then press Enter" in screen.getvalue()
