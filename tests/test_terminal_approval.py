"""At a terminal the approval gate asks the person, and their answer is what the run records."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from conftest import TODO_TASK, cli_env


def _read_until(fd: int, marker: bytes, deadline: float) -> bytes:
    seen = b""
    while marker not in seen:
        assert time.monotonic() < deadline, f"never saw {marker!r}; got:\n{seen.decode(errors='replace')}"
        try:
            seen += os.read(fd, 4096)
        except OSError:
            break
    return seen


def test_a_person_at_the_terminal_is_asked(db: Path, troupe) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--thread", "tty", "--latency", "0"],
        env=cli_env(db), stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )
    os.close(follower)
    deadline = time.monotonic() + 60
    screen = _read_until(leader, b"approve? [y/N]", deadline)
    assert b"auto-approving" not in screen
    os.write(leader, b"y\n")
    _read_until(leader, b"comment (optional):", deadline)
    os.write(leader, b"looks good\n")
    screen = _read_until(leader, b"status: completed", deadline)
    assert proc.wait(timeout=30) == 0
    os.close(leader)
    shown = json.loads(troupe("show", "tty", "--json").stdout)
    answer = [m for m in shown["messages"] if m["kind"] == "CHECKPOINT" and m["label"] == "approved"]
    assert answer and answer[0]["sender"] == "human" and answer[0]["note"] == "looks good"
