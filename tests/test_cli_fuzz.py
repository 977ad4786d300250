"""A fuzz of the CLI's arguments (hypothesis): whatever the argv, a non-zero exit prints no traceback.

`graphs.cli.main(argv)` runs in this process with stdout and stderr captured, against a database, data and
config folders of its own; argv lists are drawn from the real subcommands and flags (`_parser()`) with valid
and junk values. Kept offline and fast: the offline model, `--latency 0` wherever a run could start work,
tiny tasks, few examples.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphs.cli import _parser, main
from graphs.registry import PATTERNS
from nodes.offline_model import MODES

HOME = Path(tempfile.mkdtemp(prefix="troupe-cli-fuzz-"))
"""One folder for the whole module: runs made by one example can be resumed, shown or approved by another."""
atexit.register(shutil.rmtree, HOME, True)
DB = HOME / "troupe.sqlite"
TEXT_FILE = HOME / "notes.txt"
TEXT_FILE.write_text("not a database\n")
EDIT_FILE = HOME / "edit.yaml"
EDIT_FILE.write_text("title: changed\n")
BAD_YAML = HOME / "bad.yaml"
BAD_YAML.write_text("roles: [\n")

SUBCOMMANDS = ["run", "submit", "worker", "resume", "fork", "approve", "amend", "serve", "watch", "runs", "show",
               "history", "stats", "report", "patterns", "graph", "recipes", "teams", "cache", "memory"]
JUNK = ["", " ", "-", "--", "-x", "--nope", "nan", "inf", "-1", "0", "1e309", "9" * 30, "\x1b[31mred", "é",
        "a\nb", "../..", "/", "x" * 300, "T1", "hierarchical\n", "=", "worker=", "=raise"]
THREADS = ["fuzz-run", "nope", "", "x" * 100, "fuzz-run\n", "../x", "UPPER", "a b"]
TASKS = ["Write a haiku", "Build a REST API for todo management", "", "x"]
MODELS = ["offline", "worker=offline", "planner=offline", "nobody=offline", "bogus", "nope:x", "=", "worker="]
FAILS = [f"worker={m}" for m in MODES] + ["worker=bogus", "worker=raise:2", "worker=raise:x", "worker", "=raise"]
DBS = [str(DB), str(HOME / "new" / "x.sqlite")]
BAD_DBS = {"a-folder": str(HOME), "a-text-file": str(TEXT_FILE), "under-a-file": str(TEXT_FILE / "sub.sqlite"),
           "dev-null": "/dev/null"}
"""Places troupe cannot use as its database (issue 13, finding 4): each a one-line error, tested below."""
PATHS = [str(EDIT_FILE), str(BAD_YAML), str(TEXT_FILE), str(HOME / "missing.yaml"), str(HOME)]


def junk_or(*choices: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from([c for group in choices for c in group]) | st.sampled_from(JUNK)


FLAG_NAMES: dict[int, str] = {}
"""The option each flag strategy draws (by the strategy's id), to check them against the parser."""


def flag(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    strategy = st.builds(lambda v: [name, v], values)
    FLAG_NAMES[id(strategy)] = name
    return strategy


def switch(name: str) -> st.SearchStrategy[list[str]]:
    strategy = st.just([name])
    FLAG_NAMES[id(strategy)] = name
    return strategy


APPROVAL = [switch("--auto-approve"), switch("--await-approval")]
OUTPUT = [switch("--quiet"), switch("--json-lines"), switch("--json")]
BUDGET = [flag("--budget-tokens", junk_or(["1000", "0", "-5"])), flag("--budget-usd", junk_or(["0.5", "0", "nan"])),
          flag("--cheap-model", junk_or(MODELS)), flag("--price", junk_or(["offline=1/4", "x=1", "=1/2", "a=b/c"]))]
MODEL_FLAGS = [flag("--model", junk_or(MODELS)), flag("--tool-calling", junk_or(["auto", "native", "json"])),
               flag("--max-tokens", junk_or(["1536", "0", "-1"]))]
RUN_FLAGS = [
    flag("--thread", junk_or(THREADS)), *MODEL_FLAGS, flag("--base-url", junk_or(
        ["http://127.0.0.1:9/v1", "http://user:key@127.0.0.1:9/v1"])),
    flag("--team", junk_or(["software", "content", "nope"])), flag("--team-file", junk_or(PATHS)),
    flag("--seed", junk_or(["7", "0", "-5", str(2**70)])), flag("--max-review-rounds", junk_or(["1", "3", "0", "-3"])),
    flag("--fail", junk_or(FAILS)), switch("--approve-plan"), flag("--workspace-root", junk_or([str(HOME / "ws")])),
    switch("--no-cache"), *APPROVAL, *OUTPUT, *BUDGET,
]
SERVE_FLAGS = [
    flag("--host", junk_or(["127.0.0.1", "256.0.0.1"])), flag("--port", junk_or(["0", "-1", "70000"])),
    flag("--public-url", junk_or(["http://127.0.0.1:9/"])), flag("--latency", junk_or(["0", "-1"])),
    *(f for f in RUN_FLAGS if FLAG_NAMES[id(f)] not in ("--thread", "--await-approval", "--quiet", "--json-lines",
                                                         "--json")),
]
PER_COMMAND: dict[str, tuple[list[st.SearchStrategy[list[str]]], list[st.SearchStrategy[str]]]] = {
    # subcommand: (its flags, its positionals)
    "resume": ([*MODEL_FLAGS, flag("--base-url", junk_or(["http://127.0.0.1:9/v1"])), *APPROVAL,
                switch("--wait"), flag("--workspace-root", junk_or([str(HOME / "ws2")])), *OUTPUT, *BUDGET],
               [junk_or(THREADS)]),
    # the fuzz's database is SQLite, which the queue refuses: these stay fast whatever they are given
    "worker": ([flag("--concurrency", junk_or(["1", "0", "-2"])), switch("--once")], []),
    "fork": ([flag("--at", junk_or(["0", "3", "999", "1f0"])), flag("--thread", junk_or(THREADS)),
              *MODEL_FLAGS, flag("--base-url", junk_or(["http://127.0.0.1:9/v1"])), *APPROVAL,
              *OUTPUT, *BUDGET], [junk_or(THREADS)]),
    "approve": ([switch("--reject"), flag("--comment", junk_or(["ok"])), flag("--edit", junk_or(PATHS)),
                 switch("--wait"), *OUTPUT], [junk_or(THREADS)]),
    "amend": ([*APPROVAL, switch("--wait"), *OUTPUT], [junk_or(THREADS), junk_or(["Also add OAuth login"])]),
    "watch": ([switch("--json-lines"), flag("--interval", junk_or(["0.1", "0", "nan"]))], [junk_or(THREADS)]),
    "runs": ([switch("--json")], []),
    "show": ([switch("--json")], [junk_or(THREADS)]),
    "history": ([switch("--json")], [junk_or(THREADS)]),
    "stats": ([switch("--json")], [junk_or(THREADS)]),
    "report": ([flag("-o", junk_or([str(HOME / "r.html"), str(TEXT_FILE / "r.html")])),
                flag("--output", junk_or([str(HOME / "r.html")]))], [junk_or(THREADS)]),
    "cache": ([], [junk_or(["clear"])]),
    "memory": ([flag("--team", junk_or(["software", "nope"])), flag("--team-file", junk_or([str(BAD_YAML)])),
                switch("--clear")], [junk_or(["backend", "nobody"])]),
    "patterns": ([switch("--json")], []),
    "graph": ([flag("--png", junk_or([str(HOME / "g.png")]))], [junk_or(list(PATTERNS))]),
    "recipes": ([], []),
    "teams": ([], []),
}


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """An argv: a subcommand (or junk), some of its flags and positionals, maybe `--db` (before or after the
    subcommand), maybe junk mixed in."""
    argv: list[str] = []
    command = draw(st.sampled_from(SUBCOMMANDS) | st.sampled_from(JUNK))
    argv.append(command)
    if command in ("run", "submit"):
        # a run that could start work gets a junk pattern, unless one fixed example below; so it stays fast
        argv += [draw(st.sampled_from(["nope", "hierarchicall", "", "-", "../software", *JUNK[:6]])),
                 draw(junk_or(TASKS))]
        argv += [a for f in draw(st.lists(st.sampled_from(RUN_FLAGS), max_size=4)) for a in draw(f)]
        argv += ["--latency", draw(junk_or(["0", "-1", "0.0"]))]
    elif command == "serve":  # always a junk pattern: it never starts serving
        argv.append(draw(st.sampled_from(["nope", "hierarchicall", "", "-", "../software", *JUNK[:6]])))
        argv += [a for f in draw(st.lists(st.sampled_from(SERVE_FLAGS), max_size=4)) for a in draw(f)]
    elif command == "teams" and draw(st.booleans()):
        argv += ["check", draw(junk_or(PATHS))]
    elif command in PER_COMMAND:
        flags, positionals = PER_COMMAND[command]
        argv += [draw(p) for p in positionals if draw(st.integers(0, 5)) > 0]
        argv += [a for f in draw(st.lists(st.sampled_from(flags), max_size=3)) for a in draw(f)] if flags else []
    if draw(st.integers(0, 3)) == 0:
        db = ["--db", draw(st.sampled_from(DBS))]
        argv = db + argv if draw(st.booleans()) else argv + db
    if draw(st.integers(0, 4)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(JUNK)))
    return argv


def test_the_fuzz_knows_every_subcommand_and_flag() -> None:
    """The argv strategy stays in step with the real parser: every subcommand, and every flag of `run` (`--db`,
    which every subcommand takes, is drawn for all of them)."""
    import argparse

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(SUBCOMMANDS)
    run_flags = {o for a in sub.choices["run"]._actions for o in a.option_strings} - {"-h", "--help", "--latency",
                                                                                       "--db"}
    assert run_flags == {FLAG_NAMES[id(f)] for f in RUN_FLAGS}
    serve_flags = {o for a in sub.choices["serve"]._actions for o in a.option_strings} - {"-h", "--help", "--db"}
    assert serve_flags == {FLAG_NAMES[id(f)] for f in SERVE_FLAGS}
    for name, (flags, _) in PER_COMMAND.items():
        real = {o for a in sub.choices[name]._actions for o in a.option_strings} - {"-h", "--help", "--db"}
        assert real == {FLAG_NAMES[id(f)] for f in flags}, name


@contextlib.contextmanager
def troupe_env() -> Iterator[None]:
    """TROUPE_DB and the XDG folders in the fuzz's own folder; no model keys, tracing or debug from outside."""
    saved = dict(os.environ)
    for k in list(os.environ):
        if k.startswith(("TROUPE_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_")):
            del os.environ[k]
    os.environ.update({"TROUPE_DB": str(DB), "XDG_DATA_HOME": str(HOME / "data"), "XDG_CONFIG_HOME": str(
        HOME / "config"), "XDG_CACHE_HOME": str(HOME / "cache"), "LANGSMITH_TRACING": "false"})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def call(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in this process, in the fuzz's folder (`graph --png JUNK` writes there): (exit code, stdout,
    stderr); an exception escaping main is a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with troupe_env(), contextlib.chdir(HOME), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, int | None):
                print(exc.code, file=err)
        except BaseException:
            err.write(traceback.format_exc())
            code = 1
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str]) -> None:
    code, _out, err = call(argv)
    if code != 0:
        assert "Traceback" not in err, f"troupe {argv!r} exited {code} with a traceback:\n{err[-3000:]}"


