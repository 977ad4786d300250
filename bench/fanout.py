"""Fan-out: n independent subtasks, troupe's hierarchical team beside bare LangGraph doing the same work.

All make the same model calls on the offline model at `--latency` seconds a call (0.1): a plan, then for each
of n subtasks 2 worker calls and 1 review call; the critical path is 4 calls. Bare LangGraph runs them in
troupe's shape (a `Send` fan-out of n workers, then one of n reviews) and in the lightest shape it has (one
fan-out, each worker also reviewing). All checkpoint to SQLite with `durability="sync"`, on a database opened
before the clock starts. troupe's time is to its approval gate (`Runner.start` returns there). Printed: median
(min-max) wall over `--repeats`, also as a multiple of the critical path. With `--postgres URL` (a server's
database to connect to first), the same comparison runs again with every side on a new PostgreSQL database there.

    python bench/fanout.py [--sizes 1,10,100,1000] [--repeats 3] [--latency 0.1] [--profile N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import aiosqlite
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict

sys.path.insert(0, str(Path(__file__).parent))
from common import Spread, machine, measure, plot, table

from graphs.runtime import Runner
from nodes.offline_model import OfflineChatModel
from nodes.teams import load_team
from state.context import RunContext
from state.roles import Team

CALLS_ON_PATH = 4


class FlatPlanner(OfflineChatModel):
    """The offline planner, answering with `n` independent subtasks for one role."""

    n: int = 1

    def _answer(self, messages: list[BaseMessage], tools: list[dict[str, Any]], mode: str | None) -> ChatResult:
        result = super()._answer(messages, tools, mode)
        calls = result.generations[0].message.tool_calls  # type: ignore[attr-defined]
        if calls and calls[0]["name"] == "PlanDraft":
            calls[0]["args"] = {"summary": f"{self.n} independent parts", "subtasks": [
                {"id": f"T{i}", "title": f"Build part {i}", "description": f"Part {i} of the work.",
                 "capability": "backend", "depends_on": [], "acceptance_criteria": ["Delivers the part"]}
                for i in range(1, self.n + 1)]}
        return result


def team(n: int, workers: int | None = None) -> Team:
    """The default team, room for `n` subtasks, `workers` of them at once (default: all)."""
    settings = {"max_workers": workers or max(n, 1), "max_subtasks": max(n, 1)}
    return load_team("software").model_copy(update={"name": "fanout", "patterns": {"hierarchical": settings}})


async def troupe_runs(n: int, latency: float, repeats: int, tmp: str, db: str | None = None) -> Spread:
    """`repeats` runs on one open database (opening it is not the run), each to its approval gate; `db` a
    PostgreSQL URL, or None for a SQLite file in `tmp`."""
    planner = FlatPlanner(role="planner", n=n, latency=latency)
    ctx = RunContext(workspace_root=f"{tmp}/ws", latency=latency, draft_flaw_rate=0.0, cache=False)
    fanned, count = team(n), iter(range(repeats))
    async with Runner.open(db or Path(tmp) / "t.sqlite", models={"planner": planner}) as runner:

        async def one() -> None:
            outcome = await runner.start("hierarchical", "Build the parts", ctx, team=fanned,
                                         thread_id=f"f{n}-{next(count)}")
            assert outcome.status == "awaiting_approval", outcome.status

        return await measure(one, repeats)


class Bare(TypedDict, total=False):
    n: int
    done: Annotated[list[int], operator.add]


def bare_graph(latency: float, *, fused: bool = False) -> StateGraph[Bare]:
    """The same calls in LangGraph alone: reviews in a fan-out of their own (troupe's shape), or `fused` into each
    worker (one fan-out: the lightest shape LangGraph has for this work)."""
    model = OfflineChatModel(role="bench", latency=latency)

    async def plan(state: Bare) -> dict[str, Any]:
        await model.ainvoke("plan")
        return {}

    def fan_out(state: Bare) -> list[Send]:
        return [Send("work", {"n": i}) for i in range(state["n"])]

    async def work(state: Bare) -> dict[str, Any]:
        await model.ainvoke("write")
        await model.ainvoke("summarize")
        if fused:
            await model.ainvoke("review")
        return {"done": [state["n"]]}

    def reviews(state: Bare) -> list[Send]:
        return [Send("review", {"n": i}) for i in state["done"]]

    async def review(state: Bare) -> dict[str, Any]:
        await model.ainvoke("review")
        return {}

    g = StateGraph(Bare)
    g.add_node("plan", plan)
    g.add_node("work", work)
    g.add_node("gather", lambda state: {})
    g.add_node("review", review)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", fan_out, ["work"])
    if fused:
        g.add_edge("work", END)
        return g
    g.add_edge("work", "gather")
    g.add_conditional_edges("gather", reviews, ["review"])
    g.add_edge("review", END)
    return g


@asynccontextmanager
async def saver(tmp: str, name: str, db: str | None) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """LangGraph's own checkpointer, set up: on the PostgreSQL database `db`, else a SQLite file in `tmp`."""
    if db is None:
        async with aiosqlite.connect(Path(tmp) / f"{name}.sqlite") as conn:
            yield AsyncSqliteSaver(conn)
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(db) as pg:
        await pg.setup()
        yield pg


@asynccontextmanager
async def new_database(server: str) -> AsyncIterator[str]:
    """A new PostgreSQL database on `server` (a URL of a database there), dropped afterwards."""
    import psycopg

    name = f"troupe_bench_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(server, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with await psycopg.AsyncConnection.connect(server, autocommit=True) as conn:
            await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def bare_runs(n: int, latency: float, repeats: int, tmp: str, *, fused: bool = False,
                    db: str | None = None) -> Spread:
    async with saver(tmp, f"b{fused}", db) as checkpointer:
        graph = bare_graph(latency, fused=fused).compile(checkpointer=checkpointer)
        count = iter(range(repeats))

        async def one() -> None:
            await graph.ainvoke({"n": n}, {"configurable": {"thread_id": f"b{n}-{next(count)}"},
                                           "recursion_limit": 100}, durability="sync")

        return await measure(one, repeats)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,10,100,1000")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--profile", type=int, metavar="N", help="profile one troupe run of N subtasks (pyinstrument)")
    p.add_argument("--postgres", metavar="URL", default=os.environ.get("TROUPE_BENCH_POSTGRES") or None,
                   help="also on new databases of this PostgreSQL server, e.g. postgresql://postgres@127.0.0.1:5432/"
                   "postgres (default: $TROUPE_BENCH_POSTGRES, which `make bench` sets when one runs on 127.0.0.1)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await bare_runs(1, 0, 1, tmp)  # warm-up: imports and first compilations are not what is measured
        await troupe_runs(1, 0, 1, tmp)
    if args.profile:
        from pyinstrument import Profiler

        with tempfile.TemporaryDirectory() as tmp, Profiler(async_mode="enabled") as prof:
            await troupe_runs(args.profile, args.latency, 1, tmp)
        print(prof.output_text(unicode=False, show_all=False, color=False))
        return
    await compare(args, None)
    if args.postgres:
        await compare(args, args.postgres)


async def compare(args: argparse.Namespace, server: str | None) -> None:
    """The table (and plot) for one kind of database: SQLite files (`server` None), or new databases on the
    PostgreSQL server `server`."""
    path = CALLS_ON_PATH * args.latency
    names = ("bare LangGraph, one fan-out", "bare LangGraph, troupe's shape", "troupe")
    rows, series = [], {name: ([], []) for name in names}
    for n in map(int, args.sizes.split(",")):
        repeats = max(1, args.repeats if n < 1000 else 1)
        with tempfile.TemporaryDirectory() as tmp:
            spreads = []
            for side in names:
                async with databases(server) as db:
                    if side == "troupe":
                        spreads.append(await troupe_runs(n, args.latency, repeats, tmp, db))
                    else:
                        spreads.append(await bare_runs(n, args.latency, repeats, tmp, fused="one" in side, db=db))
        rows.append([n, *(f"{s.show()} = {s.median / path:.2f}x" for s in spreads),
                     f"{spreads[2].median / spreads[1].median:.2f}"])
        for name, spread in zip(names, spreads, strict=True):
            series[name][0].append(n)
            series[name][1].append(spread.median / path)
        print(f"n={n}: " + ", ".join(f"{name} {s.show()} s" for name, s in zip(names, spreads, strict=True)),
              flush=True)
    kind = "PostgreSQL" if server else "SQLite"
    print(f"\nfan-out, {args.latency} s a model call, critical path {path:.1f} s, {kind} sync; {machine()}")
    print(table(["n", *(f"{name} (s = x path)" for name in names), "troupe / same shape"], rows))
    plot("fanout" + ("_postgres" if server else ""), f"Fan-out of n independent subtasks ({kind})", "subtasks (n)",
         "wall / critical path", series, logx=True)


@asynccontextmanager
async def databases(server: str | None) -> AsyncIterator[str | None]:
    """None (a SQLite file of the caller's), or a new database on the PostgreSQL `server`."""
    if server is None:
        yield None
        return
    async with new_database(server) as db:
        yield db

if __name__ == "__main__":
    asyncio.run(main())
