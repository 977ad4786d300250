"""The `troupe` command: its arguments, and the exit codes other programs can rely on.

This module stays light (argparse and a few constants): `troupe --help` and `--version` import no LangGraph.
The commands themselves live in `graphs.commands` (they drive runs) and `graphs.inspection` (they read them),
imported once the arguments are parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from graphs.errors import TroupeError
from graphs.registry import PATTERNS
from state.context import MODEL_ROLES, MODES, TOOL_CALLING

DB_HELP = ("the database for checkpoints, store and cache: a SQLite file, or a PostgreSQL URL "
           "postgresql://USER@HOST/NAME (default: $TROUPE_DB or ~/.local/share/troupe/troupe.sqlite)")

EXIT_CODES: dict[str, int] = {
    "completed": 0,
    "failed": 1,
    "bad input": 2,
    "incomplete": 3,
    "awaiting_approval": 4,
    "out_of_budget": 5,
    "interrupted": 130,
}
"""What `troupe run`, `resume`, `approve`, `amend` and `fork` exit with: 0 everything done; 1 a node failed after its
retries (resumable); 2 bad input (nothing written); 3 finished, but not everything was done (failed, blocked or
skipped subtasks, dead letters, a swarm escalation, a rejection); 4 waiting for a person (`troupe approve`); 5 out of
budget (`troupe resume THREAD --budget-tokens N`); 130 interrupted by Ctrl-C (`troupe resume THREAD`)."""

DRIVING = ("run", "resume", "approve", "amend", "fork", "serve")
"""Commands that drive a run (and so may trace it)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"troupe: error: {message} (see `troupe --help`)\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in DRIVING:
        from graphs.tracing import ensure_reachable

        if warning := ensure_reachable():
            print(f"troupe: {warning}", file=sys.stderr)
    module, _, name = args.handler.partition(":")
    try:
        handler = getattr(importlib.import_module(f"graphs.{module}"), name)
        code: int = asyncio.run(handler(args))
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader went away (`troupe show X --json | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except TroupeError as exc:
        from graphs.console import printable

        print(f"troupe: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    except KeyboardInterrupt:
        thread = getattr(args, "thread", None) or "THREAD"
        print(f"\ntroupe: interrupted: the run stopped after its last finished step (`troupe resume {thread}`)",
              file=sys.stderr)
        return EXIT_CODES["interrupted"]


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="troupe", description="Durable multi-agent team runs on LangGraph.",
                epilog="exit codes: 0 completed, 1 failed, 2 bad input, 3 finished with work not done, 4 waiting for "
                "approval, 5 out of budget, 130 interrupted")
    p.add_argument("--db", type=_database, default=None, help=DB_HELP)
    p.add_argument("--version", action=_Version, nargs=0, help="show troupe's version and exit")
    sub = p.add_subparsers(required=True, metavar="COMMAND", parser_class=_Parser)

    run = _command(sub, "run", "commands:run", "start a run: troupe run PATTERN TASK")
    _run_flags(run)
    _output_flags(run)

    submit = _command(sub, "submit", "queue:submit", "queue a run for `troupe worker` processes (PostgreSQL): "
                      "troupe submit PATTERN TASK; prints its thread id")
    _run_flags(submit)

    worker = _command(sub, "worker", "queue:worker", "drive queued runs until stopped (PostgreSQL; Ctrl-C or SIGTERM "
                      "stops after the runs in hand)")
    worker.add_argument("--concurrency", type=int, default=4, metavar="N", help="runs driven at once (default: 4)")
    worker.add_argument("--once", action="store_true", help="stop when the queue is empty")

    resume = _command(sub, "resume", "commands:resume", "continue a stopped, killed or out-of-budget run")
    resume.add_argument("thread")
    _model_flags(resume, "change the run's model(s) before resuming, as for `run`")
    resume.add_argument("--workspace-root", default=None,
                        help="carry the run on in workspaces here (another host's or folder's): its files come along")
    _budget_flags(resume)
    _approval_flags(resume)
    _wait_flag(resume)
    _output_flags(resume)

    fork = _command(sub, "fork", "commands:fork", "start a new run from an earlier checkpoint of a run (time travel)")
    fork.add_argument("thread", help="the run to fork")
    fork.add_argument("--at", required=True, metavar="CHECKPOINT", help="a checkpoint id, or its number, from "
                      "`troupe history THREAD`")
    fork.add_argument("--thread", dest="new_thread", metavar="ID", help="thread id of the new run (default: "
                      "THREAD-fork-XXXX)")
    _model_flags(fork, "change the new run's model(s), as for `run`")
    _budget_flags(fork)
    _approval_flags(fork)
    _output_flags(fork)

    approve = _command(sub, "approve", "commands:approve", "answer a run waiting at its approval gate")
    approve.add_argument("thread")
    approve.add_argument("--reject", action="store_true", help="reject instead of approving")
    approve.add_argument("--comment", default="", help="a note for the team")
    approve.add_argument("--edit", type=Path, metavar="FILE", help="YAML or JSON: at a plan gate the changed plan, "
                         "at an escalation the subtask fields to change (then retried)")
    _wait_flag(approve)
    _output_flags(approve)
    approve.set_defaults(approval="hold")

    amend = _command(sub, "amend", "commands:amend", "add to a hierarchical run's scope: troupe amend THREAD TEXT")
    amend.add_argument("thread")
    amend.add_argument("text", help="what to add, e.g. \"Also add OAuth login\"")
    _approval_flags(amend)
    _wait_flag(amend)
    _output_flags(amend)

    serve = _command(sub, "serve", "commands:serve", "serve a team as an A2A agent: troupe serve PATTERN|RECIPE "
                     "(needs troupe[a2a])")
    serve.add_argument("pattern", metavar="PATTERN|RECIPE", help="what it runs, as for `run`")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8100, help="the port (default: 8100; 0: a free one, printed)")
    serve.add_argument("--public-url", metavar="URL", help="the URL its agent card gives clients (default: "
                       "http://HOST:PORT/)")
    _model_flags(serve, "the team's model(s), as for `run`")
    served = serve.add_mutually_exclusive_group()
    served.add_argument("--team", default=None, metavar="NAME", help="a team by name, as for `run`")
    served.add_argument("--team-file", type=Path, metavar="PATH", help="a team file (YAML) to serve")
    serve.add_argument("--seed", type=int, default=7, help="offline model seed, as for `run`")
    serve.add_argument("--latency", type=float, default=0.2, help="offline model: simulated seconds per call")
    serve.add_argument("--max-review-rounds", type=int, default=3, help="work rounds a subtask gets")
    serve.add_argument("--fail", action="append", default=[], metavar="AGENT=MODE", help="offline model, for tests "
                       "and demos, as for `run`")
    serve.add_argument("--approve-plan", action="store_true", help="hierarchical runs: a plan gate before any worker")
    serve.add_argument("--workspace-root", default=None, help="where run workspaces go (default: beside the db)")
    serve.add_argument("--no-cache", action="store_true", help="call the models even for answers cached before")
    _budget_flags(serve)
    serve.add_argument("--auto-approve", dest="approval", action="store_const", const="auto", default=None,
                       help="answer every gate on the server (default: a gate asks the client: input-required)")

    watch = _command(sub, "watch", "inspection:watch", "follow a run another process is driving, until it stops")
    watch.add_argument("thread")
    watch.add_argument("--json-lines", action="store_true", help="one JSON event per line, as `run --json-lines`")
    watch.add_argument("--interval", type=float, default=0.5, help="seconds between looks at the database")

    runs = _command(sub, "runs", "inspection:runs", "list runs with their status")
    runs.add_argument("--json", action="store_true", help="machine-readable output: a list of runs")

    show = _command(sub, "show", "inspection:show", "the story of a run: plan, board, decisions, messages, usage")
    show.add_argument("thread")
    show.add_argument("--json", action="store_true", help="machine-readable output")

    history = _command(sub, "history", "inspection:history", "the checkpoints of a run, to fork from")
    history.add_argument("thread")
    history.add_argument("--json", action="store_true", help="machine-readable output")

    stats = _command(sub, "stats", "inspection:stats", "latency, throughput, tokens, cost, efficiency, reliability "
                     "per agent; scalability across runs of one task")
    stats.add_argument("thread", nargs="?", help="one run (default: every run)")
    stats.add_argument("--json", action="store_true", help="machine-readable output")

    report = _command(sub, "report", "inspection:report", "a self-contained HTML report of a run: graph, timeline, "
                      "tokens and cost, decisions")
    report.add_argument("thread")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write it (default: "
                        "report.html in the run's workspace)")

    patterns = _command(sub, "patterns", "inspection:patterns", "list the orchestration patterns and when to pick "
                        "each")
    patterns.add_argument("--json", action="store_true", help="machine-readable output: {pattern: when to pick it}")

    graph = _command(sub, "graph", "inspection:graph", "a pattern's graph as Mermaid text, or a PNG (--png FILE)")
    graph.add_argument("pattern", help=f"one of: {', '.join(PATTERNS)}")
    graph.add_argument("--png", type=Path, metavar="FILE", help="render to a PNG file offline (needs pygraphviz)")

    _command(sub, "recipes", "inspection:list_recipes", "the ready-made teams that run as one command: troupe run "
             "RECIPE TASK")

    teams = _command(sub, "teams", "inspection:teams", "list the teams (built-in, user, $TROUPE_TEAMS); "
                     "`teams check PATH`")
    teams_sub = teams.add_subparsers(metavar="check", parser_class=_Parser)
    check = teams_sub.add_parser("check", help="validate a team file: troupe teams check PATH")
    check.add_argument("path", type=Path)
    check.set_defaults(handler="inspection:check_team")
    cache = _command(sub, "cache", "inspection:cache", "the model cache: `troupe cache clear` empties it")
    cache.add_argument("action", choices=["clear"], help="clear: delete every cached model answer")
    memory = _command(sub, "memory", "inspection:memory", "what a persistent specialist (a role with `memory: "
                      "persistent`) keeps across runs; --clear forgets it")
    memory.add_argument("role", help="the role's name")
    where = memory.add_mutually_exclusive_group()
    where.add_argument("--team", default="software", metavar="NAME", help="its team, by name (default: software)")
    where.add_argument("--team-file", type=Path, metavar="PATH", help="its team, from a team file")
    memory.add_argument("--clear", action="store_true", help="forget everything it keeps")
    for command in sub.choices.values():  # `troupe runs --db X` as well as `troupe --db X runs`
        command.add_argument("--db", type=_database, default=argparse.SUPPRESS, help=DB_HELP)
    return p


