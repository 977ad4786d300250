"""The commands that read runs: runs, show, history, watch, stats, report; and the catalogue: patterns, graph,
recipes, teams, teams check, cache clear. None of them takes a run's lease: reading never blocks a run."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict
from typing import Any

from pydantic_core import to_jsonable_python

from graphs import metrics
from graphs.commands import _load
from graphs.console import describe, id_width, printable
from graphs.errors import TroupeError
from graphs.registry import PATTERNS, builder
from graphs.runtime import Outcome, Runner, default_db, recipes
from graphs.timetravel import created
from graphs.views import JsonLines, View, choose_view, usage_text
from nodes.teams import available, load_team
from state.roles import TeamError
from state.team_file import read_team
from tools.context_store import forget, memories
from tools.journal import namespace, read_all
from tools.model_cache import clear_cache
from tools.usage import totals


async def runs(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db()) as runner:
        outcomes = [await runner.outcome(info) for info in await runner.runs()]
    if args.json:
        print(json.dumps([{"thread_id": o.info.thread_id, "pattern": o.info.pattern, "status": o.status,
                           "owner": o.owner, "task": o.info.task, "created": o.info.created} for o in outcomes],
                         indent=2))
        return 0
    if not outcomes:
        print("no runs yet: `troupe run hierarchical \"...\"`")
    for o in outcomes:
        print(f"{o.info.thread_id:<32} {o.info.pattern:<14} {_status(o):<18} {printable(o.info.task)}")
    return 0


def _status(outcome: Outcome) -> str:
    """The run's status, with the process driving it when it is running."""
    return f"{outcome.status} ({outcome.owner})" if outcome.owner else outcome.status


async def show(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db()) as runner:
        info = await runner.info(args.thread)
        outcome = await runner.outcome(info)
        messages = await runner.journal(info.thread_id)
        progress = await runner.progress(info.thread_id)
        calls = await runner.calls(info.thread_id)
    plan, board = outcome.values.get("plan"), outcome.values.get("board", {})
    used, agents = totals(calls)
    if args.json:
        doc = {
            "thread_id": info.thread_id, "pattern": info.pattern, "task": info.task, "status": outcome.status,
            "shortfall": outcome.shortfall, "owner": outcome.owner,
            "error": outcome.error, "context": asdict(info.context), "workspace": str(info.workspace),
            "team": info.team, "objects": info.objects,
            "plan": plan.model_dump(mode="json") if plan else None,
            "board": {k: v.model_dump(mode="json") for k, v in board.items()},
            "progress": [p.model_dump() for p in progress],
            "messages": [m.model_dump(mode="json") for m in messages],
            "usage": {"run": used.model_dump() | {"tokens": used.tokens},
                      "agents": {a: u.model_dump() | {"tokens": u.tokens} for a, u in agents.items()}},
            "calls": [c.model_dump(mode="json") for c in calls],
            "result": outcome.values.get("result"),
            "state": to_jsonable_python(outcome.values),
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(printable(f"{info.thread_id}  {info.pattern}  {_status(outcome)}\ntask: {info.task}\n"
                    f"team: {info.context.team}\nworkspace: {info.workspace}"))
    if outcome.shortfall:
        print(f"not done: {printable(outcome.shortfall)}")
    if outcome.error:
        print(f"error: {printable(outcome.error)}")
    if plan:
        print(f"\nplan: {printable(plan.summary)}")
        width = id_width(plan)
        for t in plan.tasks:
            rec = board[t.id]
            print(printable(f"  {t.id:<{width}}{rec.status.value:<12}{t.assignee:<12} round {rec.round}  {t.title}"
                            + (f"  ({rec.reason})" if rec.reason else "")))
    if calls:
        print(f"\nusage: {usage_text(used)}")
        for agent, u in sorted(agents.items()):
            print(f"  {agent:<16} {usage_text(u)}")
    print(f"\nmessages ({len(messages)}):")
    for m in messages:
        print(f"  {describe(m)}")
    if outcome.values.get("result"):
        print(f"\nresult:\n{printable(str(outcome.values['result']))}")
    return 0


async def history(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db()) as runner:
        points = await runner.history(args.thread)
    rows = [{"number": n, "checkpoint_id": p.config["configurable"]["checkpoint_id"],
             "step": p.metadata.get("step"), "source": p.metadata.get("source"), "created": created(p),
             "next": _next(p)} for n, p in enumerate(points)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"run {args.thread} has no checkpoint yet")
    for r in rows:
        print(f"{r['number']:>4}  {r['checkpoint_id']}  step {r['step']:>3}  {r['source']:<6} next: "
              f"{', '.join(r['next']) or '-'}")
    if rows:
        print(f"\nfork from one: troupe fork {args.thread} --at NUMBER")
    return 0


def _next(point: Any) -> list[str]:
    """The nodes a checkpoint would run next (its pending sends and triggered nodes)."""
    values = point.checkpoint.get("channel_values", {})
    sends = values.get("__pregel_tasks") or []
    names = [getattr(s, "node", "") for s in sends]
    names += [c.removeprefix("branch:to:") for c in values if c.startswith("branch:to:")]
    return [n for n in names if n]


async def watch(args: argparse.Namespace) -> int:
    """Print what another process does to a run, as it happens, until the run no longer runs."""
    if not 0.05 <= args.interval <= 60:
        raise TroupeError(f"--interval {args.interval}: use seconds from 0.05 to 60")
    view: View = JsonLines() if args.json_lines else choose_view(None)
    seen: dict[str, int] = {"messages": 0, "calls": 0}
    async with Runner.open(args.db or default_db()) as runner:
        info = await runner.info(args.thread)
        view.line(f"watching {info.pattern} run {info.thread_id}: {info.task}")
        try:
            while True:
                outcome = await runner.outcome(info)
                for kind, key in (("messages", "message"), ("calls", "usage")):
                    values = await read_all(runner.store, namespace(info.thread_id, kind))
                    values.sort(key=lambda v: str(v.get("id")) if kind == "messages" else float(v.get("ended", 0)))
                    for value in values[seen[kind]:]:
                        view("custom", {key: value})
                    seen[kind] = len(values)
                if outcome.status != "running":
                    break
                await asyncio.sleep(args.interval)
        finally:
            view.close()
    view.outcome(outcome)
    return 0


async def stats(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db()) as runner:
        infos = [await runner.info(args.thread)] if args.thread else await runner.runs()
        found = [metrics.RunData(info, await runner.outcome(info), await runner.calls(info.thread_id),
                                 await runner.journal(info.thread_id)) for info in infos]
    doc = metrics.report(found)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(metrics.text(doc))
    return 0


async def report(args: argparse.Namespace) -> int:
    from graphs.report import write_report

    async with Runner.open(args.db or default_db()) as runner:
        info = await runner.info(args.thread)
        path = args.output or info.workspace / "report.html"
        data = metrics.RunData(info, await runner.outcome(info), await runner.calls(info.thread_id),
                               await runner.journal(info.thread_id))
    try:
        await asyncio.to_thread(write_report, data, path)
    except OSError as exc:
        raise TroupeError(f"cannot write {path}: {exc.strerror or exc}: pick a file in a folder that exists") from None
    print(f"wrote {path}")
    return 0


async def cache(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db()) as runner:
        deleted = await clear_cache(runner.store)
    print(f"cleared the model cache: {deleted} answers")
    return 0


async def memory(args: argparse.Namespace) -> int:
    try:
        team = load_team(args.team_file or args.team)
        role = team.role(args.role)
    except (TeamError, LookupError) as exc:
        raise TroupeError(str(exc.args[0] if exc.args else exc)) from None
    if role.memory != "persistent":
        print(f"note: {role.name} is ephemeral in team {team.name!r} (set `memory: persistent` to keep what it learns)")
    async with Runner.open(args.db or default_db()) as runner:
        if args.clear:
            print(f"{team.name}/{role.name}: forgot {await forget(runner.store, team.name, role.name)} note(s)")
            return 0
        notes = await memories(runner.store, team.name, role.name)
    print(f"{team.name}/{role.name}: {len(notes)} note(s)")
    for n in notes:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(n.updated))
        print(f"- {printable(n.note)}  (learned in run {n.learned_in}, {when})")
    return 0


