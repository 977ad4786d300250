"""Shared fixtures: a temporary troupe home, the CLI in a subprocess, and an async Runner."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.memory import InMemoryStore

from graphs.hierarchical import build
from graphs.runtime import Runner, serializer
from nodes.offline_model import OfflineChatModel
from state.context import RunContext

TODO_TASK = "Build a REST API for todo management"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "troupe.sqlite"


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    """Offline model, no latency, workspaces under the test's folder."""
    return RunContext(workspace_root=str(tmp_path / "workspaces"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's `postgres` database: 127.0.0.1:5432 (or $TROUPE_TEST_POSTGRES), else one
    started for the session from this machine's PostgreSQL binaries (`postgres_server.server`); else the test skips
    and says why."""
    from postgres_server import server

    with server() as (url, why):
        if url is None:
            pytest.skip(why)
        yield url


@pytest.fixture
def postgres(postgres_server: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"troupe_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def cli_env(db: Path | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_"))}
    return {**env, "TROUPE_DB": str(db), "LANGSMITH_TRACING": "false"}


@pytest.fixture
def troupe(db: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the `troupe` CLI in a new process against the test's database."""

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "graphs.cli", *args], capture_output=True, text=True,
                              env=cli_env(db), stdin=subprocess.DEVNULL, timeout=timeout)

    return run


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every prompt the offline model answers, as (agent, text of all its messages)."""
    seen: list[tuple[str, str]] = []
    answer = OfflineChatModel._answer

    def recording(self: OfflineChatModel, messages: list[Any], tools: list[dict[str, Any]], mode: str | None) -> Any:
        seen.append((self.name or self.role, "\n".join(str(m.content) for m in messages)))
        return answer(self, messages, tools, mode)

    monkeypatch.setattr(OfflineChatModel, "_answer", recording)
    return seen


def in_memory(**build_options: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The hierarchical graph with an in-memory checkpointer and store, for tests that drive LangGraph directly."""
    return build(**build_options).compile(checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())


def with_runner(db: Path, fn: Callable[[Runner], object]) -> object:
    """Open a Runner on `db`, await `fn(runner)`, close it."""

    async def go() -> object:
        async with Runner.open(db) as runner:
            return await fn(runner)  # type: ignore[misc]

    return asyncio.run(go())
