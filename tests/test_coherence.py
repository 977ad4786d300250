"""The coherence checker finds names that drift from the contract or from the artifacts' majority, and lints code."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tools.coherence import Drift, LintFinding, RuffError, fix_up, lint, naming_drift
from tools.verify import Failure

CONTRACT = ["user_id", "expires_at", "TodoStore", "status"]

PERSISTENCE = """\
class TodoStore:
    def get(self, userId):
        row = self.rows[userId]
        return row["expires_at"]

    def remove(self, userId):
        del self.rows[userId]
"""


def test_contract_drift_is_found_with_line_numbers() -> None:
    texts = {"t2_persistence.py": PERSISTENCE,
             "t1_api.md": "# Todo API\n\nEvery todo has a `UserID` and an `expiresAt`.\nSend the user-id header.\n"}
    assert naming_drift(texts, CONTRACT) == [
        Drift("t1_api.md", "UserID", "user_id", 3),
        Drift("t1_api.md", "expiresAt", "expires_at", 3),
        Drift("t1_api.md", "user-id", "user_id", 4),
        Drift("t2_persistence.py", "userId", "user_id", 2),
        Drift("t2_persistence.py", "userId", "user_id", 3),
        Drift("t2_persistence.py", "userId", "user_id", 6),
        Drift("t2_persistence.py", "userId", "user_id", 7),
    ]


def test_terminology_follows_the_majority_and_ties_the_first_spelling() -> None:
    texts = {"t1_api.md": "Todos are sorted by `created_at`.\n", "t2_store.py": "created_at = now()\n",
             "t3_views.py": "x = row.createdAt\n", "t4_cli.py": "print(created_at)\n",
             "t5_a.py": "dueDate = 1\n", "t6_b.py": "due_date = 2\n"}
    assert naming_drift(texts, CONTRACT) == [Drift("t3_views.py", "createdAt", "created_at", 1, "terminology"),
                                             Drift("t6_b.py", "due_date", "dueDate", 1, "terminology")]


def test_prose_plain_words_and_python_conventions_are_not_drift() -> None:
    texts = {
        "README.md": "# Design\n\nA well-known, end-to-end design: the user id is checked up-to-date.\n"
                     "Status codes are the usual ones. STATUS: done. Each user has an id; expires at midnight.\n",
        "notes.md": "Our end_to_end suite and the wellKnown list.\n",
        "t2_persistence.py": "USER_ID = 'user_id'\n\nclass UserId(str):\n    pass\n\n"
                             "todo_store = TodoStore()\n_user_id = todo_store.status\n",
    }
    assert naming_drift(texts, CONTRACT) == []


def test_fix_up_gives_concise_instructions_for_one_file() -> None:
    items: list[Drift | LintFinding | Failure] = [
        Drift("t2.py", "userId", "user_id", 9), Drift("t2.py", "userId", "user_id", 3),
        Drift("t9.py", "userId", "user_id", 1), LintFinding("t2.py", 1, "F401", "`os` imported but unused"),
        Drift("t2.py", "createdAt", "created_at", 4, "terminology"),
        Failure("t2.py", "test", "t5.py::test_get failed: AssertionError")]
    assert fix_up("t2.py", items) == (
        "Fix t2.py:\n- rename userId to user_id on lines 3, 9 (the contract's name)\n"
        "- rename createdAt to created_at on line 4 (the spelling the other artifacts use)\n"
        "- F401 line 1: `os` imported but unused\n- test failure: t5.py::test_get failed: AssertionError")
    assert fix_up("t1.md", items) == ""


def test_lint_finds_unused_imports_and_undefined_names_with_lines(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "t3_api.py").write_text("import os\nimport json\n\n\ndef handler(event):\n"
                                                "    return json.dumps(evnt)\n")
    (tmp_path / "t2_persistence.py").write_text("def get(rows, key):\n    return rows[key]\n")
    findings = asyncio.run(lint(tmp_path, ["t2_persistence.py", "pkg/t3_api.py", "t1_design.md"]))
    assert findings == [LintFinding("pkg/t3_api.py", 1, "F401", "`os` imported but unused"),
                        LintFinding("pkg/t3_api.py", 6, "F821", "Undefined name `evnt`")]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["pkg", "t2_persistence.py", "t3_api.py"]


def test_lint_without_python_files_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no subprocess expected")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", refuse)
    assert asyncio.run(lint(tmp_path, ["t1_design.md"])) == []


def test_lint_without_ruff_raises_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'No module named ruff' >&2\nexit 1\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(RuffError, match="No module named ruff"):
        asyncio.run(lint(tmp_path, ["a.py"]))
