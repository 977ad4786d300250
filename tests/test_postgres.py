"""troupe on a real PostgreSQL server (127.0.0.1): a run killed in one process is carried on by another, on another
workspace root, with all its files; leases, refusals and the runner's open door to any checkpointer and store."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import TODO_TASK, cli_env
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from graphs.lease import Leases
from graphs.runtime import Runner, serializer
from state.context import RunContext
from state.team import Decision

pytestmark = pytest.mark.slow


def cli(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphs.cli", *args], capture_output=True, text=True,
                          env=cli_env(url), stdin=subprocess.DEVNULL, timeout=timeout)


def stored_files(url: str, thread: str) -> set[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('store')").fetchone() == (None,):  # not set up yet
            return set()
        return {key for (key,) in conn.execute("SELECT key FROM store WHERE prefix = %s", (f"runs.{thread}.files",))}


def test_a_run_killed_on_postgres_is_finished_by_another_process_on_another_workspace_root(
        postgres: str, tmp_path: Path) -> None:
    first, second = tmp_path / "host-a", tmp_path / "host-b"
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--thread", "pg-kill",
         "--latency", "0.25", "--auto-approve", "--workspace-root", str(first)],
        env=cli_env(postgres), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not {"t2_persistence.py", "t3_backend.py"} & stored_files(postgres, "pg-kill"):  # in the parallel wave
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached its parallel wave"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    shutil.rmtree(first)  # the first host is gone, with its folder

    before = json.loads(cli(postgres, "show", "pg-kill", "--json").stdout)
    assert before["status"] == "stopped"
    finished = {m["correlation_id"] for m in before["messages"] if m["kind"] == "REVIEW_RESULT" and m["approved"]}
    assert "T1" in finished

    resumed = cli(postgres, "resume", "pg-kill", "--workspace-root", str(second))
    assert resumed.returncode == 0, resumed.stderr
    assert "status: completed" in resumed.stdout

    after = json.loads(cli(postgres, "show", "pg-kill", "--json").stdout)
    assert after["status"] == "completed"
    assert all(r["status"] == "done" for r in after["board"].values()), after["board"]
    started = Counter(m["correlation_id"] for m in after["messages"]
                      if m["kind"] == "PROGRESS" and m["note"].startswith("started round 1"))
    assert all(started[t] == 1 for t in finished), f"finished work was redone: {started}"
    artifacts = Counter((m["correlation_id"], m["round"]) for m in after["messages"] if m["kind"] == "ARTIFACT")
    assert set(artifacts.values()) == {1}, f"a worker task completed more than once: {artifacts}"
    workspace = second / "pg-kill"
    for record in after["board"].values():  # the work done before the kill is here too, on the new root
        assert (workspace / record["artifact"]).read_text() != ""
    assert (workspace / "T1-design.md").is_file() and (workspace / "SUMMARY.md").is_file()
    assert not first.exists()
    assert "rejected" not in resumed.stdout and "cannot read" not in resumed.stdout


def test_processes_opening_a_new_postgres_database_at_once_all_succeed(postgres: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "graphs.cli", "runs", "--json"], env=cli_env(postgres),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outs]
    assert all(json.loads(out) == [] for out, _ in outs)


def test_leases_on_postgres_give_a_run_one_owner(postgres: str) -> None:
    leases = Leases(postgres)
    leases.setup()
    assert leases.try_take("run-1", "token-a") is None
    owner = leases.try_take("run-1", "token-b")
    assert owner is not None and owner.pid == os.getpid()
    assert leases.owner("run-1") == owner
    leases.give_back("run-1", "token-a")
    assert leases.owner("run-1") is None
    assert leases.try_take("run-1", "token-b") is None


def test_another_applications_postgres_database_is_refused_and_left_as_it_was(postgres: str) -> None:
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int)")
    done = cli(postgres, "runs")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "another application's database (tables: customers)" in done.stderr
    assert "Traceback" not in done.stderr
    with psycopg.connect(postgres, autocommit=True) as conn:
        tables = {t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"customers"}


def test_an_unreachable_postgres_is_one_line_that_says_so(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    done = cli("postgresql://postgres:secret@127.0.0.1:1/troupe", "runs")
    assert done.returncode == 2
    assert done.stderr.startswith("troupe: error: cannot use postgresql://postgres@127.0.0.1:1/troupe as troupe's")
    assert done.stderr.count("\n") == 1 and "secret" not in done.stderr


def test_the_runner_takes_any_checkpointer_and_store(tmp_path: Path) -> None:
    async def go() -> None:
        store = InMemoryStore()
        runner = Runner(InMemorySaver(serde=serializer()), store, workspaces=tmp_path / "ws")
        outcome = await runner.start("sequential", "Write a short guide to tide pools", RunContext(),
                                     thread_id="any-saver")
        if outcome.status == "awaiting_approval":
            outcome = await runner.approve("any-saver", Decision(approved=True, by="test"))
        assert outcome.status == "completed"
        assert (await runner.info("any-saver")).context.workspace_root == str((tmp_path / "ws").resolve())
        kept = {item.key for item in await store.asearch(("runs", "any-saver", "files"), limit=100)}
        assert kept and all((tmp_path / "ws" / "any-saver" / key).is_file() for key in kept)

    asyncio.run(go())


def test_the_context_store_on_postgres_searches_by_words_and_says_why(postgres: str) -> None:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from graphs.postgres import opened
    from state.records import DecisionRecord
    from tools.context_store import put_record
    from tools.context_tools import CONTEXT_TOOLS, agent_config

    class S(TypedDict, total=False):
        answer: str

    async def ask(state: S, config: RunnableConfig) -> S:
        conf = agent_config("/nonexistent", config, team="software", agent="backend", task="T3")
        call = {"name": "query_context", "args": {"question": "Which database do we use?"}, "id": "c1",
                "type": "tool_call"}
        return {"answer": str((await CONTEXT_TOOLS[0].ainvoke(call, conf)).content)}

    async def go() -> str:
        async with opened(postgres) as (_, store):
            await put_record(store, "q", "software", DecisionRecord(
                title="database", text="We use PostgreSQL for every service.", reason="transactions", touches=["*"]))
            graph = StateGraph(S)
            graph.add_node("ask", ask)
            graph.add_edge(START, "ask")
            graph.add_edge("ask", END)
            return str((await graph.compile(store=store).ainvoke({}, {"configurable": {"thread_id": "q"}}))["answer"])

    from tools.embeddings import model_available

    answer = asyncio.run(go())
    assert "We use PostgreSQL for every service." in answer
    why = ("troupe opens its PostgreSQL store without a vector index (pgvector)" if model_available()  # CI: installed
           else "install troupe[embeddings] for semantic search")
    assert f"by words: text ({why})" in answer, answer
