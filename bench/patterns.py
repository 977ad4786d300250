"""Every pattern at n = 1: the wall time of one run against its critical path, and the engine's cost per agent step.

Part 1. Each pattern of `graphs.registry.PATTERNS` runs its smallest job (one subtask, stage, part, request, voter,
event handler, sub-team; two debaters and two swarm peers, their minimum) on the offline model at `--latency` s a
call, through `graphs.runtime.Runner` (durable SQLite, `durability="sync"`, model cache off, no flawed drafts).
Wall: `runner.start` to the end of the run, a gate approved at once (`Decision(approved=True, by="auto")`, the
`approve` call timed too); opening the db is not timed. Critical path: L x the longest chain of model calls, from
the run's usage records (`tools.usage.read_calls`: each call's start and end), i.e. the most calls no two of which
overlap in time: calls on one chain (an agent's turns, step after step) never overlap, parallel branches of a
super-step always do. Overhead = (wall - path) / path; goal <= +5%. Cross-check: the run at latency 0 (engine only).
Each pattern's timed runs follow one warm-up run (its modules imported, first-use caches filled).

Part 2. Cost per agent step at latency 0: the sequential pattern with K stages (no checks) through the Runner, and a
bare LangGraph `StateGraph` chain of K nodes on the same checkpointer (AsyncSqliteSaver, `durability="sync"`), each
node making as many `OfflineChatModel(role="bench", latency=0)` calls as a troupe stage makes (from its usage
records). ms per step: the slope between the two K of `--steps` (a run's fixed costs cancel); goal <= 1.3x bare.

    python bench/patterns.py [--latency 0.1] [--repeats 5] [--steps 2,12] [--patterns a,b] [--profile PATTERN|step]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, Spread, machine, table
from fanout import FlatPlanner

from graphs.registry import PATTERNS
from graphs.runtime import Runner
from nodes.offline_model import OfflineChatModel
from nodes.teams import load_team
from state.budget import Call
from state.context import RunContext
from state.roles import Role, Team
from state.team import Decision

GOAL_OVERHEAD, GOAL_RATIO = 0.05, 1.3


def small(pattern: str, roles: list[tuple[str, str]], settings: dict[str, Any]) -> Team:
    return Team(name=f"{pattern}-n1", description=f"the smallest {pattern} team", patterns={pattern: settings},
                roles=[Role(name=n, capabilities=[c], prompt=f"You are the team's {n}.") for n, c in roles])


def cases() -> dict[str, tuple[str, Team]]:
    """Pattern -> (task, team) of its smallest run (the hierarchical planner is FlatPlanner: one subtask)."""
    software, pair = load_team("software"), [("architect", "design"), ("backend", "api")]
    return {
        "hierarchical": ("Build a REST API for todo management",
                         software.model_copy(update={"patterns": {"hierarchical": {"max_workers": 1}}})),
        "sequential": ("Write a blog post about solar power", small("sequential", [("writer", "writing")],
                                                                    {"checks": {}})),
        "parallel": ("Compare Notion for a 10-person team", small("parallel", [("analyst_1", "analysis")], {})),
        "router": ("I was charged twice for my subscription", load_team("support")),
        "debate": ("Should we rewrite the backend in Rust?", small("debate", pair, {"debaters": 2})),
        "consensus": ("Which is larger, 2^10 or 10^3?", small("consensus", [("architect", "design")], {"voters": 1})),
        "swarm": ("Add paging to the list endpoint", small("swarm", pair, {})),
        "event_driven": ("A customer reports that checkout is down", small("event_driven", [("backend", "api")], {})),
        "teams": ("Build a REST API for todo management", software.model_copy(update={
            "name": "teams-n1", "patterns": {"teams": {"subteams": {"core": "software"}}}})),
    }


def stages(k: int) -> Team:
    return small("sequential", [(f"stage_{i}", "writing") for i in range(1, k + 1)], {"checks": {}})


async def run(pattern: str, task: str, team: Team, latency: float, got: list[Call] | None = None) -> float:
    """Wall seconds of one run to its end (gates approved at once); its model calls go to `got`."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(workspace_root=f"{tmp}/ws", latency=latency, draft_flaw_rate=0.0, cache=False)
        models = {"planner": FlatPlanner(role="planner", n=1, latency=latency)}
        async with Runner.open(Path(tmp) / "t.sqlite", models=models) as runner:
            t0 = time.perf_counter()
            out = await runner.start(pattern, task, ctx, team=team, thread_id="n1")
            while out.status == "awaiting_approval":
                out = await runner.approve("n1", Decision(approved=True, by="auto"))
            wall = time.perf_counter() - t0
            assert out.status == "completed", (pattern, out.status, out.error)
            if got is not None:
                got[:] = await runner.calls("n1")
    return wall


def chain(calls: list[Call]) -> int:
    """The longest chain of calls one after another: the most pairwise non-overlapping calls (earliest end first)."""
    length, free = 0, float("-inf")
    for call in sorted(calls, key=lambda c: c.ended):
        if call.started >= free:
            length, free = length + 1, call.ended
    return length


async def timed(fn: Callable[[], Awaitable[float]], repeats: int) -> Spread:
    """The walls `fn` reports (its own timed part, without its set-up) over `repeats` runs."""
    return Spread(tuple([await fn() for _ in range(repeats)]))


class Chain(TypedDict):
    step: int


