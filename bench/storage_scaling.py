"""Storage as the work grows: a troupe run's database against the work it did.

The sequential pattern with K stages (one agent step each, the offline model, latency 0), through the Runner on
SQLite with `durability="sync"`. Measured after the run: the bytes its checkpoints take (checkpoint blobs and
pending writes), the bytes the store holds (journal, usage, progress, context), and the work itself: the bytes
of the artifacts it wrote. Printed: each K, the ratio of the database to the work, and the growth exponent of
the checkpoint bytes between the smallest and the largest K (1.0: linear in the work; 2.0: quadratic).

    python bench/storage_scaling.py [--stages 100,300,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, plot, table
from patterns import stages

from graphs.runtime import Runner
from state.context import RunContext


def sizes(db: Path) -> tuple[int, int, int]:
    """(checkpoints, checkpoint bytes, store bytes) of the database."""
    with sqlite3.connect(db) as conn:
        count, checkpoints = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) FROM checkpoints").fetchone()
        writes = conn.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes").fetchone()[0]
        store = conn.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM store").fetchone()[0]
    return count, checkpoints + writes, store


async def one(k: int) -> tuple[int, int, int, int]:
    """(steps, checkpoint bytes, store bytes, artifact bytes) of one run of `k` stages."""
    with tempfile.TemporaryDirectory() as tmp:
        db, ctx = Path(tmp) / "s.sqlite", RunContext(workspace_root=f"{tmp}/ws", cache=False, draft_flaw_rate=0.0)
        async with Runner.open(db) as runner:
            out = await runner.start("sequential", "Write a blog post", ctx, team=stages(k), thread_id="s")
            assert out.status == "completed", out.status
        work = sum(f.stat().st_size for f in (Path(tmp) / "ws" / "s").rglob("*") if f.is_file())
        return *sizes(db), work


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", default="100,300,1000")
    args = p.parse_args()
    ks = [int(k) for k in args.stages.split(",")]
    rows, points = [], []
    for k in ks:
        steps, checkpoints, store, work = await one(k)
        points.append((k, checkpoints))
        rows.append([k, steps, f"{checkpoints / 1e6:.2f}", f"{store / 1e6:.2f}", f"{work / 1e6:.2f}",
                     f"{(checkpoints + store) / work:.1f}x"])
        print(f"K={k}: {steps} checkpoints, {checkpoints / 1e6:.2f} MB of them, work {work / 1e6:.2f} MB", flush=True)
    (k0, c0), (k1, c1) = points[0], points[-1]
    exponent = math.log(c1 / c0) / math.log(k1 / k0)
    print(f"\nstorage, sequential pattern, SQLite sync; {machine()}")
    print(table(["stages", "checkpoints", "checkpoint MB", "store MB", "artifacts MB", "database / work"], rows))
    print(f"checkpoint bytes grow with exponent {exponent:.2f} from {k0} to {k1} stages (goal <= 1.2)")
    plot("storage_scaling", "Checkpoint bytes as the work grows", "stages (K)", "checkpoint MB",
         {"troupe sequential": (ks, [c / 1e6 for _, c in points])}, logx=True, logy=True)


if __name__ == "__main__":
    asyncio.run(main())
