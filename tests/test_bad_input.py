"""Settings a run cannot use are one-line errors before anything is written; a closed pipe is not a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env


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
