"""Atomic start (issue 13, finding 2): a run exists once its index entry is written, and a run that has one but
no checkpoint yet (killed or failed in between) is started again from its task by `resume`. Every "run
stopped" hint names a run that can be resumed, or says nothing was saved; input that cannot be stored (a seed
beyond 64 bits, a task that is not UTF-8) is refused before anything is written."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import TODO_TASK, cli_env
from langgraph.store.sqlite.aio import AsyncSqliteStore

from graphs import cli
from graphs.runtime import INDEX, MAX_SEED, Runner, TroupeError
from state.context import RunContext

# Starts a run whose process is SIGKILLed right after the index entry is written, before the first checkpoint.
KILLED_BEFORE_FIRST_CHECKPOINT = """
import os, signal, sys
from graphs import cli
from graphs.runtime import Runner

async def die(self, info, payload, listener):
    os.kill(os.getpid(), signal.SIGKILL)

Runner._drive = die
sys.exit(cli.main(sys.argv[1:]))
"""


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("troupe: error:"), result.stderr
    return lines[0]


def test_a_run_killed_before_its_first_checkpoint_is_resumed_from_its_task(db: Path, troupe) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLED_BEFORE_FIRST_CHECKPOINT, "run", "hierarchical", TODO_TASK,
                             "--thread", "early", "--latency", "0"], env=cli_env(db), capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sqlite3.connect(db).execute("SELECT count(*) FROM checkpoints").fetchone() == (0,)
    listed = troupe("runs")
    assert listed.returncode == 0 and listed.stdout.split()[:3] == ["early", "hierarchical", "stopped"]
    again = _one_line_error(troupe("run", "hierarchical", TODO_TASK, "--thread", "early"))
    assert "thread 'early' already exists: resume it with `troupe resume early`" in again
    resumed = troupe("resume", "early", "--auto-approve")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming hierarchical run early: " + TODO_TASK in resumed.stdout and "status: completed" in resumed.stdout
    fresh = troupe("run", "hierarchical", TODO_TASK, "--thread", "fresh", "--latency", "0", "--auto-approve")
    assert fresh.returncode == 0, fresh.stderr
    early, done = (json.loads(troupe("show", t, "--json").stdout) for t in ("early", "fresh"))
    assert early["status"] == "completed" and early["plan"] == done["plan"] and early["board"] == done["board"]


@pytest.fixture
def cli_in_process(db: Path, monkeypatch: pytest.MonkeyPatch):
    """`troupe ARGS` in this process (so that the runtime can be patched), with its exit code and stderr."""
    for key in [k for k in os.environ if k.startswith(("TROUPE_", "OPENAI_", "LANGSMITH_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)

    def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        code = cli.main(["--db", str(db), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_run_failing_before_its_first_checkpoint_names_a_run_that_resumes(
        cli_in_process, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    drive = Runner._drive

    async def fail_at_start(self: Runner, info: Any, payload: Any, listener: Any) -> Any:
        if payload == {"task": info.task} and info.thread_id == "flaky":
            raise ConnectionError("the network went away")
        return await drive(self, info, payload, listener)

    monkeypatch.setattr(Runner, "_drive", fail_at_start)
    code, _, err = cli_in_process("run", "hierarchical", TODO_TASK, "--thread", "flaky", "--latency", "0",
                                  capsys=capsys)
    assert code == 1 and "Traceback" not in err
    assert err.splitlines() == ["troupe: run stopped: ConnectionError: the network went away",
                                "troupe: the run is saved; fix the cause, then `troupe resume flaky`"]
    monkeypatch.setattr(Runner, "_drive", drive)
    code, out, err = cli_in_process("resume", "flaky", "--auto-approve", capsys=capsys)
    assert code == 0, err
    assert "status: completed" in out


def test_a_write_failing_before_anything_is_saved_says_so(
        cli_in_process, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only database: the index entry cannot be written, so there is nothing to resume."""
    aput = AsyncSqliteStore.aput

    async def read_only(self: AsyncSqliteStore, namespace: tuple[str, ...], *args: Any, **kwargs: Any) -> None:
        if namespace == INDEX:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        await aput(self, namespace, *args, **kwargs)

    monkeypatch.setattr(AsyncSqliteStore, "aput", read_only)
    code, _, err = cli_in_process("run", "hierarchical", TODO_TASK, "--thread", "ro", capsys=capsys)
    assert code == 1 and "troupe resume" not in err
    assert err.splitlines() == ["troupe: run stopped: OperationalError: attempt to write a readonly database",
                                "troupe: it failed before anything was saved: fix the cause, then run it again"]
    assert cli_in_process("runs", capsys=capsys)[1].startswith("no runs yet")


def test_a_locked_database_says_nothing_was_saved(db: Path, troupe) -> None:
    assert troupe("runs").returncode == 0  # the schema exists; another process then holds the write lock
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        out = troupe("run", "hierarchical", TODO_TASK, "--thread", "lk", "--latency", "0")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert out.returncode == 1 and "Traceback" not in out.stderr and "troupe resume" not in out.stderr
    assert out.stderr.splitlines()[-2:] == ["troupe: run stopped: OperationalError: database is locked",
                                            "troupe: it failed before anything was saved: fix the cause, then run "
                                            "it again"]
    assert troupe("runs").stdout.startswith("no runs yet")


@pytest.mark.parametrize("seed", [str(MAX_SEED + 1), str(2**64), "-1", "1" + "0" * 30])
def test_a_seed_beyond_64_bits_is_refused_before_anything_is_written(db: Path, troupe, seed: str) -> None:
    line = _one_line_error(troupe("run", "hierarchical", TODO_TASK, "--seed", seed))
    assert line == f"troupe: error: seed {seed} is out of range: use a whole number from 0 to {MAX_SEED}"
    assert not db.exists()


def test_the_largest_seed_runs(troupe) -> None:
    out = troupe("run", "hierarchical", TODO_TASK, "--seed", str(MAX_SEED), "--latency", "0", "--auto-approve")
    assert out.returncode == 0, out.stderr
    assert "status: completed" in out.stdout


def test_a_task_that_is_not_utf8_is_refused_before_anything_is_written(db: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "graphs.cli", "run", "hierarchical", b"Build a \xff\xfe todo API"],
                         env=cli_env(db), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert _one_line_error(out) == ("troupe: error: the task is not valid UTF-8 text: pass it in UTF-8 (check the "
                                    "terminal's or the file's encoding)")
    assert not db.exists()


def test_the_runner_checks_the_task_and_seed_too(db: Path, ctx: RunContext) -> None:
    """Library callers get the same checks, before the index entry is written."""

    async def go() -> None:
        async with Runner.open(db) as runner:
            with pytest.raises(TroupeError, match="not valid UTF-8"):
                await runner.start("hierarchical", "Build \udcff", ctx, thread_id="u")
            with pytest.raises(TroupeError, match="out of range"):
                await runner.start("hierarchical", TODO_TASK, replace(ctx, seed=2**64), thread_id="s")
            assert await runner.runs() == []

    asyncio.run(go())