async def bare_chain(k: int, calls_per_step: int) -> float:
    """Wall seconds (build, compile, run) of a bare LangGraph chain of `k` nodes making `calls_per_step` calls each."""
    model = OfflineChatModel(role="bench", latency=0)

    async def node(state: Chain) -> dict[str, Any]:
        for _ in range(calls_per_step):
            await model.ainvoke(f"step {state['step']}")
        return {"step": state["step"] + 1}

    with tempfile.TemporaryDirectory() as tmp:
        async with aiosqlite.connect(Path(tmp) / "b.sqlite") as conn:
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            t0 = time.perf_counter()
            g = StateGraph(Chain)
            for i in range(k):
                g.add_node(f"s{i}", node)
                g.add_edge(f"s{i - 1}" if i else START, f"s{i}")
            g.add_edge(f"s{k - 1}", END)
            config: Any = {"configurable": {"thread_id": "b"}, "recursion_limit": k + 10}
            await g.compile(checkpointer=saver).ainvoke({"step": 0}, config, durability="sync")
            return time.perf_counter() - t0


def bars(title: str, labels: list[str], values: list[float], goal: float) -> None:
    """Overheads (%) as a bar chart, `OUT/patterns.png`, the goal a dashed line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return print("(no plot patterns.png: matplotlib is not installed; pip install -e '.[bench]')")
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    ax.bar(labels, values, color=["tab:red" if v > goal else "tab:green" for v in values])
    ax.axhline(goal, linestyle="--", color="black", label=f"goal {goal:g}%")
    ax.set(title=title, ylabel="wall over the critical path (%)")
    ax.tick_params(axis="x", rotation=30)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "patterns.png", dpi=110)
    print(f"plot: {OUT / 'patterns.png'}")


async def per_step(ks: tuple[int, int], repeats: int) -> None:
    """Part 2, troupe and bare LangGraph interleaved so that both see the same machine load."""
    got: dict[int, list[Call]] = {k: [] for k in ks}
    for k in ks:  # and a warm-up
        await run("sequential", "Write a blog post", stages(k), 0.0, got[k])
    calls = (len(got[ks[1]]) - len(got[ks[0]])) // (ks[1] - ks[0])
    walls: dict[tuple[str, int], list[float]] = {(e, k): [] for e in ("bare", "troupe") for k in ks}
    for _ in range(repeats):
        for k in ks:
            walls["troupe", k].append(await run("sequential", "Write a blog post", stages(k), 0.0))
            walls["bare", k].append(await bare_chain(k, calls))
    spread = {key: Spread(tuple(v)) for key, v in walls.items()}
    ms = {e: 1000 * (spread[e, ks[1]].median - spread[e, ks[0]].median) / (ks[1] - ks[0]) for e in ("bare", "troupe")}
    print(f"\ncost per agent step at latency 0 (K = {ks[0]} and {ks[1]}, {calls} model calls a step); {machine()}")
    print(table(["engine", f"wall K={ks[0]} (s)", f"wall K={ks[1]} (s)", "ms / step"],
                [[name, spread[e, ks[0]].show(), spread[e, ks[1]].show(), f"{ms[e]:.1f}"]
                 for e, name in (("bare", "bare LangGraph"), ("troupe", "troupe sequential"))]))
    print(f"troupe / bare: {ms['troupe'] / ms['bare']:.2f}x per step (goal <= {GOAL_RATIO}x)")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", default="2,12", help="two chain lengths K for the cost per agent step")
    p.add_argument("--patterns", default=",".join(PATTERNS), help="which ('': only the cost per agent step)")
    p.add_argument("--profile", metavar="PATTERN", help="profile a warm run at latency 0 (a pattern, or 'step')")
    args = p.parse_args()
    ks = (int(args.steps.split(",")[0]), int(args.steps.split(",")[1]))
    if args.profile:
        from pyinstrument import Profiler

        pattern = "sequential" if args.profile == "step" else args.profile
        task, team = cases().get(args.profile, ("Write a blog post", stages(ks[1])))
        await run(pattern, task, team, 0.0)  # imports, warm-up
        with Profiler(async_mode="enabled") as prof:
            await run(pattern, task, team, 0.0)
        print(prof.output_text(unicode=False, show_all=False, color=False))
        return
    names, rows, overheads = [n for n in args.patterns.split(",") if n], [], []
    for name in names:
        task, team = cases()[name]
        calls: list[Call] = []
        await run(name, task, team, 0.0)  # warm-up
        wall = await timed(lambda: run(name, task, team, args.latency, calls), args.repeats)  # noqa: B023
        zero = await timed(lambda: run(name, task, team, 0.0), args.repeats)  # noqa: B023
        path = chain(calls) * args.latency
        overheads.append((wall.median - path) / path)
        rows.append([name, len(calls), chain(calls), f"{path:.1f}", wall.show(), f"{overheads[-1]:+.1%}", zero.show()])
        print(f"{name}: {len(calls)} calls, chain {chain(calls)}, wall {wall.show()} s", flush=True)
    if not names:  # --patterns '': the cost per agent step only
        return await per_step(ks, 2 * args.repeats)
    print(f"\npatterns at n = 1, {args.latency} s a model call, SQLite sync, gates approved at once; {machine()}")
    print(table(["pattern", "calls", "chain", "critical path (s)", "wall (s)", "overhead", "wall at L=0 (s)"], rows))
    bars(f"Patterns at n = 1, {args.latency} s a model call", names, [100 * o for o in overheads],
         100 * GOAL_OVERHEAD)
    await per_step(ks, 2 * args.repeats)


if __name__ == "__main__":
    asyncio.run(main())