def _run_flags(p: argparse.ArgumentParser) -> None:
    """What `run` and `submit` take: the pattern or recipe, the task, the team, models, budget, approval."""
    p.add_argument("pattern", metavar="PATTERN|RECIPE", help=f"a pattern ({', '.join(PATTERNS)}) or a recipe "
                   "(`troupe recipes`)")
    p.add_argument("task", help="what the team should do")
    p.add_argument("--thread", help="thread id for the run (default: made from the task)")
    _model_flags(p, "'offline' (default), 'openai:NAME' or 'PROVIDER:NAME'; ROLE=SPEC sets one model role "
                 f"({', '.join(MODEL_ROLES)}) or one agent by name; default from $TROUPE_MODEL")
    team = p.add_mutually_exclusive_group()
    team.add_argument("--team", default=None, metavar="NAME",
                      help="a team by name: built-in, user or $TROUPE_TEAMS (see `troupe teams`; default: software)")
    team.add_argument("--team-file", type=Path, metavar="PATH", help="a team file (YAML) to run")
    p.add_argument("--seed", type=int, default=7, help="offline model seed: same seed, same run")
    p.add_argument("--latency", type=float, default=0.2, help="offline model: simulated seconds per call")
    p.add_argument("--max-review-rounds", type=int, default=3, help="work rounds a subtask gets")
    p.add_argument("--fail", action="append", default=[], metavar="AGENT=MODE",
                   help=f"offline model, for tests and demos: make an agent or model role {_either(MODES)} "
                   "(':N': the first N tries only)")
    p.add_argument("--approve-plan", action="store_true", help="hierarchical runs: approve, edit or reject the "
                   "plan before any worker starts")
    p.add_argument("--workspace-root", default=None, help="where run workspaces go (default: beside the db)")
    p.add_argument("--no-cache", action="store_true", help="call the models even where an identical call was "
                   "answered before (default: answer it from the model cache)")
    _budget_flags(p)
    _approval_flags(p)


