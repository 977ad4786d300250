"""A hierarchical team run with simulated model latency: parallel speed-up and the cost of durability.

Runs the same task several times under each setting, side by side, and prints median wall
times against the time its model calls would take one after another.

    python bench/team_run.py [--latency 0.1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from graphs.hierarchical import build
from graphs.runtime import Runner, serializer
from state.context import RunContext
from state.team import Decision

TASK = "Build a REST API for todo management"


class CallCounter(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.calls = 0

    async def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1


async def in_memory(ctx: RunContext, counter: CallCounter | None = None) -> None:
    graph = build().compile(checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    config: Any = {"configurable": {"thread_id": "b"}, "callbacks": [counter] if counter else []}
    await graph.ainvoke({"task": TASK}, config, context=ctx)
    await graph.ainvoke(Command(resume={"approved": True}), config, context=ctx)


async def durable(ctx: RunContext) -> None:
    """The CLI's path: one SQLite file, durability="sync", approval through the runtime."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Runner.open(Path(tmp) / "bench.sqlite") as runner:
            await runner.start("hierarchical", TASK, ctx, thread_id="b")
            await runner.approve("b", Decision(approved=True, by="auto"))


async def median_wall(setting: Callable[[RunContext], Awaitable[None]], latency: float, repeats: int) -> float:
    walls = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            await setting(RunContext(latency=latency, workspace_root=tmp))
            walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    counter = CallCounter()
    with tempfile.TemporaryDirectory() as tmp:
        await in_memory(RunContext(workspace_root=tmp), counter)
    serial = counter.calls * args.latency
    print(f"{counter.calls} model calls of {args.latency} s each: {serial:.2f} s one after another\n")
    print(f"{'setting':<26} {'median wall (s)':>15} {'vs serial':>9} {'vs in-memory':>12}")
    baseline = None
    for name, setting in (("InMemorySaver", in_memory), ("SQLite, durability=sync", durable)):
        wall = await median_wall(setting, args.latency, args.repeats)
        baseline = baseline or wall
        print(f"{name:<26} {wall:>15.3f} {wall / serial:>8.2f}x {wall / baseline:>11.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
