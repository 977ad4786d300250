"""An escalation from the command line: without a person it is skipped and said so; `troupe approve` retries it,
`--reject` skips it, `--edit FILE` changes the subtask before the retry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import TODO_TASK


def _show(troupe, thread: str) -> dict[str, Any]:
    return json.loads(troupe("show", thread, "--json").stdout)


def _replans(doc: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [m for m in doc["messages"] if m["kind"] == "REPLAN" and m["action"] == action]


def test_without_a_person_an_escalation_is_skipped_and_the_run_finishes(troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--thread", "alone", "--latency", "0", "--fail", "backend=raise")
    assert out.returncode == 3, out.stderr  # finished, with the escalated subtask skipped
    escalated = [m["correlation_id"] for m in _replans(_show(troupe, "alone"), "escalate")]
    assert escalated
    for task_id in escalated:
        assert f"auto-skipping {task_id}: no terminal to ask" in out.stdout
    assert "status: completed" in out.stdout
    skips = _replans(_show(troupe, "alone"), "skip")
    assert [m["correlation_id"] for m in skips] == escalated
    assert all(m["sender"] == "auto" and "no person to ask: skipped" in m["reason"] for m in skips)


def test_an_escalation_waits_for_the_cli_and_an_edit_reassigns_the_subtask(tmp_path: Path, troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--thread", "esc", "--latency", "0", "--fail", "backend=raise",
                 "--await-approval")
    assert out.returncode == 4, out.stderr
    assert "waiting at an escalation: `troupe approve esc` retries, --reject skips, --edit FILE" in out.stdout
    assert "  attempts:\n    round 1 by backend: the model failed" in out.stdout
    first = next(m["correlation_id"] for m in _replans(_show(troupe, "esc"), "escalate"))

    (tmp_path / "edit.yaml").write_text("assignee: architect\n")
    answered = troupe("approve", "esc", "--edit", str(tmp_path / "edit.yaml"), "--comment", "the architect can")
    assert answered.returncode == 4, answered.stderr
    while "waiting at an escalation" in answered.stdout:  # the other parts of the split: skipped
        answered = troupe("approve", "esc", "--reject")
        assert answered.returncode == 4, answered.stderr
    assert "waiting for approval: `troupe approve esc`" in answered.stdout

    doc = _show(troupe, "esc")
    [retry] = [m for m in _replans(doc, "escalate") if m["sender"] == "human"]
    assert retry["correlation_id"] == first
    assert "with edits" in retry["reason"] and "the architect can" in retry["reason"]
    assert next(t for t in doc["plan"]["tasks"] if t["id"] == first)["assignee"] == "architect"
    assert doc["board"][first]["status"] == "done"