@pytest.fixture(scope="module", autouse=True)
def a_run_to_find() -> None:
    """One finished run (thread 'fuzz-run') for resume, show, approve and amend to find."""
    code, out, err = call(["run", "hierarchical", "Write a haiku", "--thread", "fuzz-run", "--latency", "0",
                           "--auto-approve"])
    assert code == 0, out + err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argvs())
def test_a_failing_command_prints_no_traceback(argv: list[str]) -> None:
    check(argv)


UNUSABLE_PLACES = [
    *(pytest.param(["--db", db, *cmd], id=f"db-{label}-{cmd[0]}")
      for label, db in BAD_DBS.items() for cmd in (["runs"], ["show", "fuzz-run"],
                                                  ["run", "hierarchical", "Write a haiku", "--latency", "0"])),
    *(pytest.param(["graph", "hierarchical", "--png", str(path)], id=f"png-{i}")
      for i, path in enumerate([HOME / "no-such-folder" / "g.png", TEXT_FILE / "g.png"])),
]


@pytest.mark.parametrize("argv", UNUSABLE_PLACES)
def test_a_database_or_file_troupe_cannot_use_is_one_line(argv: list[str]) -> None:
    code, _out, err = call(argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("troupe: error: cannot "), err


@pytest.mark.parametrize("argv", [
    ["run", "sequential", "x", "--latency", "0", "--await-approval", "--thread", "fuzz-seq"],
    ["run", "content", "Write a haiku", "--latency", "0", "--seed", "3", "--auto-approve"],
    ["run", "hierarchical", "Write a haiku", "--latency", "0", "--fail", "worker=raise:1", "--auto-approve"],
    ["run", "hierarchical", "Write a haiku", "--latency", "0", "--thread", "fuzz-run"],  # the thread exists
    ["resume", "fuzz-run"],
    ["approve", "fuzz-run"],
    ["amend", "fuzz-run", "Also add OAuth login"],
    ["show", "fuzz-run", "--json"],
    ["teams", "check", str(BAD_YAML)],
])
def test_fixed_commands_print_no_traceback_when_they_fail(argv: list[str]) -> None:
    check(argv)
