"""Team speedup: the hierarchical pattern on n independent subtasks, all at once beside one agent at a time.

The same plan (bench/fanout.py's `FlatPlanner`: n independent subtasks for one role) runs twice through
`graphs.runtime.Runner` (SQLite, `durability="sync"`, model cache off, no flawed drafts) on the offline model at
`--latency` s a call (0.1): with `max_workers` = n (parallel) and `max_workers` = 1 (serial). Wall is to the
approval gate (`Runner.start` returns there), as in fanout.py. Speedup = serial wall / parallel wall; the goal is
speedup >= 0.9 n. The runs' usage records also give the bound: the longest chain of model calls of each
(bench/patterns.py's `chain`), so ideal = serial chain / parallel chain. Both runs make the plan call and end with a
review, which no parallelism removes, so the ideal is below n (about (2n + 2) / 4 when a review overlaps the next
worker); efficiency = speedup / ideal says how much of what the plan allows the engine delivers.

    python bench/speedup.py [--sizes 2,5,10,20] [--repeats 3] [--latency 0.1] [--profile N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Spread, machine, plot, table
from fanout import FlatPlanner, team
from patterns import chain

from graphs.runtime import Runner
from state.budget import Call
from state.context import RunContext

GOAL = 0.9


async def run(n: int, workers: int, latency: float, got: list[Call]) -> float:
    """Wall seconds of one run to its approval gate; its model calls go to `got`."""
    with tempfile.TemporaryDirectory() as tmp:
        planner = FlatPlanner(role="planner", n=n, latency=latency)
        ctx = RunContext(workspace_root=f"{tmp}/ws", latency=latency, draft_flaw_rate=0.0, cache=False)
        async with Runner.open(Path(tmp) / "t.sqlite", models={"planner": planner}) as runner:
            t0 = time.perf_counter()
            outcome = await runner.start("hierarchical", "Build the parts", ctx, team=team(n, workers), thread_id="s")
            wall = time.perf_counter() - t0
            assert outcome.status == "awaiting_approval", outcome.status
            got[:] = await runner.calls("s")
    return wall


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2,5,10,20")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--profile", type=int, metavar="N", help="profile one parallel run of N subtasks (pyinstrument)")
    args = p.parse_args()
    if args.profile:
        from pyinstrument import Profiler

        await run(1, 1, args.latency, [])  # imports, warm-up
        with Profiler(async_mode="enabled") as prof:
            await run(args.profile, args.profile, args.latency, [])
        print(prof.output_text(unicode=False, show_all=False, color=False))
        return
    rows, sizes, speedups, ideals = [], [], [], []
    for n in map(int, args.sizes.split(",")):
        calls: dict[int, list[Call]] = {1: [], n: []}
        walls: dict[int, list[float]] = {1: [], n: []}
        for _ in range(args.repeats):  # interleaved: both see the same machine load
            for workers in (1, n):
                walls[workers].append(await run(n, workers, args.latency, calls[workers]))
        serial, parallel = Spread(tuple(walls[1])), Spread(tuple(walls[n]))
        speedup, ideal = serial.median / parallel.median, chain(calls[1]) / chain(calls[n])
        rows.append([n, len(calls[n]), f"{chain(calls[1])} / {chain(calls[n])}", serial.show(), parallel.show(),
                     f"{speedup:.2f}", f"{speedup / n:.2f}", f"{ideal:.2f}", f"{speedup / ideal:.0%}"])
        sizes.append(n)
        speedups.append(speedup)
        ideals.append(ideal)
        print(f"n={n}: serial {serial.show()} s, parallel {parallel.show()} s, speedup {speedup:.2f}", flush=True)
    print(f"\nhierarchical, n independent subtasks, {args.latency} s a model call, SQLite sync, wall to the approval "
          f"gate; goal speedup >= {GOAL} n; {machine()}")
    print(table(["n", "calls", "chain serial / parallel", "serial (s)", "parallel (s)", "speedup", "speedup / n",
                 "ideal", "speedup / ideal"], rows))
    plot("speedup", "Hierarchical team on n independent subtasks", "subtasks (n)", "speedup over max_workers=1",
         {"measured": (sizes, speedups), "ideal (chain serial / parallel)": (sizes, ideals),
          f"goal {GOAL} n": (sizes, [GOAL * n for n in sizes])})


if __name__ == "__main__":
    asyncio.run(main())
