"""The verifier compiles a team's Python artifacts and runs the team's tests, confined, blaming the artifact to fix."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from blockbuster import blockbuster_ctx

from tools.verify import Failure, verify

STORE = """\
class TodoStore:
    def __init__(self):
        self.rows = []

    def add(self, title):
        self.rows.append(title)
        return len(self.rows) - 1

    def get(self, todo_id):
        return self.rows[todo_id]
"""

TESTS = """\
from t2_persistence import TodoStore


def test_get_returns_the_added_row():
    store = TodoStore()
    first = store.add("milk")
    store.add("eggs")
    assert store.get(first) == "milk"


def test_a_missing_row_is_none(tmp_path):
    (tmp_path / "scratch.txt").write_text("the team's own temporary file")
    assert not TodoStore().get(5)
"""


def workspace(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    for name, text in files.items():
        (root / f"{name}.py").write_text(text)
    return root


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run(root: Path, files: list[str], **options: Any) -> list[Failure]:
    return asyncio.run(verify(root, files, **options))


def test_a_passing_suite_has_no_failures(tmp_path: Path) -> None:
    fixed = STORE.replace("return self.rows[todo_id]", "return self.rows[todo_id] if todo_id < len(self.rows) else 0")
    root = workspace(tmp_path, t2_persistence=fixed, t5_testing=TESTS)
    assert run(root, ["t2_persistence.py", "t5_testing.py", "README.md"]) == []


def test_a_bug_in_a_module_blames_the_module(tmp_path: Path) -> None:
    """`get` returns the wrong row (the assertion fails in the test) and raises on a missing one (in the module)."""
    root = workspace(tmp_path, t2_persistence=STORE.replace("self.rows[todo_id]", "self.rows[todo_id + 1]"),
                     t5_testing=TESTS)
    wrong_row, raised = run(root, ["t2_persistence.py", "t5_testing.py"])
    assert (wrong_row.file, wrong_row.check) == ("t2_persistence.py", "test")
    assert wrong_row.message.startswith("t5_testing.py::test_get_returns_the_added_row failed: AssertionError")
    assert "assert 'eggs' == 'milk'" in wrong_row.message and len(wrong_row.message) <= 400
    assert (raised.file, raised.check) == ("t2_persistence.py", "test")
    assert "t5_testing.py::test_a_missing_row_is_none" in raised.message and "IndexError" in raised.message
    assert "t2_persistence.py:10 `return self.rows[todo_id + 1]`" in raised.message


def test_a_name_missing_from_a_module_blames_that_module(tmp_path: Path) -> None:
    root = workspace(tmp_path, t2_persistence=STORE, t5_testing="from t2_persistence import Store\n\n"
                                                                "def test_x():\n    assert Store\n")
    [failure] = run(root, ["t2_persistence.py", "t5_testing.py"])
    assert failure.file == "t2_persistence.py" and failure.message.startswith("t5_testing.py (collection) errored")
    assert "cannot import name 'Store'" in failure.message


def test_a_syntax_error_is_a_compile_failure_with_its_line(tmp_path: Path) -> None:
    root = workspace(tmp_path, t3_api="import json\n\ndef handler(event:\n    return json.dumps(event)\n")
    [failure] = run(root, ["t3_api.py"])
    assert (failure.file, failure.check) == ("t3_api.py", "compile")
    assert failure.message.startswith("line 3: ") and "def handler(event:" in failure.message


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_an_endless_test_times_out_and_leaves_no_process(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    root = workspace(tmp_path, t5_testing=f"""\
import os, subprocess

def test_forever():
    child = subprocess.Popen(["sleep", "60"])
    open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
    while True: pass
""")
    started = time.monotonic()
    [failure] = run(root, ["t5_testing.py"], timeout=2)
    assert time.monotonic() - started < 4
    assert (failure.file, failure.check) == ("t5_testing.py", "timeout")
    assert failure.message == "the tests did not finish within 2s; stuck at t5_testing.py:6 in test_forever"
    assert not [pid for pid in map(int, pids.read_text().split()) if alive(pid)]


def test_nothing_is_written_into_the_workspace(tmp_path: Path) -> None:
    root = workspace(tmp_path, t2_persistence=STORE, t5_testing=TESTS)
    (root / "docs").mkdir()
    before = tree(root)
    assert len(run(root, ["t2_persistence.py", "t5_testing.py"])) == 1
    assert tree(root) == before


def test_the_team_tests_see_no_secret_and_no_project_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the parent's environment nor a pytest config above the workspace (nor our plugins) reach the run."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "-n 2 --no-such-option"\n')
    root = workspace(tmp_path, t5_testing="""\
import os, sys

def test_isolated():
    assert os.environ.get("OPENAI_API_KEY") is None
    assert not {"xdist", "pytest_socket", "pytest_timeout"} & set(sys.modules)
""")
    assert run(root, ["t5_testing.py"]) == []


def test_without_tests_there_is_no_subprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no subprocess expected")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", refuse)
    root = workspace(tmp_path, t2_persistence=STORE)
    assert run(root, ["t2_persistence.py", "t1_design.md"]) == []
    assert run(root, []) == []


def test_verify_does_not_block_the_event_loop(tmp_path: Path) -> None:
    root = workspace(tmp_path, t2_persistence=STORE, t5_testing=TESTS, t3_api="def broken(:\n")

    async def checked() -> list[Failure]:
        with blockbuster_ctx():
            return await verify(root, ["t2_persistence.py", "t3_api.py", "t5_testing.py"])

    assert [(f.file, f.check) for f in asyncio.run(checked())] == [("t3_api.py", "compile"),
                                                                  ("t2_persistence.py", "test")]
