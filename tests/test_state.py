"""State models: plan validation, the task-board reducer, the message protocol, roles and teams, workspace tools."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from pydantic import ValidationError

from nodes.teams import load_team
from state.plan import TERMINAL, PlanDraft, Subtask, TaskRecord, TaskStatus
from state.protocol import (
    ArtifactMsg,
    Blocker,
    CheckpointMsg,
    Conflict,
    Event,
    Kind,
    Message,
    Progress,
    Query,
    Replan,
    ReviewRequest,
    ReviewResult,
    TaskAssign,
    parse_message,
)
from state.roles import Role, Team, TeamError
from state.team import fold_board
from tools.workspace import WORKSPACE_TOOLS, workspace_config

SOFTWARE, CONTENT = load_team("software"), load_team("content")
TEAMS = {t.name: t for t in (SOFTWARE, CONTENT)}


def workspace_tools(root: Path) -> list[Any]:
    """The workspace tools bound to one folder, as a worker invokes them."""
    return [t.with_config(workspace_config(root)) for t in WORKSPACE_TOOLS]

# --- plans -------------------------------------------------------------------------------------------------------


def sub(task_id: str, *deps: str) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": f"Do {task_id}",
        "description": "Something useful.",
        "capability": "backend",
        "depends_on": list(deps),
        "acceptance_criteria": [f"{task_id} is done"],
    }


def draft(*subtasks: dict[str, Any]) -> PlanDraft:
    return PlanDraft(summary="test plan", subtasks=list(subtasks))


def test_plan_draft_accepts_a_valid_dag() -> None:
    plan = draft(sub("T1"), sub("T2", "T1"), sub("T3", "T1"), sub("T4", "T2", "T3"))
    assert [s.id for s in plan.subtasks] == ["T1", "T2", "T3", "T4"]
    assert plan.subtasks[3].depends_on == ["T2", "T3"]


def test_plan_draft_needs_subtasks_and_criteria() -> None:
    with pytest.raises(ValidationError):
        PlanDraft(summary="empty", subtasks=[])
    with pytest.raises(ValidationError):
        Subtask(**{**sub("T1"), "acceptance_criteria": []})


# A draft's repeated or unknown ids, self-dependencies and cycles are accepted here (only the shape is checked)
# and repaired by `nodes.plan_repair.normalize`: see tests/test_plan_repair.py.


def test_task_status_values_are_exactly_the_life_cycle() -> None:
    assert [s.value for s in TaskStatus] == [
        "pending", "assigned", "in_progress", "blocked", "in_review", "escalated", "done", "failed", "split",
    ]
    # ESCALATED waits for a person (retry, skip or edit), so it is not terminal; SPLIT is (its parts carry on)
    assert {TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.SPLIT} == TERMINAL
    assert TaskStatus("in_review") is TaskStatus.IN_REVIEW
    assert TaskRecord().status is TaskStatus.PENDING


# --- task board reducer ------------------------------------------------------------------------------------------


def merge(left: dict[str, TaskRecord] | None, right: dict[str, Any]) -> dict[str, TaskRecord]:
    """One write onto the board, as the board channel's reducer folds it."""
    return fold_board(left, [right])


def test_board_starts_from_nothing() -> None:
    rec = TaskRecord(status=TaskStatus.ASSIGNED)
    assert merge(None, {"T1": rec}) == {"T1": rec}


def test_board_takes_a_new_entry_read_back_as_a_dict() -> None:
    """A server that does not load our classes hands a pending write's record back as a dict."""
    rec = TaskRecord(status=TaskStatus.DONE, round=1, artifact="T1.md", summary="done")
    assert merge({}, {"T1": rec.model_dump(mode="json")}) == {"T1": rec}


def test_board_record_replaces_entry() -> None:
    old = TaskRecord(status=TaskStatus.IN_REVIEW, round=1, artifact="T1.md", summary="first draft", feedback=["x"])
    new = TaskRecord(status=TaskStatus.IN_PROGRESS, round=2)
    merged = merge({"T1": old}, {"T1": new})
    assert merged["T1"] == new
    assert merged["T1"].artifact is None  # replaced wholesale, nothing carried over
    assert merged["T1"].summary is None


def test_board_dict_patches_only_named_fields() -> None:
    left = {
        "T1": TaskRecord(status=TaskStatus.IN_REVIEW, round=2, artifact="T1-design.md", summary="the contract"),
        "T2": TaskRecord(status=TaskStatus.PENDING),
    }
    merged = merge(left, {"T1": {"status": TaskStatus.DONE}})
    t1 = merged["T1"]
    assert t1.status is TaskStatus.DONE
    assert t1.round == 2
    assert t1.artifact == "T1-design.md"
    assert t1.summary == "the contract"
    assert merged["T2"] == left["T2"]  # untouched entries survive
    # the reducer does not mutate its input
    assert left["T1"].status is TaskStatus.IN_REVIEW


