"""Safe first use: any number of processes can open a fresh database at once (issue 13, finding 3).

LangGraph's schema set-up is not safe to race: two processes opening a fresh database both run the store's
migrations, and one fails (`UNIQUE constraint failed: store_migrations.v`, `duplicate column name`). The runtime
serializes set-up with a lock file beside the db.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_env

from graphs.runtime import lock_file

PROCESSES = 16

# Imports first, then waits for a common start time, so that all processes set up the schema at the same moment.
OPEN_AND_LIST = """
import asyncio, sys, time
from graphs.runtime import Runner

async def main() -> None:
    async with Runner.open(sys.argv[1]) as runner:
        print(len(await runner.runs()))

time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
asyncio.run(main())
"""


def _open_at_once(db: Path) -> list[subprocess.CompletedProcess[str]]:
    start = time.time() + 4  # enough for every process to have imported troupe
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LIST, str(db), str(start)], env=cli_env(db),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(PROCESSES)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


@pytest.mark.parametrize("trial", range(3))
def test_sixteen_processes_open_a_fresh_database_at_once(tmp_path: Path, trial: int) -> None:
    db = tmp_path / f"fresh-{trial}.sqlite"
    results = _open_at_once(db)
    failed = [r.stderr.strip().splitlines()[-1:] for r in results if r.returncode != 0]
    assert not failed, failed
    assert all(r.stdout.strip() == "0" for r in results)
    assert lock_file(db).exists()


def test_the_cli_on_a_fresh_database_at_once(tmp_path: Path) -> None:
    """`troupe runs` from many processes on one fresh TROUPE_DB: every one lists no runs."""
    db = tmp_path / "cli.sqlite"
    procs = [subprocess.Popen([sys.executable, "-m", "graphs.cli", "runs"], env=cli_env(db),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(PROCESSES)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.startswith("no runs yet")
