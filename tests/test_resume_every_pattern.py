"""Every pattern without a resume test of its own: SIGKILLed mid-run, resumed in a new process, it ends exactly as
an uninterrupted run of the same task ends, and no finished work is lost.

The offline model is deterministic, so a clean run is the yardstick: the resumed run's result must be the same,
and its journal must hold every record of finished work the clean run has (artifacts, events, verdicts,
decisions). The step that was running at the kill is run again (LangGraph's contract), so its messages may
appear twice; nothing else may.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import cli_env

RUNS = {
    "router": ["I was charged twice for my subscription", "--team", "support"],
    "debate": ["Should we rewrite the backend in Rust?"],
    "consensus": ["Which is larger, 2^10 or 10^3?"],
    "event_driven": ["A customer reports that checkout is down"],
}
FINISHED = ("ARTIFACT", "EVENT", "REVIEW_RESULT", "CHECKPOINT", "CONFLICT")
"""Kinds that record finished work; PROGRESS 'started' and TASK_ASSIGN may repeat for a step cut short."""


def journal_size(db: Path, thread: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as conn:
            query = "SELECT count(*) FROM store WHERE prefix = ?"
            return conn.execute(query, (f"runs.{thread}.messages",)).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or locked for a moment by the writer
        return 0


def finished_work(db: Path, thread: str) -> tuple[str, Counter[tuple[str, ...]]]:
    """The run's result and its record of finished work."""
    shown = subprocess.run([sys.executable, "-m", "graphs.cli", "show", thread, "--json"], capture_output=True,
                           text=True, env=cli_env(db), timeout=120)
    doc = json.loads(shown.stdout)
    assert doc["status"] == "completed", doc["status"]
    return doc["result"], Counter((m["kind"], m["sender"], m["recipient"], m["correlation_id"], m.get("label", ""))
                                  for m in doc["messages"] if m["kind"] in FINISHED)


@pytest.mark.parametrize("pattern", list(RUNS))
def test_a_killed_run_resumes_to_the_same_end_without_redoing_work(pattern: str, tmp_path: Path) -> None:
    db, args = tmp_path / "troupe.sqlite", RUNS[pattern]
    clean = subprocess.run([sys.executable, "-m", "graphs.cli", "run", pattern, *args, "--thread", "clean",
                            "--latency", "0"], capture_output=True, text=True, env=cli_env(db),
                           stdin=subprocess.DEVNULL, timeout=120)
    assert clean.returncode == 0, clean.stderr
    result, expected = finished_work(db, "clean")

    proc = subprocess.Popen([sys.executable, "-m", "graphs.cli", "run", pattern, *args, "--thread", "kill",
                             "--latency", "0.3"], env=cli_env(db), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while journal_size(db, "kill") < 4:  # some work finished, most of the run still ahead
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert journal_size(db, "kill") < journal_size(db, "clean"), "the run had finished when killed: it proves nothing"

    resumed = subprocess.run([sys.executable, "-m", "graphs.cli", "resume", "kill"], capture_output=True, text=True,
                             env=cli_env(db), stdin=subprocess.DEVNULL, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "status: completed" in resumed.stdout
    resumed_result, record = finished_work(db, "kill")
    assert resumed_result == result
    assert not expected - record, f"finished work missing after the resume: {expected - record}"
    assert sum((record - expected).values()) <= 3, f"more than the cut step was done again: {record - expected}"
