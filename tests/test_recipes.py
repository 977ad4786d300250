"""The shipped recipes run offline from the CLI, to the end, and each shows the behaviour that defines it.

`troupe run RECIPE TASK` with the recipes' own example tasks; the assertions read the run's journal and
state (`troupe show THREAD --json`): who ran, in what order, what was decided and why.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graphs import hierarchical
from state.roles import TeamError

Troupe = Callable[..., subprocess.CompletedProcess[str]]

RECIPES = {"assistant": "hierarchical", "content": "sequential", "dev-team": "hierarchical",
           "investment": "hierarchical", "meeting-prep": "parallel", "research-report": "parallel",
           "support": "router"}


def run(troupe: Troupe, recipe: str, task: str, thread: str, *extra: str) -> dict[str, Any]:
    """Run a recipe from the CLI; its `troupe show --json` document, with the run's stdout under 'stdout'."""
    out = troupe("run", recipe, task, "--thread", thread, "--latency", "0", *extra)
    assert out.returncode in (0, 3, 4), out.stderr  # done, done with work not done, waiting for a person
    return show(troupe, thread) | {"stdout": out.stdout}


def show(troupe: Troupe, thread: str) -> dict[str, Any]:
    shown = troupe("show", thread, "--json")
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


def kinds(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in doc["messages"] if m["kind"] == kind]


def test_troupe_recipes_lists_every_recipe_with_its_pattern(troupe: Troupe) -> None:
    out = troupe("recipes")
    assert out.returncode == 0, out.stderr
    listed = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines() if not line.startswith(" ")}
    assert RECIPES.items() <= listed.items()


def test_content_the_fact_checker_sends_the_draft_back_to_the_writer(troupe: Troupe) -> None:
    doc = run(troupe, "content", "Write a blog post about solar power", "content", "--seed", "2")
    stages = ["researcher", "outliner", "writer", "fact_checker", "seo", "editor"]
    assert doc["pattern"] == "sequential" and [t["assignee"] for t in doc["plan"]["tasks"]] == stages
    checks = [(m["sender"], m["recipient"], m["correlation_id"], m["approved"], m["round"])
              for m in kinds(doc, "REVIEW_RESULT")]
    assert checks == [("fact_checker", "writer", "S3", False, 1), ("fact_checker", "writer", "S3", True, 2)]
    order = [(m["recipient"], m["round"]) for m in kinds(doc, "TASK_ASSIGN")]
    assert order == [("researcher", 1), ("outliner", 1), ("writer", 1), ("fact_checker", 1), ("writer", 2),
                     ("fact_checker", 2), ("seo", 1), ("editor", 1)]
    back = kinds(doc, "TASK_ASSIGN")[4]
    assert back["feedback"] == kinds(doc, "REVIEW_RESULT")[0]["unmet_criteria"] != []
    assert doc["status"] == "completed" and doc["result"].endswith("## Still flagged\n\n- nothing")


def test_support_routes_to_billing_and_escalates_to_a_person(troupe: Troupe) -> None:
    doc = run(troupe, "support", "My payment failed but I was charged anyway", "support")
    hops = doc["state"]["hops"]
    assert [(h["route"], h["kind"]) for h in hops] == [("billing", "routed")] and "payment" in hops[0]["reason"]
    assert doc["status"] == "completed" and doc["state"]["escalation"]["needs_human"] is False
    # A request for a person goes to one (the run waits for them), whatever the desk drafted.
    doc = run(troupe, "support", "I was charged twice and I want a real person now", "person", "--await-approval")
    assert doc["status"] == "awaiting_approval"
    assert doc["state"]["escalation"]["needs_human"] is True and "real person" in doc["state"]["escalation"]["reason"]


@pytest.mark.parametrize(("recipe", "task", "roles"), [
    ("research-report", "Research the state of solid-state batteries", ["researcher", "analyst", "writer"]),
    ("meeting-prep", "Prepare for tomorrow's meeting", ["attendee_research", "calendar", "email_threads",
                                                        "meeting_notes"]),
])
def test_parallel_recipes_work_at_once_then_synthesize(troupe: Troupe, recipe: str, task: str,
                                                       roles: list[str]) -> None:
    doc = run(troupe, recipe, task, recipe)
    assert doc["pattern"] == "parallel" and [t["assignee"] for t in doc["plan"]["tasks"]] == roles
    kinds_in_order = [m["kind"] for m in doc["messages"]]
    first_artifact = kinds_in_order.index("ARTIFACT")
    assert kinds_in_order[:first_artifact].count("TASK_ASSIGN") == len(roles)  # every part sent in one wave
    assert all(r["status"] == "done" for r in doc["board"].values())
    summary = (Path(doc["workspace"]) / "SUMMARY.md").read_text()
    assert doc["status"] == "completed" and all(f"({role}, done)" in summary for role in roles)


