"""The `troupe` command: run, resume, approve, amend, list and inspect durable team runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from pydantic_core import to_jsonable_python

from graphs.console import Feed, approval_text, ask, describe, id_width, printable, read_edit
from graphs.registry import PATTERNS, builder
from graphs.runtime import (
    REPLAN_GATES,
    Outcome,
    Runner,
    TroupeError,
    check_input,
    default_db,
    new_thread_id,
    recipes,
    resolve,
)
from graphs.tracing import ensure_reachable
from nodes.kit import Kit
from nodes.offline_model import MODES, OFFLINE_LABEL
from nodes.teams import available, load_team
from state.context import RunContext
from state.roles import MODEL_ROLES, Team, TeamError
from state.team import Decision
from state.team_file import read_team

DB_HELP = "SQLite file for checkpoints, store and cache (default: $TROUPE_DB or ~/.local/share/troupe/troupe.sqlite)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"troupe: error: {message} (see `troupe --help`)\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.handler in (_run, _resume, _approve, _amend) and (warning := ensure_reachable()):
        print(f"troupe: {warning}", file=sys.stderr)
    try:
        code: int = asyncio.run(args.handler(args))
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader went away (`troupe show X --json | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except TroupeError as exc:
        print(f"troupe: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        thread = getattr(args, "thread", None) or "THREAD"
        print(f"\ntroupe: interrupted: the run stopped after its last finished step (`troupe resume {thread}`)",
              file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="troupe", description="Durable multi-agent team runs on LangGraph.")
    p.add_argument("--db", type=Path, default=None, help=DB_HELP)
    p.add_argument("--version", action="version", version=f"troupe {_version()}")
    sub = p.add_subparsers(required=True, metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="start a run: troupe run PATTERN TASK")
    run.add_argument("pattern", metavar="PATTERN|RECIPE", help=f"a pattern ({', '.join(PATTERNS)}) or a recipe "
                     "(`troupe recipes`)")
    run.add_argument("task", help="what the team should do")
    run.add_argument("--thread", help="thread id for the run (default: made from the task)")
    run.add_argument("--model", action="append", default=[], metavar="[ROLE=]SPEC",
                     help="'offline' (default), 'openai:NAME' or 'PROVIDER:NAME'; ROLE=SPEC sets one model role "
                     f"({', '.join(MODEL_ROLES)}) or one agent by name; default from $TROUPE_MODEL")
    run.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    team = run.add_mutually_exclusive_group()
    team.add_argument("--team", default=None, metavar="NAME",
                      help="a team by name: built-in, user or $TROUPE_TEAMS (see `troupe teams`; default: software)")
    team.add_argument("--team-file", type=Path, metavar="PATH", help="a team file (YAML) to run")
    run.add_argument("--seed", type=int, default=7, help="offline model seed: same seed, same run")
    run.add_argument("--latency", type=float, default=0.2, help="offline model: simulated seconds per call")
    run.add_argument("--max-review-rounds", type=int, default=3, help="work rounds a subtask gets")
    run.add_argument("--fail", action="append", default=[], metavar="AGENT=MODE",
                     help=f"offline model, for tests and demos: make an agent or model role {_either(MODES)} "
                     "(':N': the first N tries only)")
    run.add_argument("--approve-plan", action="store_true", help="hierarchical runs: approve, edit or reject the "
                     "plan before any worker starts")
    run.add_argument("--workspace-root", default=None, help="where run workspaces go (default: beside the db)")
    _approval_flags(run)
    run.set_defaults(handler=_run)

    resume = sub.add_parser("resume", help="continue a stopped or killed run from its last step")
    resume.add_argument("thread")
    resume.add_argument("--model", action="append", default=[], metavar="[ROLE=]SPEC",
                        help="change the run's model(s) before resuming, as for `run`")
    resume.add_argument("--base-url", default=None, help="change the run's OpenAI-compatible endpoint")
    _approval_flags(resume)
    _wait_flag(resume)
    resume.set_defaults(handler=_resume)

    approve = sub.add_parser("approve", help="answer a run waiting at its approval gate")
    approve.add_argument("thread")
    approve.add_argument("--reject", action="store_true", help="reject instead of approving")
    approve.add_argument("--comment", default="", help="a note for the team")
    approve.add_argument("--edit", type=Path, metavar="FILE", help="YAML or JSON: at a plan gate the changed plan, "
                         "at an escalation the subtask fields to change (then retried)")
    _wait_flag(approve)
    approve.set_defaults(handler=_approve, approval="hold")

    amend = sub.add_parser("amend", help="add to a hierarchical run's scope: troupe amend THREAD TEXT")
    amend.add_argument("thread")
    amend.add_argument("text", help="what to add, e.g. \"Also add OAuth login\"")
    _approval_flags(amend)
    _wait_flag(amend)
    amend.set_defaults(handler=_amend)

    runs = sub.add_parser("runs", help="list runs with their status")
    runs.add_argument("--json", action="store_true", help="machine-readable output: a list of runs")
    runs.set_defaults(handler=_runs)

    show = sub.add_parser("show", help="plan, task board and protocol messages of a run")
    show.add_argument("thread")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)

    patterns = sub.add_parser("patterns", help="list the orchestration patterns and when to pick each")
    patterns.add_argument("--json", action="store_true", help="machine-readable output: {pattern: when to pick it}")
    patterns.set_defaults(handler=_patterns)

    graph = sub.add_parser("graph", help="a pattern's graph as Mermaid text, or a PNG (--png FILE)")
    graph.add_argument("pattern", help=f"one of: {', '.join(PATTERNS)}")
    graph.add_argument("--png", type=Path, metavar="FILE", help="render to a PNG file offline (needs pygraphviz)")
    graph.set_defaults(handler=_graph)

    recipes_ = sub.add_parser("recipes", help="the ready-made teams that run as one command: troupe run RECIPE TASK")
    recipes_.set_defaults(handler=_recipes)

    teams = sub.add_parser("teams", help="list the teams (built-in, user, $TROUPE_TEAMS); `teams check PATH`")
    teams.set_defaults(handler=_teams)
    teams_sub = teams.add_subparsers(metavar="check", parser_class=_Parser)
    check = teams_sub.add_parser("check", help="validate a team file: troupe teams check PATH")
    check.add_argument("path", type=Path)
    check.set_defaults(handler=_check_team)
    for command in sub.choices.values():  # `troupe runs --db X` as well as `troupe --db X runs`
        command.add_argument("--db", type=Path, default=argparse.SUPPRESS, help=DB_HELP)
    return p


def _version() -> str:
    try:
        return version("troupe")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _approval_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--auto-approve", dest="approval", action="store_const", const="auto",
                   help="approve at the gate without asking")
    g.add_argument("--await-approval", dest="approval", action="store_const", const="hold",
                   help="stop at the gate; finish later with `troupe approve THREAD`")
    p.set_defaults(approval=None)


def _wait_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="if another process is driving the run, wait until it stops "
                   "(default: refuse)")


def _either(words: tuple[str, ...]) -> str:
    """The words quoted, as "'a', 'b' or 'c'"."""
    quoted = [repr(w) for w in words]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else "".join(quoted)


def _models(specs: list[str]) -> tuple[str | None, dict[str, str]]:
    """`--model` values: the default spec (if one was given) and per-role specs."""
    default, models = None, {}
    for spec in specs:
        role, sep, value = spec.partition("=")
        if sep:
            models[role] = value
        else:
            default = spec
    return default, models


def _context(args: argparse.Namespace) -> RunContext:
    default, models = _models(args.model)
    default = default or os.environ.get("TROUPE_MODEL") or "offline"
    fail = dict(item.partition("=")[::2] for item in args.fail)
    if any(not v for v in fail.values()):
        raise TroupeError("--fail takes AGENT=MODE, e.g. worker=raise")
    for who, mode in fail.items():
        kind, _, upto = mode.partition(":")
        if kind not in MODES or (upto and not upto.isdigit()):
            raise TroupeError(f"--fail {who}={mode}: the mode is one of {', '.join(MODES)}, optionally ':N'")
    ctx = RunContext(team=args.team or RunContext.team, model=default, models=models, seed=args.seed,
                     latency=args.latency, max_review_rounds=args.max_review_rounds, fail=fail,
                     base_url=args.base_url or os.environ.get("OPENAI_BASE_URL"), approve_plan=args.approve_plan)
    if args.workspace_root:
        ctx.workspace_root = args.workspace_root
    return ctx


async def _run(args: argparse.Namespace) -> int:
    ctx = _context(args)
    check_input(args.task, ctx, args.thread)  # before the db is opened: nothing is written for unusable input
    try:
        args.pattern, chosen = resolve(args.pattern, args.team_file or args.team)
    except LookupError as exc:
        raise TroupeError(str(exc)) from None
    team = _load(chosen or "software", ctx)
    args.thread = args.thread or new_thread_id(args.task)
    async with Runner.open(args.db or default_db()) as runner:
        feed = Feed()
        feed.line(f"team: {team.name} ({', '.join(r.name for r in team.roles)})")
        feed.line(f"models: {_models_in_use(ctx, team)}")
        feed.line(f"checkpoints: {runner.db}")
        start = runner.start(args.pattern, args.task, ctx, team=team, thread_id=args.thread, listener=feed)
        return await _guarded(runner, args, feed, start)


async def _resume(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db(), wait=args.wait) as runner:
        info = await runner.info(args.thread)
        feed = Feed()
        feed.line(f"resuming {info.pattern} run {info.thread_id}: {info.task}")
        default, models = _models(args.model)
        settings: dict[str, Any] = {"models": {**info.context.models, **models}} if models else {}
        settings |= {"model": default} if default else {}
        settings |= {"base_url": args.base_url} if args.base_url else {}
        return await _guarded(runner, args, feed, runner.resume(args.thread, settings=settings, listener=feed))


async def _approve(args: argparse.Namespace) -> int:
    edit = read_edit(args.edit) if args.edit else None
    decision = Decision(approved=not args.reject, comment=args.comment, by="human", edit=edit)
    async with Runner.open(args.db or default_db(), wait=args.wait) as runner:
        feed = Feed()
        return await _guarded(runner, args, feed, runner.approve(args.thread, decision, listener=feed))


_GATES = {"plan": "its plan gate", "approval": "its final approval gate", "authorize": "a subtask's approval gate",
          "escalation": "an escalation"}


async def _amend(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db(), wait=args.wait) as runner:
        outcome = await runner.amendable(args.thread, args.text)
        feed, thread, gate = Feed(), outcome.info.thread_id, outcome.gate
        if gate in REPLAN_GATES:
            feed.line(f"amendment recorded; the run was waiting at {_GATES[gate]}: it replans now")
            return await _guarded(runner, args, feed, runner.amend(thread, args.text, listener=feed))
        await runner.amend(thread, args.text)
        if gate is not None:
            feed.line(f"amendment recorded; the run waits at {_GATES.get(gate, gate)} and plans it after that answer: "
                      f"`troupe approve {thread}`")
        else:
            feed.line("amendment recorded; a run going on in another process plans it at its next step, a stopped "
                      f"one when resumed: `troupe resume {thread}`")
        return 0


def _models_in_use(ctx: RunContext, team: Team) -> str:
    """'offline model (...)', or 'openai:gpt-4o-mini; planner: openai:gpt-4o' with per-role and per-agent ones."""

    def label(spec: str) -> str:
        return OFFLINE_LABEL if spec == "offline" else spec

    chosen = {r.name: r.model for r in team.roles if r.model} | ctx.models
    return "; ".join([label(ctx.model), *(f"{who}: {label(spec)}" for who, spec in sorted(chosen.items()))])


def _load(team: Team | str | Path, ctx: RunContext | None = None) -> Team:
    """The team, checked as a run would check it (before anything is written)."""
    try:
        loaded = load_team(team)
        Kit.create(team=loaded).check(loaded, ctx or RunContext())
    except ValueError as exc:  # TeamError, ModelSpecError
        raise TroupeError(str(exc)) from None
    return loaded


async def _guarded(runner: Runner, args: argparse.Namespace, feed: Feed, call: Any) -> int:
    """Run `call`, settle the approval gate, report; a failing run is reported in one line, never lost."""
    try:
        outcome = await call
        outcome = await _settle(runner, outcome, args.approval, feed)
    except TroupeError:
        raise
    except Exception as exc:  # a node failed after its retries: report it, the checkpoint stays resumable
        if os.environ.get("TROUPE_DEBUG"):
            raise
        print(f"troupe: run stopped: {type(exc).__name__}: {printable(str(exc).splitlines()[0]) if str(exc) else ''}\n"
              f"troupe: {await _next_step(runner, args.thread)}", file=sys.stderr)
        return 1
    _report(outcome)
    return 0


async def _next_step(runner: Runner, thread: str) -> str:
    """What to do after a failure: resume the run if it was saved (from its last checkpoint, or from its task when
    it failed before its first one), else run it again."""
    try:
        await runner.info(thread)
    except TroupeError:
        return "it failed before anything was saved: fix the cause, then run it again"
    except Exception:  # the database itself fails (locked, read-only, broken): it cannot say
        return f"fix the cause; then, if `troupe runs` lists {thread}, `troupe resume {thread}`, else run it again"
    return f"the run is saved; fix the cause, then `troupe resume {thread}`"


async def _settle(runner: Runner, outcome: Outcome, mode: str | None, feed: Feed) -> Outcome:
    """Answer each gate: ask a person at a terminal; else approve (an escalation: skip it) and say so."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    while outcome.status == "awaiting_approval":
        print(approval_text(outcome.interrupt), flush=True)
        if mode == "hold":
            return outcome
        if mode == "auto" or not interactive:
            why = "--auto-approve" if mode == "auto" else "no terminal to ask (--await-approval stops here instead)"
            decision = _auto_answer(outcome, why, feed)
        elif (asked := ask(outcome.interrupt, outcome.info.workspace)) is not None:
            decision = asked
        else:
            return outcome
        outcome = await runner.approve(outcome.info.thread_id, decision, listener=feed)
    return outcome