async def teams(args: argparse.Namespace) -> int:
    winners: set[str] = set()
    for entry in available():
        shadowed = entry.name in winners
        winners.add(entry.name)
        try:
            about = read_team(entry.path).description
        except TeamError as exc:
            about = f"INVALID: {exc}"
        note = "  (shadowed by the one above)" if shadowed else ""
        print(f"{entry.name:<16} {entry.origin:<14} {entry.path}{note}\n{'':<16} {about}")
    return 0


async def list_recipes(args: argparse.Namespace) -> int:
    for name, team in recipes().items():
        print(f"{name:<16} {team.pattern:<13} {team.description}\n{'':<16} {'':<13} roles: "
              f"{', '.join(r.name for r in team.roles)}")
    return 0


async def check_team(args: argparse.Namespace) -> int:
    team = _load(args.path)
    if team.pattern is not None and team.pattern not in PATTERNS:
        raise TroupeError(f"{team.where('pattern')}: unknown pattern {team.pattern!r}; known: {', '.join(PATTERNS)}")
    roles = ", ".join(f"{r.name} ({', '.join(r.capabilities)})" for r in team.roles)
    print(f"ok: {args.path}: team {team.name!r} with {len(team.roles)} roles: {roles}")
    return 0


async def patterns(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(PATTERNS, indent=2))
        return 0
    for name, summary in PATTERNS.items():
        print(f"{name:<14} {summary}")
    return 0


async def graph(args: argparse.Namespace) -> int:
    try:
        drawable = builder(args.pattern)().compile(name=args.pattern).get_graph()
    except LookupError as exc:
        raise TroupeError(str(exc.args[0] if exc.args else exc)) from None
    if args.png is None:
        print(drawable.draw_mermaid())
        return 0
    try:
        drawable.draw_png(str(args.png))
    except OSError as exc:
        raise TroupeError(f"cannot write {args.png}: {exc.strerror or exc}: pick a file in a folder that "
                          "exists") from None
    except ImportError:
        raise TroupeError("--png renders with pygraphviz, which is not installed: `pip install pygraphviz` "
                          "(its wheel bundles graphviz), or render the Mermaid text of `troupe graph "
                          f"{args.pattern}` elsewhere") from None
    print(f"wrote {args.png}")
    return 0
