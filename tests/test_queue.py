"""The run queue on a real PostgreSQL server: runs submitted once, driven by stateless worker processes, one of them
SIGKILLed mid-run; every run finishes, nothing is lost and no finished subtask is done twice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import cli_env

from graphs.queue import enqueue, opened_queue
from graphs.runtime import Runner
from state.context import RunContext
from state.protocol import ArtifactMsg

pytestmark = pytest.mark.slow

RUNS, WORKERS = 20, 4


def cli(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphs.cli", *args], capture_output=True, text=True,
                          env=cli_env(url), stdin=subprocess.DEVNULL, timeout=timeout)


def held_by(url: str, pid: int) -> list[str]:
    """The runs whose lease process `pid` holds."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [t for (t,) in conn.execute("SELECT thread_id FROM troupe_leases WHERE pid = %s", (pid,))]


async def submit_rest(url: str, root: Path, first: int) -> None:
    async with Runner.open(url) as runner, opened_queue(url) as app:
        for i in range(first, RUNS):
            await enqueue(runner, app, "hierarchical", f"Build a REST API for todo list {i}",
                          RunContext(latency=0.05, workspace_root=str(root)), thread_id=f"q{i:02d}",
                          approval="auto")


async def outcomes(url: str) -> dict[str, tuple[str, Counter[tuple[str, int]], dict[str, str]]]:
    """Each run's status, its ARTIFACT messages by (subtask, round), and its subtasks' statuses."""
    async with Runner.open(url) as runner:
        found = {}
        for info in await runner.runs():
            outcome = await runner.outcome(info)
            artifacts = Counter((m.correlation_id, m.round) for m in await runner.journal(info.thread_id)
                                if isinstance(m, ArtifactMsg))
            board = {k: str(r.status) for k, r in (outcome.values.get("board") or {}).items()}
            found[info.thread_id] = (outcome.status, artifacts, board)
        return found


def test_twenty_runs_over_four_workers_survive_a_worker_killed_mid_run(postgres: str, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    submitted = cli(postgres, "submit", "hierarchical", "Build a REST API for todo list 0", "--thread", "q00",
                    "--latency", "0.05", "--auto-approve", "--workspace-root", str(root))
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == "q00"
    asyncio.run(submit_rest(postgres, root, 1))

    t0 = time.monotonic()
    workers = [subprocess.Popen([sys.executable, "-m", "graphs.cli", "worker", "--concurrency", "2"],
                                env=cli_env(postgres), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(WORKERS)]
    try:
        victim = workers[0]
        deadline = time.monotonic() + 120
        while not (cut := held_by(postgres, victim.pid)):  # kill it while it drives a run
            assert victim.poll() is None, victim.communicate()[0]
            assert time.monotonic() < deadline, "the first worker never took a run"
            time.sleep(0.02)
        victim.kill()
        victim.wait()
        killed_at = time.monotonic() - t0

        deadline = time.monotonic() + 240
        while True:
            found = asyncio.run(outcomes(postgres))
            if all(status == "completed" for status, _, _ in found.values()):
                break
            assert time.monotonic() < deadline, {t: s for t, (s, _, _) in found.items()}
            time.sleep(1)
        took = time.monotonic() - t0
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        logs = [w.communicate(timeout=60)[0] for w in workers]

    assert len(found) == RUNS
    for thread, (status, artifacts, board) in found.items():
        assert status == "completed", thread
        assert board and set(board.values()) == {"done"}, (thread, board)
        assert set(artifacts.values()) == {1}, f"{thread}: a finished subtask was done again: {artifacts}"
        assert {task for task, _ in artifacts} == set(board), thread
    survivors = "".join(logs[1:])
    for thread in cut:  # the killed worker's runs were queued again and finished by the others
        assert f"{thread}: its worker went silent; queued again" in survivors, survivors
        assert f"{thread}: completed" in survivors, (thread, survivors)
    assert all(w.returncode == 0 for w in workers[1:]), logs
    print(f"\n{RUNS} runs over {WORKERS} workers, one SIGKILLed at {killed_at:.1f} s holding {cut}: all completed "
          f"in {took:.1f} s", file=sys.stderr)


def test_submit_and_worker_refuse_a_sqlite_database_in_one_line(tmp_path: Path) -> None:
    for argv in (["submit", "hierarchical", "Build a todo API"], ["worker", "--once"]):
        done = cli(str(tmp_path / "troupe.sqlite"), *argv)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("troupe: error: the run queue needs PostgreSQL") and done.stderr.count("\n") == 1
    assert not (tmp_path / "troupe.sqlite").exists()


def test_a_bad_submission_queues_nothing_and_writes_nothing(postgres: str) -> None:
    done = cli(postgres, "submit", "hierarchical", "   ")
    assert done.returncode == 2 and "the task is empty" in done.stderr and "Traceback" not in done.stderr
    assert cli(postgres, "runs").stdout.startswith("no runs yet")