def _auto_answer(outcome: Outcome, why: str, feed: Feed) -> Decision:
    """Approve a gate, skip an escalation (no one can retry or edit it), saying which and why."""
    if outcome.gate == "escalation":
        which = ", ".join(t["id"] for t in outcome.interrupt.get("tasks", [])) or "the escalated subtask"
        feed.line(f"auto-skipping {which}: {why}")
        return Decision(approved=False, comment="no person to ask: skipped", by="auto")
    feed.line(f"auto-approving{' the plan' if outcome.gate == 'plan' else ''}: {why}")
    return Decision(approved=True, comment="auto-approved", by="auto")


def _report(outcome: Outcome) -> None:
    info = outcome.info
    if outcome.gate == "plan":
        print(f"\nwaiting for approval of the plan: `troupe approve {info.thread_id}` (or --reject, or --edit FILE "
              "with the changed plan)")
    elif outcome.gate == "escalation":
        print(f"\nwaiting at an escalation: `troupe approve {info.thread_id}` retries, --reject skips, --edit FILE "
              "changes the subtask, then retries")
    elif outcome.status == "awaiting_approval":
        print(f"\nwaiting for approval: `troupe approve {info.thread_id}` (or --reject)")
    elif outcome.status in ("completed", "escalated", "failed") and outcome.values.get("result"):
        print(f"\n{printable(str(outcome.values['result']))}")
    print(f"status: {outcome.status}")
    print(f"thread: {info.thread_id}")
    print(f"workspace: {info.workspace}")