def _command(sub: argparse._SubParsersAction, name: str, handler: str, about: str) -> argparse.ArgumentParser:
    """A subcommand whose handler is `module:function` in `graphs` (imported only when it runs)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=about)
    p.set_defaults(command=name, handler=handler)
    return p


class _Version(argparse.Action):
    """`--version`, looked up only when asked for (reading the installed metadata costs every command ~5 ms)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"troupe {_version()}")
        parser.exit(0)


def _database(text: str) -> Path | str:
    """A --db value: a PostgreSQL URL as it is, else a SQLite file's path."""
    return text if text.startswith(("postgresql://", "postgres://")) else Path(text)


def _version() -> str:
    try:
        return version("troupe")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _model_flags(p: argparse.ArgumentParser, about: str) -> None:
    p.add_argument("--model", action="append", default=[], metavar="[ROLE=]SPEC", help=about)
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="cap each model answer at N tokens (models "
                   "built from specs; a role's model_settings.max_tokens wins)")
    p.add_argument("--tool-calling", choices=TOOL_CALLING, default=None,
                   help="how workers' models use tools: native calls, json (models without tool calling), or auto "
                   "(native until a model writes a call as text; the default)")


def _budget_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget-tokens", type=int, metavar="N", help="stop the run (resumably) once its model calls "
                   "have used N tokens; near the end it degrades first")
    p.add_argument("--budget-usd", type=float, metavar="USD", help="the same, in estimated dollars (see --price)")
    p.add_argument("--cheap-model", metavar="SPEC", help="the model routine roles move to near the end of a budget")
    p.add_argument("--price", action="append", default=[], metavar="MODEL=IN/OUT",
                   help="dollars per million input/output tokens of a model, over the built-in table")


def _approval_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--auto-approve", dest="approval", action="store_const", const="auto",
                   help="approve at the gate without asking")
    g.add_argument("--await-approval", dest="approval", action="store_const", const="hold",
                   help="stop at the gate; finish later with `troupe approve THREAD`")
    p.set_defaults(approval=None)


def _output_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", dest="output", action="store_const", const="quiet",
                   help="print only the outcome (status, thread, workspace)")
    g.add_argument("--json-lines", dest="output", action="store_const", const="json-lines",
                   help="one JSON event per line on stdout, for other programs (see README: Watching a run)")
    g.add_argument("--json", dest="output", action="store_const", const="json",
                   help="print only the final outcome, as one JSON object")
    p.set_defaults(output=None)


def _wait_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="if another process is driving the run, wait until it stops "
                   "(default: refuse)")


def _either(words: tuple[str, ...]) -> str:
    """The words quoted, as "'a', 'b' or 'c'"."""
    quoted = [repr(w) for w in words]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else "".join(quoted)


if __name__ == "__main__":
    raise SystemExit(main())