def test_board_patch_is_validated() -> None:
    left = {"T1": TaskRecord()}
    merged = merge(left, {"T1": {"status": "failed", "reason": "boom"}})
    assert merged["T1"].status is TaskStatus.FAILED
    assert merged["T1"].reason == "boom"
    with pytest.raises(ValidationError):
        merge(left, {"T1": {"status": "not-a-status"}})


def test_board_mixes_replace_and_patch() -> None:
    left = {"T1": TaskRecord(round=1, summary="s1"), "T2": TaskRecord(round=1, summary="s2")}
    merged = merge(left, {"T1": TaskRecord(round=5), "T2": {"round": 3}, "T3": TaskRecord()})
    assert merged["T1"].summary is None and merged["T1"].round == 5
    assert merged["T2"].summary == "s2" and merged["T2"].round == 3
    assert set(merged) == {"T1", "T2", "T3"}


# --- protocol ----------------------------------------------------------------------------------------------------

COMMON = {"sender": "backend", "recipient": "supervisor", "correlation_id": "T3"}

SAMPLES: list[Message] = [
    TaskAssign(**COMMON, title="Implement the endpoints", round=2, feedback=["validate bodies"]),
    Progress(**COMMON, note="started round 1"),
    Blocker(**COMMON, reason="T1 failed"),
    ArtifactMsg(**COMMON, path="T3-backend.py", sha256="ab" * 32, summary="handlers", round=1),
    Query(**COMMON, question="Which status code for a duplicate?"),
    Conflict(**COMMON, topic="status codes", description="409 vs 400"),
    ReviewRequest(**COMMON, path="T3-backend.py", round=1),
    ReviewResult(**COMMON, approved=False, round=1, unmet_criteria=["Validates request bodies"], feedback="add it"),
    Replan(**COMMON, reason="scope changed", tasks=["T1", "T2"]),
    CheckpointMsg(**COMMON, label="plan", note="5 subtasks"),
    Event(**COMMON, topic="design", seq=1, payload="contract ready", cause="E1"),
]


def test_samples_cover_every_kind() -> None:
    kinds = [m.kind for m in SAMPLES]  # type: ignore[attr-defined]
    assert len(Kind) == 11
    assert sorted(kinds) == sorted(Kind)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.kind.value)
def test_message_round_trips_to_its_own_class(msg: Message) -> None:
    data = msg.model_dump(mode="json")
    assert data["kind"] == msg.kind.value  # type: ignore[attr-defined]
    parsed = parse_message(data)
    assert type(parsed) is type(msg)
    assert parsed == msg
    assert parsed.sender == "backend"
    assert parsed.recipient == "supervisor"
    assert parsed.correlation_id == "T3"
    assert parsed.timestamp == msg.timestamp
    assert isinstance(parsed.timestamp, float) and parsed.timestamp > 0
    assert parsed.id == msg.id


def test_parse_message_rejects_unknown_kind_and_missing_fields() -> None:
    with pytest.raises(ValidationError):
        parse_message({**COMMON, "kind": "GOSSIP", "note": "x"})
    with pytest.raises(ValidationError):
        parse_message({"kind": "PROGRESS", "sender": "a", "recipient": "b", "note": "no correlation id"})


def test_message_ids_sort_in_creation_order() -> None:
    msgs = [Progress(**COMMON, note=str(i)) for i in range(300)]
    ids = [m.id for m in msgs]
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    assert [m.note for m in sorted(msgs, key=lambda m: m.id)] == [str(i) for i in range(300)]


# --- roles and teams ---------------------------------------------------------------------------------------------


def role(name: str, *caps: str) -> Role:
    return Role(name=name, capabilities=list(caps), prompt=f"You are {name}.")


def test_team_rejects_duplicate_role_names() -> None:
    with pytest.raises(ValidationError, match="duplicate role name 'qa'"):
        Team(name="t", description="d", roles=[role("qa", "testing"), role("qa", "qa")])


def test_role_name_pattern_and_capabilities_required() -> None:
    with pytest.raises(ValidationError):
        Role(name="Bad Name", capabilities=["x"], prompt="p")
    with pytest.raises(ValidationError):
        Role(name="ok", capabilities=[], prompt="p")


