"""One owner per run: a second process on a live run is refused (or waits); a killed owner's lease lapses."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import TODO_TASK, cli_env, with_runner

from graphs import lease
from graphs.lease import HOST, Busy, Leases
from graphs.runtime import Runner
from state.protocol import Kind


@pytest.fixture
def leases(db: Path) -> Leases:
    found = Leases(db)
    found.setup()
    return found


def test_a_held_lease_is_refused_to_another_token_until_given_back(leases: Leases) -> None:
    assert leases.try_take("run-1", "a") is None
    owner = leases.try_take("run-1", "b")
    assert owner is not None and (owner.token, owner.pid, owner.host) == ("a", os.getpid(), HOST)
    assert leases.try_take("run-2", "b") is None  # other runs are free
    leases.give_back("run-1", "b")  # not b's to give back
    assert leases.owner("run-1") == owner
    leases.give_back("run-1", "a")
    assert leases.owner("run-1") is None and leases.try_take("run-1", "b") is None


def test_a_lease_lapses_when_it_expires_or_its_process_on_this_host_is_gone(leases: Leases) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, not reaped: a zombie
    rows = [("dead", gone.pid, HOST, time.time() + 60), ("zombie", zombie.pid, HOST, time.time() + 60),
            ("expired", os.getpid(), "elsewhere", time.time() - 1), ("far", os.getpid(), "elsewhere", time.time() + 60)]
    with leases._connect() as conn:
        conn.executemany(f"INSERT INTO {lease.TABLE} (thread_id, token, pid, host, expires) VALUES (?, ?, ?, ?, ?)",
                         [(f"run-{token}", token, pid, host, expires) for token, pid, host, expires in rows])
    assert leases.try_take("run-dead", "me") is None
    assert leases.try_take("run-zombie", "me") is None
    zombie.wait()
    assert leases.try_take("run-expired", "me") is None
    far = leases.try_take("run-far", "me")  # another host's live owner: only expiry frees it
    assert far is not None and far.host == "elsewhere"


def test_of_many_racing_for_a_free_lease_exactly_one_wins(leases: Leases) -> None:
    results: list[object] = []
    start = threading.Barrier(12)

    def race(token: str) -> None:
        start.wait()
        results.append(leases.try_take("run-1", token))

    threads = [threading.Thread(target=race, args=(f"t{i}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(None) == 1


def test_the_owner_renews_its_lease_while_it_holds_it(leases: Leases, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.setattr(lease, "LEASE_SECONDS", 0.4)
    monkeypatch.setattr(lease, "HEARTBEAT", 0.05)

    async def hold() -> None:
        async with leases.held("run-1"):
            await asyncio.sleep(1.2)  # three lease lengths
            assert leases.try_take("run-1", "other") is not None
            with pytest.raises(Busy):
                async with leases.held("run-1"):
                    pass
        assert leases.owner("run-1") is None

    asyncio.run(hold())


def _start(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "graphs.cli", *args], env=cli_env(db), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(db: Path, thread: str, timeout: float = 30) -> None:
    """Until a live process holds the run's lease."""
    deadline = time.monotonic() + timeout
    while not db.exists() or not _owned(db, thread):
        assert time.monotonic() < deadline, f"{thread} never started"
        time.sleep(0.05)


def _owned(db: Path, thread: str) -> bool:
    try:
        return Leases(db).owner(thread) is not None
    except sqlite3.OperationalError:  # its tables are not made yet
        return False


def _listed(troupe, thread: str) -> str:
    return next(line for line in troupe("runs").stdout.splitlines() if line.startswith(thread))


def _works(db: Path, thread: str) -> Counter[tuple[str, int]]:
    """How often each (subtask, round) was worked, from the journal."""

    async def read(runner: Runner) -> Counter[tuple[str, int]]:
        return Counter((m.correlation_id, m.round) for m in await runner.journal(thread) if m.kind == Kind.ARTIFACT)

    found = with_runner(db, read)
    assert isinstance(found, Counter)
    return found


@pytest.mark.slow
def test_a_second_process_on_a_live_run_is_refused_or_waits_and_no_work_is_done_twice(db: Path, tmp_path: Path,
                                                                                      troupe) -> None:
    first = _start(db, "run", "hierarchical", TODO_TASK, "--thread", "live",
                   "--latency", "1", "--auto-approve", "--workspace-root", str(tmp_path / "ws"))
    _wait_for(db, "live")
    others = [_start(db, *args) for args in (["runs"], ["resume", "live"], ["run", "hierarchical", TODO_TASK,
              "--thread", "live"], ["show", "live", "--json"], ["resume", "live", "--wait"])]
    listed, refused, twin, shown = (p.communicate(timeout=60) for p in others[:4])
    assert f"running (pid {first.pid}, {HOST})" in listed[0]
    assert others[1].returncode == 2 and refused[1].strip().splitlines() == [
        f"troupe: error: run 'live' is running in another process (pid {first.pid}, {HOST}): wait for it to stop, "
        "or pass --wait to carry on after it"]
    assert others[2].returncode == 2 and "running in another process" in twin[1] and "Traceback" not in twin[1]
    assert others[3].returncode == 0 and f'"owner": "pid {first.pid}, {HOST}"' in shown[0]  # reading: never refused
    assert first.poll() is None, "the run ended before every check was made: raise its latency"
    waited = others[4].communicate(timeout=60)
    assert first.wait(timeout=60) == 0, first.stderr
    assert others[4].returncode == 2 and "already completed" in waited[1]
    works = _works(db, "live")
    assert works and max(works.values()) == 1, works
    assert "completed" in _listed(troupe, "live")


@pytest.mark.slow
def test_two_answers_to_one_gate_are_never_both_applied(db: Path, tmp_path: Path, troupe) -> None:
    held = troupe("run", "hierarchical", TODO_TASK, "--thread", "gate",
                  "--await-approval", "--workspace-root", str(tmp_path / "ws"), "--latency", "0")
    assert held.returncode == 4 and "waiting for approval" in held.stdout
    answers = [_start(db, "approve", "gate", "--wait", "--comment", f"answer {i}") for i in range(2)]
    codes = sorted(p.wait(timeout=60) for p in answers)
    errors = "".join(p.stderr.read() for p in answers if p.stderr)
    assert codes == [0, 2], errors
    assert "is not waiting for approval (status: completed)" in errors

    async def decisions(runner: Runner) -> list[str]:
        return [m.note for m in await runner.journal("gate")
                if m.kind == Kind.CHECKPOINT and m.correlation_id == "approval" and m.sender == "human"]

    assert len(with_runner(db, decisions)) == 1  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_sigkilled_owner_frees_its_run_at_once(db: Path, tmp_path: Path, troupe) -> None:
    proc = _start(db, "run", "hierarchical", TODO_TASK, "--thread", "killed",
                  "--latency", "0.15", "--auto-approve", "--workspace-root", str(tmp_path / "ws"))
    _wait_for(db, "killed")
    assert proc.stdout is not None
    while "TASK_ASSIGN" not in proc.stdout.readline():  # the run is indexed and at work, not only leased
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "stopped" in _listed(troupe, "killed")  # not "running": its process is gone
    resumed = troupe("resume", "killed", "--auto-approve")
    assert resumed.returncode == 0, resumed.stderr
    assert "status: completed" in resumed.stdout
