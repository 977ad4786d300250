"""Start-up: `troupe --help` in a fresh process, and how soon a fresh process resumes a run once its imports are done.

`--help`: wall of `.venv/bin/troupe --help` from spawn to exit, over `--repeats` fresh subprocesses (10; goal <= 0.3 s).

Resume: hierarchical runs (the content team, offline model, latency 0) are started in this process and stop at their
approval gate; each is then approved by a fresh process (`troupe approve THREAD`). All times are wall clock
(`time.time()`). "First call" is the `started` stamp (`on_chat_model_start`) of the first model call after the
approval in the run's usage records (`tools.usage.read_calls`): the synthesizer's. Two kinds of process:
  plain: `python -m graphs.cli approve THREAD`: spawn -> first call, imports included.
  pre-imported: imports every module an approving process ends up loading (listed once from a probe process's
  `sys.modules` at its exit), stamps t1, then runs the same command. imports = spawn -> t1 (interpreter start too);
  beyond imports = t1 -> first call (goal <= 10 ms): parsing the command line, opening the db, reading the run, its
  lease, building and compiling the graph, the approve super-step and its checkpoint.
Also printed: import time by top-level package (its modules' own time summed, `python -X importtime`) of one
`troupe --help` and of the probe. `--profile`: pyinstrument over one pre-imported approve, imports excluded.

    python bench/startup.py [--repeats 10] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Spread, machine, plot, table

from graphs.runtime import Runner
from state.context import RunContext

ROOT = Path(__file__).resolve().parent.parent
PY, TROUPE = ROOT / ".venv" / "bin" / "python", ROOT / ".venv" / "bin" / "troupe"
TASK = "Write a blog post about solar power"
PROBE = """import atexit, json, sys
from pathlib import Path
out = Path(sys.argv[1])
atexit.register(lambda: out.write_text(json.dumps(sorted(sys.modules))))
from graphs.cli import main
sys.argv = ["troupe", *sys.argv[2:]]
sys.exit(main())"""
PREIMPORTED = """import importlib, json, os, sys, time
for name in json.load(open(sys.argv[1])):
    try:
        importlib.import_module(name)
    except Exception:
        pass
print(json.dumps({"t1": time.time()}), file=sys.stderr, flush=True)
from graphs.cli import main
sys.argv = ["troupe", *sys.argv[2:]]
if not os.environ.get("BENCH_PROFILE"):
    sys.exit(main())
from pyinstrument import Profiler
with Profiler() as prof:
    code = main()
print(prof.output_text(color=False, show_all=False), file=sys.stderr)
sys.exit(code)"""


def env(db: Path, profile: bool = False) -> dict[str, str]:
    drop = ("TROUPE_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**clean, "TROUPE_DB": str(db), "LANGSMITH_TRACING": "false", **({"BENCH_PROFILE": "1"} if profile else {})}


def spawn(args: list[str], db: Path, profile: bool = False) -> tuple[float, subprocess.CompletedProcess[str]]:
    """(wall-clock time at spawn, the finished process)."""
    t0 = time.time()
    done = subprocess.run(args, capture_output=True, text=True, env=env(db, profile), stdin=subprocess.DEVNULL,
                          cwd=db.parent)
    return t0, done


def help_wall(repeats: int, db: Path) -> Spread:
    walls = []
    for _ in range(repeats):
        t0, done = spawn([str(TROUPE), "--help"], db)
        walls.append(time.time() - t0)
        assert done.returncode == 0, done.stderr
    return Spread(tuple(walls))


def slowest_imports(importtime: str, most: int = 8) -> list[tuple[str, float]]:
    """Import time by top-level package (its modules' self ms summed) from `-X importtime`, largest first."""
    by: dict[str, float] = {}
    for row in (line.split("|") for line in importtime.splitlines() if line.startswith("import time:")):
        if len(row) == 3 and row[0].split(":")[1].strip().isdigit():
            top = row[2].strip().split(".")[0]
            by[top] = by.get(top, 0.0) + int(row[0].split(":")[1]) / 1000
    return sorted(by.items(), key=lambda kv: -kv[1])[:most]


async def gated_runs(db: Path, n: int, workspaces: Path) -> list[str]:
    """n hierarchical runs waiting at their approval gate."""
    ctx = RunContext(workspace_root=str(workspaces), latency=0.0, cache=False)
    async with Runner.open(db) as runner:
        for i in range(n):
            out = await runner.start("hierarchical", TASK, ctx, team="content", thread_id=f"r{i}")
            assert out.status == "awaiting_approval", out.status
    return [f"r{i}" for i in range(n)]


async def first_call_after(db: Path, thread: str, since: float) -> float:
    async with Runner.open(db) as runner:
        return min(c.started for c in await runner.calls(thread) if c.started >= since)


def ms(seconds: list[float] | tuple[float, ...]) -> Spread:
    return Spread(tuple(1000 * s for s in seconds))


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--profile", action="store_true", help="profile one pre-imported approve after its imports")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "troupe.sqlite"
        threads = await gated_runs(db, 2 if args.profile else 2 * args.repeats + 1, Path(tmp) / "ws")
        modules = Path(tmp) / "modules.json"
        _, done = spawn([str(PY), "-X", "importtime", "-c", PROBE, str(modules), "approve", threads.pop()], db)
        assert done.returncode == 0, done.stderr
        if args.profile:
            _, done = spawn([str(PY), "-c", PREIMPORTED, str(modules), "approve", threads.pop()], db, profile=True)
            return print(done.stderr.split("\n", 1)[1])
        helps = help_wall(args.repeats, db)
        slow_approve = slowest_imports(done.stderr)
        slow_help = slowest_imports(spawn([str(PY), "-X", "importtime", str(TROUPE), "--help"], db)[1].stderr)
        plain, imports, beyond = [], [], []
        for _ in range(args.repeats):  # plain and pre-imported interleaved: the same machine load
            t0, done = spawn([str(PY), "-m", "graphs.cli", "approve", thread := threads.pop()], db)
            assert done.returncode == 0, done.stderr
            plain.append(await first_call_after(db, thread, t0) - t0)
            t0, done = spawn([str(PY), "-c", PREIMPORTED, str(modules), "approve", thread := threads.pop()], db)
            assert done.returncode == 0, done.stderr
            t1 = json.loads(done.stderr.splitlines()[0])["t1"]
            imports.append(t1 - t0)
            beyond.append(await first_call_after(db, thread, t0) - t1)
    print(f"start-up, fresh processes, median (min-max) of {args.repeats}; {machine()}")
    print(table(["what", "ms", "goal (ms)"], [
        ["`troupe --help`, spawn to exit", ms(helps.values).show(1), "<= 300"],
        ["approve, plain: spawn to first model call", ms(plain).show(1), ""],
        ["approve, pre-imported: spawn to imports done", ms(imports).show(1), ""],
        ["approve, pre-imported: imports done to first model call", ms(beyond).show(1), "<= 10"]]))
    print("\nimport time by package: its modules' own ms summed (python -X importtime, one process each)")
    print(table(["`troupe --help`", "ms", "`troupe approve`", "ms "],
                [[h, f"{a:.1f}", n, f"{b:.1f}"] for (h, a), (n, b) in zip(slow_help, slow_approve, strict=False)]))
    xs = list(range(1, args.repeats + 1))
    plot("startup", "Fresh processes", "repeat", "ms", {
        "troupe --help": (xs, ms(helps.values).values), "approve: spawn to first call": (xs, ms(plain).values),
        "approve: imports done to first call": (xs, ms(beyond).values)})


if __name__ == "__main__":
    asyncio.run(main())