def test_for_capability_prefers_main_capability() -> None:
    team = Team(
        name="t",
        description="d",
        roles=[role("generalist", "backend", "testing"), role("tester", "testing", "qa"), role("doc", "writing")],
    )
    assert team.for_capability("testing").name == "tester"  # main skill wins over list order
    assert team.for_capability("  Testing ").name == "tester"  # normalised
    assert team.for_capability("backend").name == "generalist"
    assert team.for_capability("qa").name == "tester"  # secondary skill when nobody has it as main


def test_for_capability_falls_back_to_first_listing_role() -> None:
    team = Team(name="t", description="d", roles=[role("a", "x", "shared"), role("b", "y", "shared")])
    assert team.for_capability("shared").name == "a"
    assert SOFTWARE.for_capability("writing").name == "tech_writer"
    assert CONTENT.for_capability("writing").name == "writer"


def test_for_capability_unknown_raises_lookup_error_naming_it() -> None:
    with pytest.raises(LookupError, match="astrology") as exc:
        SOFTWARE.for_capability("astrology")
    assert "software" in str(exc.value)


def test_team_role_lookup() -> None:
    assert SOFTWARE.role("qa").capabilities[0] == "testing"
    with pytest.raises(KeyError):
        SOFTWARE.role("ghost")


def test_load_team_known_and_unknown() -> None:
    assert load_team("software") == SOFTWARE
    content = ["researcher", "outliner", "writer", "fact_checker", "seo", "editor"]
    assert [r.name for r in load_team("content").roles] == content
    with pytest.raises(TeamError) as exc:
        load_team("marketing")
    message = str(exc.value)
    assert "marketing" in message
    for name in TEAMS:
        assert name in message


def test_every_capability_of_ready_made_teams_resolves_to_a_role() -> None:
    for team in TEAMS.values():
        for cap in team.capabilities():
            assert cap in team.for_capability(cap).capabilities


# --- workspace tools ---------------------------------------------------------------------------------------------


def call(name: str, call_id: str = "c1", **args: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "args": args}


def test_workspace_write_then_read_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    write, read = workspace_tools(root)
    assert [t.name for t in WORKSPACE_TOOLS] == ["write_file", "read_file"]
    content = "# Title\n\nnon-ascii: héllo ✓\n"
    msg = write.invoke(call("write_file", path="docs/T1-design.md", content=content))
    assert isinstance(msg, ToolMessage)
    assert msg.status != "error"
    assert msg.artifact == {"path": "docs/T1-design.md", "sha256": hashlib.sha256(content.encode("utf-8")).hexdigest()}
    assert (root / "docs" / "T1-design.md").read_text(encoding="utf-8") == content
    assert read.invoke({"path": "docs/T1-design.md"}) == content
    read_msg = read.invoke(call("read_file", call_id="c2", path="docs/T1-design.md"))
    assert read_msg.content == content


def test_workspace_write_is_idempotent_and_replaces(tmp_path: Path) -> None:
    write, read = workspace_tools(tmp_path)
    first = write.invoke(call("write_file", path="a.md", content="one"))
    again = write.invoke(call("write_file", path="a.md", content="one"))
    assert first.artifact == again.artifact
    other = write.invoke(call("write_file", path="a.md", content="two"))
    assert other.artifact["sha256"] == hashlib.sha256(b"two").hexdigest() != first.artifact["sha256"]
    assert read.invoke({"path": "a.md"}) == "two"


@pytest.mark.parametrize("bad", ["../x.md", "sub/../../x.md", "ABSOLUTE"])
def test_workspace_refuses_paths_outside_root(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    outside = tmp_path / "x.md"
    if bad == "ABSOLUTE":
        bad = str(outside)
    write, read = workspace_tools(root)
    msg = write.invoke(call("write_file", path=bad, content="escaped"))
    assert isinstance(msg, ToolMessage)
    assert msg.status == "error"
    assert "outside the workspace" in msg.content
    assert msg.artifact is None
    assert not outside.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ws"]
    outside.write_text("secret", encoding="utf-8")
    refused = read.invoke({"path": bad})
    assert "outside the workspace" in refused
    assert "secret" not in refused


def test_workspace_refuses_symlink_escape(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, root / "link")
    write, _ = workspace_tools(root)
    msg = write.invoke(call("write_file", path="link/x.md", content="escaped"))
    assert msg.status == "error"
    assert not (elsewhere / "x.md").exists()


def test_workspace_read_missing_file_is_an_error_message(tmp_path: Path) -> None:
    _, read = workspace_tools(tmp_path)
    msg = read.invoke(call("read_file", path="nope.md"))
    assert msg.status == "error"
    assert "nope.md" in msg.content
