"""The commands that drive runs: run, resume, fork, approve, amend. Each prints through one view (`graphs.views`:
the live board at a terminal, plain lines elsewhere, `--quiet`, `--json-lines`, `--json`) and exits with the code
of where the run ended (`graphs.cli.EXIT_CODES`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from graphs.cli import EXIT_CODES
from graphs.console import ask, printable, read_edit
from graphs.errors import TroupeError
from graphs.runtime import PLAN_GATED, REPLAN_GATES, Outcome, Runner, check_input, default_db, new_thread_id, resolve
from graphs.views import View, choose_view
from nodes.kit import Kit
from nodes.offline_model import OFFLINE_LABEL
from nodes.teams import load_team
from state.budget import Price
from state.context import MODES, RunContext
from state.roles import Team
from state.team import Decision


async def run(args: argparse.Namespace) -> int:
    ctx = _context(args)
    check_input(args.task, ctx, args.thread)  # before the db is opened: nothing is written for unusable input
    try:
        args.pattern, chosen = resolve(args.pattern, args.team_file or args.team)
    except LookupError as exc:
        raise TroupeError(str(exc)) from None
    team = _load(chosen or "software", ctx)
    args.thread = args.thread or new_thread_id(args.task)
    async with Runner.open(args.db or default_db()) as runner:
        view = choose_view(args.output)
        view.line(f"team: {team.name} ({', '.join(r.name for r in team.roles)})")
        view.line(f"models: {_models_in_use(ctx, team)}")
        view.line(f"checkpoints: {runner.where}")
        start = runner.start(args.pattern, args.task, ctx, team=team, thread_id=args.thread, listener=view)
        return await _guarded(runner, args, view, start)


async def resume(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db(), wait=args.wait) as runner:
        info = await runner.info(args.thread)
        view = choose_view(args.output)
        view.line(f"resuming {info.pattern} run {info.thread_id}: {info.task}")
        call = runner.resume(args.thread, settings=_settings(args, info.context), listener=view)
        return await _guarded(runner, args, view, call)


async def fork(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db()) as runner:
        info = await runner.info(args.thread)
        view = choose_view(args.output)
        args.thread = args.new_thread or new_thread_id(f"{info.thread_id} fork")
        view.line(f"forking {info.pattern} run {info.thread_id} at checkpoint {args.at} into {args.thread}")
        call = runner.fork(info.thread_id, args.at, new_thread=args.thread, settings=_settings(args, info.context),
                           listener=view)
        return await _guarded(runner, args, view, call)


async def approve(args: argparse.Namespace) -> int:
    edit = read_edit(args.edit) if args.edit else None
    decision = Decision(approved=not args.reject, comment=args.comment, by="human", edit=edit)
    async with Runner.open(args.db or default_db(), wait=args.wait) as runner:
        view = choose_view(args.output)
        return await _guarded(runner, args, view, runner.approve(args.thread, decision, listener=view))


_GATES = {"plan": "its plan gate", "approval": "its final approval gate", "authorize": "a subtask's approval gate",
          "escalation": "an escalation"}


async def amend(args: argparse.Namespace) -> int:
    async with Runner.open(args.db or default_db(), wait=args.wait) as runner:
        outcome = await runner.amendable(args.thread, args.text)
        view, thread, gate = choose_view(args.output), outcome.info.thread_id, outcome.gate
        if gate in REPLAN_GATES:
            view.line(f"amendment recorded; the run was waiting at {_GATES[gate]}: it replans now")
            return await _guarded(runner, args, view, runner.amend(thread, args.text, listener=view))
        await runner.amend(thread, args.text)
        if gate is not None:
            view.line(f"amendment recorded; the run waits at {_GATES.get(gate, gate)} and plans it after that "
                      f"answer: `troupe approve {thread}`")
        else:
            view.line("amendment recorded; a run going on in another process plans it at its next step, a stopped "
                      f"one when resumed: `troupe resume {thread}`")
        return 0


async def serve(args: argparse.Namespace) -> int:
    """The team as an A2A agent (`graphs.a2a_server`, needs troupe[a2a]) until Ctrl-C; its runs in the database."""
    from graphs.a2a_server import serve_team

    ctx = _context(args)
    try:
        pattern, chosen = resolve(args.pattern, args.team_file or args.team)
    except LookupError as exc:
        raise TroupeError(str(exc)) from None
    if ctx.approve_plan and pattern not in PLAN_GATED:
        raise TroupeError(f"a {pattern} run has no plan to approve: --approve-plan works on {' and '.join(PLAN_GATED)} "
                          "runs and the recipes that run them")
    team = _load(chosen or "software", ctx)
    async with Runner.open(args.db or default_db()) as runner:
        return await serve_team(runner, pattern, team, ctx, host=args.host, port=args.port,
                                public_url=args.public_url, auto_approve=args.approval == "auto")


def exit_code(outcome: Outcome) -> int:
    """Where a run ended, as the exit code `graphs.cli.EXIT_CODES` documents."""
    if outcome.status in ("awaiting_approval", "out_of_budget", "failed"):
        return EXIT_CODES[outcome.status]
    if outcome.status == "completed" and outcome.shortfall is None:
        return EXIT_CODES["completed"]
    return EXIT_CODES["incomplete"]


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


def _prices(items: list[str]) -> dict[str, list[float]]:
    """`--price MODEL=IN/OUT` values: dollars per million input and output tokens by model name."""
    prices: dict[str, list[float]] = {}
    for item in items:
        name, _, pair = item.partition("=")
        parts = pair.split("/")
        try:
            price = Price(input=float(parts[0]), output=float(parts[1])) if name and len(parts) == 2 else None
        except ValueError:
            price = None
        if price is None:
            raise TroupeError(f"--price {item}: use MODEL=IN/OUT, dollars per million tokens, e.g. gpt-4o=2.5/10")
        prices[name] = [price.input, price.output]
    return prices


def _budget(args: argparse.Namespace) -> dict[str, Any]:
    """The budget flags that were given, as run settings."""
    if args.budget_tokens is not None and args.budget_tokens <= 0:
        raise TroupeError(f"--budget-tokens {args.budget_tokens}: give a positive number of tokens")
    if args.budget_usd is not None and not 0 < args.budget_usd < float("inf"):
        raise TroupeError(f"--budget-usd {args.budget_usd}: give a positive number of dollars")
    given = {"budget_tokens": args.budget_tokens, "budget_usd": args.budget_usd, "cheap_model": args.cheap_model}
    return {k: v for k, v in given.items() if v is not None} | ({"prices": _prices(args.price)} if args.price else {})


def _settings(args: argparse.Namespace, ctx: RunContext) -> dict[str, Any]:
    """Stored run settings a resume or fork changes: models, endpoint, tool calling, budget, workspace root."""
    default, models = _models(args.model)
    settings: dict[str, Any] = {"models": {**ctx.models, **models}} if models else {}
    if root := getattr(args, "workspace_root", None):
        settings["workspace_root"] = str(Path(root).resolve())
    settings |= {"model": default} if default else {}
    settings |= {"base_url": args.base_url} if args.base_url else {}
    settings |= {"tool_calling": args.tool_calling} if args.tool_calling else {}
    settings |= {"max_tokens": _positive(args.max_tokens)} if args.max_tokens is not None else {}
    budget = _budget(args)
    if "prices" in budget:
        budget["prices"] = {**ctx.prices, **budget["prices"]}
    return settings | budget


def _positive(max_tokens: int) -> int:
    if max_tokens < 1:
        raise TroupeError(f"--max-tokens {max_tokens}: give a number of tokens, at least 1")
    return max_tokens


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
                     base_url=args.base_url or os.environ.get("OPENAI_BASE_URL"), approve_plan=args.approve_plan,
                     cache=not args.no_cache, tool_calling=args.tool_calling or "auto",
                     max_tokens=_positive(args.max_tokens) if args.max_tokens is not None else None, **_budget(args))
    if args.workspace_root:
        ctx.workspace_root = args.workspace_root
    return ctx


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


async def _guarded(runner: Runner, args: argparse.Namespace, view: View, call: Any) -> int:
    """Run `call`, settle the approval gate, report; a failing run is reported in one line, never lost."""
    try:
        outcome = await call
        outcome = await settle(runner, outcome, args.approval, view)
    except TroupeError:
        raise
    except Exception as exc:  # a node failed after its retries: report it, the checkpoint stays resumable
        if os.environ.get("TROUPE_DEBUG"):
            raise
        view.close()
        print(f"troupe: run stopped: {type(exc).__name__}: {printable(str(exc).splitlines()[0]) if str(exc) else ''}\n"
              f"troupe: {await _next_step(runner, args.thread)}", file=sys.stderr)
        return EXIT_CODES["failed"]
    finally:
        view.close()  # the live board gives the terminal back, whatever happened
    view.outcome(outcome)
    return exit_code(outcome)


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


async def settle(runner: Runner, outcome: Outcome, mode: str | None, view: View) -> Outcome:
    """Answer each gate: ask a person at a terminal; else approve (an escalation: skip it) and say so."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and view.interactive
    while outcome.status == "awaiting_approval":
        view.gate(outcome.interrupt)
        if mode == "hold":
            return outcome
        if mode == "auto" or not interactive:
            why = "--auto-approve" if mode == "auto" else "no terminal to ask (--await-approval stops here instead)"
            decision = _auto_answer(outcome, why, view)
        else:
            with view.paused():
                asked = ask(outcome.interrupt, outcome.info.workspace)
            if asked is None:
                return outcome
            decision = asked
        outcome = await runner.approve(outcome.info.thread_id, decision, listener=view)
    return outcome


def _auto_answer(outcome: Outcome, why: str, view: View) -> Decision:
    """Approve a gate, skip an escalation (no one can retry or edit it), saying which and why."""
    if outcome.gate == "escalation":
        which = ", ".join(t["id"] for t in outcome.interrupt.get("tasks", [])) or "the escalated subtask"
        view.line(f"auto-skipping {which}: {why}")
        return Decision(approved=False, comment="no person to ask: skipped", by="auto")
    view.line(f"auto-approving{' the plan' if outcome.gate == 'plan' else ''}: {why}")
    return Decision(approved=True, comment="auto-approved", by="auto")