def test_investment_five_analysts_work_in_parallel_under_the_supervisor(troupe: Troupe) -> None:
    doc = run(troupe, "investment", "Should we invest in Tesla?", "invest")
    analysts = ["financial_statements", "sentiment", "competitive", "regulatory", "macro"]
    assert [t["assignee"] for t in doc["plan"]["tasks"]] == analysts
    assert all(not t["depends_on"] for t in doc["plan"]["tasks"])
    first = doc["messages"][:[m["kind"] for m in doc["messages"]].index("ARTIFACT")]
    assert [m["recipient"] for m in first if m["kind"] == "TASK_ASSIGN"] == analysts  # one dispatch, all five
    assert {m["recipient"] for m in kinds(doc, "REVIEW_RESULT") if m["approved"]} == set(analysts)
    gate = [m["label"] for m in kinds(doc, "CHECKPOINT") if m["correlation_id"] == "approval"]
    assert gate == ["approval requested", "approved"] and doc["status"] == "completed"


def test_dev_team_the_code_reviewer_reviews_and_sends_work_back(troupe: Troupe) -> None:
    doc = run(troupe, "dev-team", "Build a web app for todo management", "dev")
    tasks = {t["id"]: t for t in doc["plan"]["tasks"]}
    assert [t["assignee"] for t in tasks.values()] == ["architect", "backend", "backend", "frontend", "tests", "docs"]
    assert "code_reviewer" not in {t["assignee"] for t in tasks.values()}
    verdicts = kinds(doc, "REVIEW_RESULT")
    assert {m["sender"] for m in verdicts} == {"code_reviewer"}  # the team's reviewer, not the built-in one
    assert {m["recipient"] for m in kinds(doc, "REVIEW_REQUEST")} == {"code_reviewer"}
    sent_back = [m for m in verdicts if not m["approved"]]
    assert sent_back, "the offline frontend's first draft misses a criterion at this seed"
    again = [m for m in kinds(doc, "TASK_ASSIGN") if m["correlation_id"] == sent_back[0]["correlation_id"]]
    assert [m["round"] for m in again] == [1, 2] and again[1]["feedback"] == sent_back[0]["unmet_criteria"]
    assert doc["status"] == "completed" and all(r["status"] == "done" for r in doc["board"].values())


def test_assistant_stops_for_approval_before_booking_or_paying(troupe: Troupe) -> None:
    doc = run(troupe, "assistant", "I need to attend a conference in Berlin next month", "trip", "--await-approval")
    assignee = {t["id"]: t["assignee"] for t in doc["plan"]["tasks"]}
    assert list(assignee.values()) == ["research", "calendar", "travel", "finance", "email"]
    assert doc["status"] == "awaiting_approval" and "Approve T3 for travel" in doc["stdout"]
    assert {k: r["status"] for k, r in doc["board"].items()} == {
        "T1": "done", "T2": "done", "T3": "in_progress", "T4": "pending", "T5": "pending"}
    assert "T3" not in {m["correlation_id"] for m in kinds(doc, "TASK_ASSIGN")}  # nothing booked yet

    approved = troupe("approve", "trip", "--comment", "economy only")
    assert approved.returncode == 4 and "Approve T4 for finance" in approved.stdout, approved.stderr
    rejected = troupe("approve", "trip", "--reject", "--comment", "over budget")
    assert rejected.returncode == 4 and "Approve the team's work" in rejected.stdout, rejected.stderr
    done = troupe("approve", "trip")
    assert done.returncode == 3 and "status: completed" in done.stdout, done.stderr

    doc = show(troupe, "trip")
    decisions = [(m["correlation_id"], m["label"], m["note"]) for m in kinds(doc, "CHECKPOINT")
                 if m["label"] in ("approval requested", "approved", "rejected")]
    assert decisions[:4] == [("T3", "approval requested", "travel: " + doc["plan"]["tasks"][2]["title"]),
                             ("T3", "approved", "economy only"),
                             ("T4", "approval requested", "finance: " + doc["plan"]["tasks"][3]["title"]),
                             ("T4", "rejected", "over budget")]
    board = doc["board"]
    assert board["T3"]["status"] == "done" and board["T4"] == {**board["T4"], "status": "blocked",
                                                               "reason": "rejected by human: over budget", "round": 0}
    assert board["T5"]["status"] == "blocked" and "T4" in board["T5"]["reason"]  # the email depended on it
    assert "T4" not in {m["correlation_id"] for m in kinds(doc, "TASK_ASSIGN")}  # nothing was paid


@pytest.mark.parametrize(("section", "error"), [
    ("    reviewer: ghost\n", "x.yaml:7: patterns.hierarchical.reviewer: no role 'ghost' in team 'x'"),
    ("    approve_before: [a, ghost]\n", "x.yaml:7: patterns.hierarchical.approve_before[1]: no role 'ghost'"),
    ("    approve_after: [a]\n", "patterns.hierarchical.approve_after: Extra inputs are not permitted"),
])
def test_bad_hierarchical_settings_fail_the_build_in_one_line(tmp_path: Path, section: str, error: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: x\ndescription: one role\nroles:\n  - {name: a, capabilities: [research], prompt: Hi.}\n"
                    f"patterns:\n  hierarchical:\n{section}")
    with pytest.raises(TeamError) as caught:
        hierarchical.build(team=path)
    assert error in str(caught.value) and "\n" not in str(caught.value)
