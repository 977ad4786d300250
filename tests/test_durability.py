"""A run killed with SIGKILL mid-way resumes in a new process and does not redo finished work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import TODO_TASK, cli_env


def test_sigkilled_run_resumes_and_finishes_without_redoing_work(db: Path, tmp_path: Path, troupe) -> None:
    workspace = tmp_path / "ws" / "kill"
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--thread", "kill",
         "--latency", "0.25", "--auto-approve", "--workspace-root", str(tmp_path / "ws")],
        env=cli_env(db), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Kill inside the parallel wave: the second-wave workers have started writing, the first wave is done.
    deadline = time.monotonic() + 60
    while not any((workspace / name).exists() for name in ("t2_persistence.py", "t3_backend.py")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached its parallel wave"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    before = json.loads(troupe("show", "kill", "--json").stdout)
    assert before["status"] == "stopped"
    finished = {m["correlation_id"] for m in before["messages"] if m["kind"] == "REVIEW_RESULT" and m["approved"]}
    assert finished, "nothing had finished before the kill"

    resumed = troupe("resume", "kill")
    assert resumed.returncode == 0, resumed.stderr
    assert "status: completed" in resumed.stdout

    after = json.loads(troupe("show", "kill", "--json").stdout)
    assert after["status"] == "completed"
    started = Counter(m["correlation_id"] for m in after["messages"]
                      if m["kind"] == "PROGRESS" and m["note"].startswith("started round 1"))
    assert all(started[t] == 1 for t in finished), f"finished work was redone: {started}"
    artifacts = Counter((m["correlation_id"], m["round"]) for m in after["messages"] if m["kind"] == "ARTIFACT")
    assert set(artifacts.values()) == {1}, f"a worker task completed more than once: {artifacts}"
    assert {t for t, _ in artifacts} == {t["id"] for t in after["plan"]["tasks"]}
    assert (workspace / "SUMMARY.md").exists()
