"""Input a run cannot use is a one-line error before anything is written (settings, empty or huge tasks, URLs
with keys, another application's database); text shown on a terminal is escaped; a closed pipe is not a crash;
stray temporary files are swept."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from conftest import TODO_TASK, cli_env, with_runner
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.sqlite.aio import AsyncSqliteStore

from graphs.console import printable
from graphs.runtime import MAX_TASK_CHARS, Runner, TroupeError
from graphs.tracing import ensure_reachable
from state.context import RunContext
from state.urls import credential, redact
from tools.workspace import sweep


@pytest.mark.parametrize(("args", "says"), [
    (["--latency", "nan"], "latency nan is out of range"),
    (["--latency", "inf"], "latency inf is out of range"),
    (["--latency", "-1"], "latency -1.0 is out of range"),
    (["--max-review-rounds", "0"], "max_review_rounds 0 is out of range"),
    (["--max-review-rounds", "-3"], "max_review_rounds -3 is out of range"),
    (["--thread", "ok\n"], "bad thread id 'ok\\n'"),
])
def test_a_setting_a_run_cannot_use_is_refused_before_anything_is_written(troupe, db: Path, args: list[str],
                                                                          says: str) -> None:
    out = troupe("run", "hierarchical", "Build a REST API for todo management", *args)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr
    assert not db.exists()


def test_show_into_a_pipe_closed_early_ends_quietly(troupe, db: Path) -> None:
    assert troupe("run", "hierarchical", "Build a REST API for todo management", "--latency", "0",
                  "--thread", "piped").returncode == 0
    show = subprocess.Popen([sys.executable, "-m", "graphs.cli", "show", "piped", "--json"], env=cli_env(db),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert show.stdout is not None
    show.stdout.readline()  # like `| head -1`: read a line, then go away
    show.stdout.close()
    _, err = show.communicate(timeout=60)
    assert "Traceback" not in err.decode() and "BrokenPipe" not in err.decode()
    assert show.returncode == 0


# Another application's database is refused before anything is written to it.

def _sqlite(path: Path, *statements: str) -> bytes:
    with closing(sqlite3.connect(path)) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    return path.read_bytes()


@pytest.mark.parametrize(("statements", "tables"), [
    (["CREATE TABLE users (id INTEGER, name TEXT)", "CREATE TABLE orders (id INTEGER)"], "orders, users"),
    (["CREATE TABLE checkpoints (id INTEGER, body TEXT)"], "checkpoints"),
    (["CREATE TABLE store (prefix TEXT, key TEXT, value TEXT)", "CREATE TABLE notes (body TEXT)"], "notes, store"),
])
def test_another_applications_database_is_refused_and_left_unchanged(troupe, tmp_path: Path, statements: list[str],
                                                                     tables: str) -> None:
    other = tmp_path / "app.db"
    before = _sqlite(other, *statements)
    for command in (["runs"], ["run", "hierarchical", TODO_TASK, "--latency", "0"]):
        out = troupe("--db", str(other), *command)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"{other} is another application's database (tables: {tables}): point --db" in out.stderr
        assert other.read_bytes() == before
        assert not Path(f"{other}-wal").exists() and not (tmp_path / "app.cache.db").exists()


def test_a_troupe_database_of_an_older_version_and_an_empty_file_open(troupe, tmp_path: Path) -> None:
    async def langgraph_tables_only(db: Path) -> None:  # what troupe made before it had its own lease table
        async with aiosqlite.connect(db) as conn, aiosqlite.connect(db, isolation_level=None) as conn2:
            await AsyncSqliteSaver(conn).setup()
            await AsyncSqliteStore(conn2).setup()

    older, empty = tmp_path / "older.sqlite", tmp_path / "empty.sqlite"
    asyncio.run(langgraph_tables_only(older))
    empty.touch()
    for db in (older, empty):
        out = troupe("--db", str(db), "runs")
        assert out.returncode == 0 and "no runs yet" in out.stdout, out.stderr


# Empty and huge tasks and amendments.

@pytest.mark.parametrize(("task", "says"), [
    ("   \n\t", "the task is empty: say what the team should do"),
    ("x" * (MAX_TASK_CHARS + 1), f"the task is {MAX_TASK_CHARS + 1} characters; the limit is {MAX_TASK_CHARS}: put "
                                 "long material in a file the team reads, or shorten it"),
])
def test_an_empty_or_huge_task_is_refused_by_the_cli_and_the_runner(troupe, db: Path, ctx: RunContext, task: str,
                                                                    says: str) -> None:
    out = troupe("run", "hierarchical", task)
    assert out.returncode == 2 and out.stderr == f"troupe: error: {says}\n"
    assert not db.exists()
    with pytest.raises(TroupeError, match=re.escape(says)):
        with_runner(db, lambda runner: runner.start("hierarchical", task, ctx))
    assert with_runner(db, lambda runner: runner.runs()) == []


def test_a_task_at_the_limit_runs(db: Path, ctx: RunContext) -> None:
    task = "Build a REST API for todos. " + "x" * (MAX_TASK_CHARS - 28)
    outcome: Any = with_runner(db, lambda runner: runner.start("sequential", task, ctx, thread_id="long"))
    assert len(outcome.info.task) == MAX_TASK_CHARS and outcome.status == "completed"


def test_a_huge_amendment_is_refused(troupe) -> None:
    assert troupe("run", "hierarchical", TODO_TASK, "--latency", "0", "--thread", "big",
                  "--await-approval").returncode == 4
    out = troupe("amend", "big", "y" * (MAX_TASK_CHARS + 1))
    assert out.returncode == 2 and out.stderr == (f"troupe: error: the amendment is {MAX_TASK_CHARS + 1} characters; "
                                                  f"the limit is {MAX_TASK_CHARS}: put long material in a file the "
                                                  "team reads, or shorten it\n")


# Terminal output: escapes in a task or a model's output never reach the terminal raw.

RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
EVIL = "Build a REST API\x1b[2J\x1b]0;pwned\x07 for todos\r\x08\x9b31m\u202egnp.exe\u2066"


def test_printable_shows_controls_and_bidi_as_escapes_and_keeps_lines() -> None:
    assert printable(EVIL + "\n\tnext line é 日本") == ("Build a REST API\\x1b[2J\\x1b]0;pwned\\x07 for todos\\r\\x08"
                                                      "\\x9b31m\\u202egnp.exe\\u2066\n\tnext line é 日本")
    assert printable("\ud800\x00\x7f") == "\\ud800\\x00\\x7f"


def test_escapes_in_a_task_and_the_models_output_are_shown_escaped(troupe, db: Path) -> None:
    other = db.with_name("x\x1b]0;pwned\x07.db")  # an error message that holds a path and a table name
    _sqlite(other, 'CREATE TABLE "\x1b[2Jt" (x)')
    ran = troupe("run", "hierarchical", EVIL, "--latency", "0", "--thread", "evil", "--await-approval")
    approved = troupe("approve", "evil")
    outputs = [ran, approved, troupe("show", "evil"), troupe("runs"), troupe("resume", "evil"),
               troupe("--db", str(other), "runs")]
    for out in outputs:
        assert not RAW.search(out.stdout + out.stderr), (out.args, out.stdout, out.stderr)
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in ran.stdout  # in the task the feed prints, and in the plan the model made
    assert "Split 'Build a REST API\\x1b[2J" in ran.stdout and "waiting for approval" in ran.stdout
    assert "status: completed" in approved.stdout and "\\u202egnp.exe" in approved.stdout  # the model's summary
    assert "x\\x1b]0;pwned\\x07.db is another application's database (tables: \\x1b[2Jt)" in outputs[-1].stderr
    shown = json.loads(troupe("show", "evil", "--json").stdout)
    assert shown["task"] == EVIL.strip()  # stored as given; only the terminal views escape it


# URLs with credentials are refused, and redacted wherever shown.

def test_a_base_url_with_a_credential_is_refused_and_never_stored_or_shown(troupe, db: Path) -> None:
    for url in ("https://me:hunter2@llm.example/v1", "http://127.0.0.1:8000/v1?model=x&Api-Key=hunter2"):
        out = troupe("run", "hierarchical", TODO_TASK, "--base-url", url)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "carries a credential" in out.stderr and "$OPENAI_API_KEY" in out.stderr and "***" in out.stderr
        assert "hunter2" not in out.stderr and not db.exists()

    assert troupe("run", "hierarchical", TODO_TASK, "--latency", "0", "--thread", "keyless",
                  "--await-approval").returncode == 4
    out = troupe("resume", "keyless", "--base-url", "https://llm.example/v1?sig=hunter2")
    assert out.returncode == 2 and "carries a credential" in out.stderr and "hunter2" not in out.stderr
    assert json.loads(troupe("show", "keyless", "--json").stdout)["context"]["base_url"] is None


def test_a_team_files_base_url_with_a_credential_is_refused(troupe, tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text("name: keyed\ndescription: a team\nroles:\n  - name: writer\n    capabilities: [docs]\n"
                    "    prompt: You write.\n    model_settings:\n      base_url: https://llm.example/v1?key=hunter2\n")
    out = troupe("teams", "check", str(team))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"{team}:8: roles[0].model_settings.base_url: the URL https://llm.example/v1?key=*** carries a credential" \
        in out.stderr and "hunter2" not in out.stderr


def test_redact_hides_user_parts_and_key_parameters_only() -> None:
    assert redact("https://me:pw@llm.example:8443/v1?x=1&api_key=k&sig=s#f") == \
        "https://***@llm.example:8443/v1?x=1&api_key=***&sig=***#f"
    assert redact("http://127.0.0.1:8000/v1?model=x") == "http://127.0.0.1:8000/v1?model=x"
    assert credential("http://127.0.0.1:8000/v1") is None
    assert credential("https://h/v1?ACCESS-TOKEN=t") == "the query parameter 'ACCESS-TOKEN'"
    assert credential("https://u@h/v1") == "a user name and password"
    assert [credential(f"https://h/v1?{name}=v") is not None for name in ("key", "api_key", "token", "secret",
                                                                         "password", "signature", "model")] == \
        [True] * 6 + [False]


def test_the_tracing_warning_redacts_its_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGCHAIN_TRACING_V2", "true")  # ensure_reachable turns both off: restored after the test
    monkeypatch.setenv("LANGSMITH_ENDPOINT", "http://me:hunter2@127.0.0.1:9")
    warning = ensure_reachable(timeout=0.5)
    assert warning is not None and "http://***@127.0.0.1:9 did not answer" in warning and "hunter2" not in warning


# Temporary files a killed write left behind are swept.

STRAY = ".troupe-0123456789abcdef.tmp"


def test_sweep_removes_only_stray_temp_files_and_follows_no_link(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "docs").mkdir(parents=True)
    outside.mkdir()
    (outside / STRAY).write_text("not the workspace's")
    kept = [".troupe-notes.tmp", STRAY + ".bak", "x" + STRAY, ".troupe-0123456789ABCDEF.tmp", "docs/.troupe-1.tmp"]
    for name in [STRAY, f"docs/{STRAY}", *kept]:
        (root / name).write_text("data")
    (root / ".troupe-fedcba9876543210.tmp").symlink_to(outside / STRAY)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    sweep(root)
    assert not (root / STRAY).exists() and not (root / "docs" / STRAY).exists()
    assert all((root / name).read_text() == "data" for name in kept)
    assert (root / ".troupe-fedcba9876543210.tmp").is_symlink() and (outside / STRAY).exists()
    sweep(tmp_path / "missing")  # no workspace yet: nothing to do


def test_a_stray_temp_file_is_gone_after_resume(db: Path, ctx: RunContext) -> None:
    async def go() -> tuple[Path, str]:
        async with Runner.open(db) as runner:
            with pytest.raises(Exception, match="offline"):
                await runner.start("sequential", TODO_TASK, replace(ctx, fail={"worker": "raise"}), thread_id="swept")
            workspace = (await runner.info("swept")).workspace
            (workspace / STRAY).write_text("half a file")
            (workspace / ".troupe-mine.tmp").write_text("the user's")
            outcome = await runner.resume("swept", settings={"fail": {}})
            return workspace, outcome.status

    workspace, status = asyncio.run(go())
    assert status == "completed"
    assert not (workspace / STRAY).exists() and (workspace / ".troupe-mine.tmp").read_text() == "the user's"