async def _runs(args: argparse.Namespace) -> int:
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


async def _show(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db()) as runner:
        info = await runner.info(args.thread)
        outcome = await runner.outcome(info)
        messages = await runner.journal(info.thread_id)
        progress = await runner.progress(info.thread_id)
    plan, board = outcome.values.get("plan"), outcome.values.get("board", {})
    if args.json:
        doc = {
            "thread_id": info.thread_id, "pattern": info.pattern, "task": info.task, "status": outcome.status,
            "owner": outcome.owner,
            "error": outcome.error, "context": asdict(info.context), "workspace": str(info.workspace),
            "team": info.team, "objects": info.objects,
            "plan": plan.model_dump(mode="json") if plan else None,
            "board": {k: v.model_dump(mode="json") for k, v in board.items()},
            "progress": [p.model_dump() for p in progress],
            "messages": [m.model_dump(mode="json") for m in messages],
            "result": outcome.values.get("result"),
            "state": to_jsonable_python(outcome.values),
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(printable(f"{info.thread_id}  {info.pattern}  {_status(outcome)}\ntask: {info.task}\n"
                    f"team: {info.context.team}\nworkspace: {info.workspace}"))
    if outcome.error:
        print(f"error: {printable(outcome.error)}")
    if plan:
        print(f"\nplan: {printable(plan.summary)}")
        width = id_width(plan)
        for t in plan.tasks:
            rec = board[t.id]
            print(printable(f"  {t.id:<{width}}{rec.status.value:<12}{t.assignee:<12} round {rec.round}  {t.title}"
                            + (f"  ({rec.reason})" if rec.reason else "")))
    print(f"\nmessages ({len(messages)}):")
    for m in messages:
        print(f"  {describe(m)}")
    if outcome.values.get("result"):
        print(f"\nresult:\n{printable(str(outcome.values['result']))}")
    return 0


async def _teams(args: argparse.Namespace) -> int:
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


async def _recipes(args: argparse.Namespace) -> int:
    for name, team in recipes().items():
        print(f"{name:<16} {team.pattern:<13} {team.description}\n{'':<16} {'':<13} roles: "
              f"{', '.join(r.name for r in team.roles)}")
    return 0


async def _check_team(args: argparse.Namespace) -> int:
    team = _load(args.path)
    if team.pattern is not None and team.pattern not in PATTERNS:
        raise TroupeError(f"{team.where('pattern')}: unknown pattern {team.pattern!r}; known: {', '.join(PATTERNS)}")
    roles = ", ".join(f"{r.name} ({', '.join(r.capabilities)})" for r in team.roles)
    print(f"ok: {args.path}: team {team.name!r} with {len(team.roles)} roles: {roles}")
    return 0


async def _patterns(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(PATTERNS, indent=2))
        return 0
    for name, summary in PATTERNS.items():
        print(f"{name:<14} {summary}")
    return 0


async def _graph(args: argparse.Namespace) -> int:
    try:
        drawable = builder(args.pattern)().compile(name=args.pattern).get_graph()
    except LookupError as exc:
        raise TroupeError(str(exc).strip("'\"")) from None
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


if __name__ == "__main__":
    raise SystemExit(main())
