"""No single point of failure in the adaptive supervisor: a run SIGKILLed while planning, while replanning or
while assembling resumes in a new process and ends as the same run ends uninterrupted, its plan changed once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TODO_TASK, cli_env

KILLS = {
    # where: (extra CLI arguments, kill once the journal holds a message with these fields (None: once it started))
    "planning": (["--fail", "planner=malformed:2"], None),
    "replanning": (["--fail", "backend=complex"], {"kind": "BLOCKER"}),
    "assembly": ([], {"kind": "CHECKPOINT", "label": "approved"}),
}


def rows(db: Path, prefix: str) -> list[dict]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as conn:
            query = "SELECT value FROM store WHERE prefix = ? ORDER BY key"
            return [json.loads(row[0]) for row in conn.execute(query, (prefix,))]
    except sqlite3.OperationalError:  # not created yet, or locked for a moment by the writer
        return []


def journal(db: Path, thread: str) -> list[dict]:
    return rows(db, f"runs.{thread}.messages")


def show(db: Path, thread: str) -> dict:
    shown = subprocess.run([sys.executable, "-m", "graphs.cli", "show", thread, "--json"], capture_output=True,
                           text=True, env=cli_env(db), timeout=120)
    return json.loads(shown.stdout)


@pytest.mark.parametrize("where", list(KILLS))
def test_a_run_killed_while_the_supervisor_decides_resumes_to_the_same_end(where: str, tmp_path: Path) -> None:
    db, (args, marker) = tmp_path / "troupe.sqlite", KILLS[where]
    run = [sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--no-cache", *args]  # no cache: the
    # killed run must really do its work
    clean = subprocess.run([*run, "--thread", "clean", "--latency", "0"], capture_output=True, text=True,
                           env=cli_env(db), stdin=subprocess.DEVNULL, timeout=120)
    assert clean.returncode == 0, clean.stderr
    expected = show(db, "clean")

    proc = subprocess.Popen([*run, "--thread", "kill", "--latency", "0.3"], env=cli_env(db),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60

    def reached() -> bool:
        if marker is None:  # the run is indexed: it is planning (its first two answers are garbled, 0.3 s each)
            return any(r.get("thread_id") == "kill" for r in rows(db, "index.runs"))
        return any(marker.items() <= m.items() for m in journal(db, "kill"))

    while not reached():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the run never reached {marker!r}"
        time.sleep(0.02)
    time.sleep(0.3 if marker is None else 0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(journal(db, "kill")) < len(expected["messages"]), "the run had finished when killed"

    resumed = subprocess.run([sys.executable, "-m", "graphs.cli", "resume", "kill"], capture_output=True, text=True,
                             env=cli_env(db), stdin=subprocess.DEVNULL, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    got = show(db, "kill")
    assert got["status"] == "completed"
    assert got["result"] == expected["result"]
    assert [t["id"] for t in got["plan"]["tasks"]] == [t["id"] for t in expected["plan"]["tasks"]]
    assert {k: v["status"] for k, v in got["board"].items()} == {k: v["status"] for k, v in expected["board"].items()}
    splits = [m for m in got["messages"] if m["kind"] == "REPLAN" and m["action"] == "split"]
    assert len(splits) <= 2 if where == "replanning" else not splits  # the cut step may say it twice, no more
