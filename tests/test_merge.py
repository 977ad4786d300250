"""Parallel writers of one step writing the same workspace file: their edits are merged three-way, and
overlapping edits are kept aside for the supervisor instead of one silently clobbering the other."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import ToolException

from tools.merge import Merged, merge3, merges_folder
from tools.workspace import WORKSPACE_TOOLS, resolve_conflict, workspace_config, write_file

BASE = "".join(f"line {i}\n" for i in range(16))


def edit(text: str, line: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line] = new + "\n"
    return "".join(lines)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def as_writer(root: Path, writer: str, step: int = 3) -> RunnableConfig:
    return workspace_config(root, {"configurable": {"troupe_writer": writer}, "metadata": {"langgraph_step": step}})


def write(root: Path, writer: str, content: str, step: int = 3, path: str = "shared.md") -> ToolMessage:
    call = {"name": "write_file", "args": {"path": path, "content": content}, "id": "1", "type": "tool_call"}
    msg = WORKSPACE_TOOLS[0].invoke(call, as_writer(root, writer, step))
    assert isinstance(msg, ToolMessage)
    return msg


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "shared.md").write_text(BASE)
    return root


def test_merge3_merges_edits_of_different_lines() -> None:
    merged = merge3(edit(BASE, 1, "theirs"), BASE, edit(BASE, 5, "mine"))
    assert merged == Merged(edit(edit(BASE, 1, "theirs"), 5, "mine"), 0)


def test_merge3_counts_overlapping_edits_and_marks_them() -> None:
    merged = merge3(edit(BASE, 1, "theirs"), BASE, edit(BASE, 1, "mine"))
    assert merged.conflicts == 1
    assert "<<<<<<< current\ntheirs\n=======\nmine\n>>>>>>> mine\n" in merged.text


def test_two_writers_editing_different_lines_both_land(ws: Path) -> None:
    first = write(ws, "T1", edit(BASE, 1, "by T1"))
    assert first.artifact == {"path": "shared.md", "sha256": sha(edit(BASE, 1, "by T1"))}
    second = write(ws, "T2", edit(BASE, 9, "by T2"))
    both = edit(edit(BASE, 1, "by T1"), 9, "by T2")
    assert (ws / "shared.md").read_text() == both
    assert second.status != "error" and "merged with" in second.content and "T1" in second.content
    assert second.artifact == {"path": "shared.md", "sha256": sha(both), "merged_with": ["T1"]}


def test_a_writer_revising_its_edit_merges_only_the_revision(ws: Path) -> None:
    write(ws, "T1", edit(BASE, 1, "by T1"))
    write(ws, "T2", edit(BASE, 9, "by T2"))
    again = write(ws, "T1", edit(BASE, 1, "by T1, revised"))  # built on its own version, without T2's edit
    assert (ws / "shared.md").read_text() == edit(edit(BASE, 1, "by T1, revised"), 9, "by T2")
    assert again.artifact["merged_with"] == ["T2"]


def test_overlapping_edits_keep_the_first_and_save_both_sides(ws: Path) -> None:
    theirs, mine = edit(BASE, 4, "by T1"), edit(BASE, 4, "by T2")
    write(ws, "T1", theirs)
    msg = write(ws, "T2", mine)
    assert (ws / "shared.md").read_text() == theirs
    assert msg.status != "error"
    assert "overlaps" in msg.content and "T1" in msg.content and "supervisor" in msg.content
    assert "do not retry" in msg.content
    conflict = msg.artifact["conflict"]
    assert msg.artifact == {"path": "shared.md", "sha256": sha(mine), "conflict": conflict}
    assert {k: v for k, v in conflict.items() if not k.endswith("_file")} == {
        "path": "shared.md", "with": ["T1"], "mine_sha256": sha(mine), "theirs_sha256": sha(theirs),
        "base_sha256": sha(BASE), "conflicts": 1}
    for side, text in (("mine", mine), ("theirs", theirs), ("base", BASE)):
        saved = Path(conflict[f"{side}_file"])
        assert saved.is_absolute() and saved.read_text() == text
    assert resolve_conflict(ws, conflict, "mine") == sha(mine)
    assert (ws / "shared.md").read_text() == mine
    assert resolve_conflict(ws, conflict, "theirs") == sha(theirs)
    assert (ws / "shared.md").read_text() == theirs


def test_two_writers_creating_the_same_file_conflict_with_no_base(ws: Path) -> None:
    write(ws, "T1", "one\n", path="new.md")
    conflict = write(ws, "T2", "two\n", path="new.md").artifact["conflict"]
    assert (ws / "new.md").read_text() == "one\n"
    assert conflict["base_sha256"] is None and conflict["base_file"] is None
    assert Path(conflict["mine_file"]).read_text() == "two\n"


def test_resolve_conflict_refuses_a_version_that_is_not_the_saved_one(ws: Path) -> None:
    write(ws, "T1", edit(BASE, 4, "by T1"))
    conflict = write(ws, "T2", edit(BASE, 4, "by T2")).artifact["conflict"]
    with pytest.raises(ToolException, match="changed since"):
        resolve_conflict(ws, {**conflict, "mine_sha256": sha("other")}, "mine")
    outside = ws.parent / "outside.md"
    outside.write_text("x")
    with pytest.raises(ToolException, match="not a version saved"):
        resolve_conflict(ws, {**conflict, "mine_file": str(outside), "mine_sha256": sha("x")}, "mine")
    assert (ws / "shared.md").read_text() == edit(BASE, 4, "by T1")


def test_the_same_writer_re_running_its_step_overwrites_its_own_attempt(ws: Path) -> None:
    write(ws, "T1", edit(BASE, 4, "first attempt"))
    again = write(ws, "T1", edit(BASE, 4, "second attempt"))
    assert (ws / "shared.md").read_text() == edit(BASE, 4, "second attempt")
    assert again.artifact == {"path": "shared.md", "sha256": sha(edit(BASE, 4, "second attempt"))}


def test_a_later_step_starts_from_the_new_base(ws: Path) -> None:
    write(ws, "T1", edit(BASE, 4, "step 3"), step=3)
    later = write(ws, "T2", edit(edit(BASE, 4, "step 3"), 4, "step 4"), step=4)
    assert later.artifact == {"path": "shared.md", "sha256": sha(edit(BASE, 4, "step 4"))}
    assert (ws / "shared.md").read_text() == edit(BASE, 4, "step 4")


def test_parallel_writers_of_one_step_all_land(ws: Path) -> None:
    writers = 8
    start = threading.Barrier(writers)
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        start.wait()
        results[i] = write_file("shared.md", edit(BASE, 2 * i, f"by T{i}"), as_writer(ws, f"T{i}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = BASE
    for i in range(writers):
        expected = edit(expected, 2 * i, f"by T{i}")
    assert (ws / "shared.md").read_text() == expected
    assert sum("merged_with" in artifact for _, artifact in results.values()) == writers - 1


def test_without_a_writer_a_write_replaces_the_file(ws: Path) -> None:
    write_file("shared.md", edit(BASE, 4, "a"), workspace_config(ws, {"metadata": {"langgraph_step": 3}}))
    _, artifact = write_file("shared.md", edit(BASE, 4, "b"), workspace_config(ws))
    assert artifact == {"path": "shared.md", "sha256": sha(edit(BASE, 4, "b"))}
    assert not merges_folder(ws).exists()


def test_bookkeeping_stays_outside_the_workspace(ws: Path) -> None:
    write(ws, "T1", edit(BASE, 4, "by T1"))
    write(ws, "T2", edit(BASE, 4, "by T2"))
    assert sorted(p.name for p in ws.rglob("*")) == ["shared.md"]
    assert merges_folder(ws) == ws.parent / ".merges" / "ws"
    assert (merges_folder(ws) / "3").is_dir()


@pytest.mark.parametrize(("bad", "why"), [("../x", "outside the workspace"), ("/etc/passwd", "outside the workspace"),
                                          ("", "empty path"), ("docs/", "names a folder")])
def test_bad_paths_are_the_same_tool_errors(ws: Path, bad: str, why: str) -> None:
    msg = write(ws, "T1", "x", path=bad)
    assert msg.status == "error" and why in msg.content and msg.artifact is None
    with pytest.raises(ToolException, match=why):
        write_file(bad, "x", workspace_config(ws))
    assert not merges_folder(ws).exists()


def test_a_link_or_folder_target_is_refused_as_a_plain_write_refuses_it(ws: Path) -> None:
    (ws / "folder").mkdir()
    (ws / "link.md").symlink_to(ws / "shared.md")
    for path, why in (("folder", "is a folder, not a file"), ("link.md", "is a symbolic link")):
        with pytest.raises(ToolException, match=why) as plain:
            write_file(path, "x", workspace_config(ws))
        msg = write(ws, "T1", "x", path=path)
        assert msg.status == "error" and msg.content == str(plain.value)
    assert (ws / "shared.md").read_text() == BASE
