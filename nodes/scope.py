"""What a node can reach of its run: the journal, the workspace folder, its attempt number.

Nodes are async: file system work here and in the nodes runs in a thread (`asyncio.to_thread`),
so the event loop never blocks (LangGraph's dev server refuses nodes that do).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.config import get_config
from langgraph.runtime import Runtime

from state.context import RunContext
from state.protocol import CheckpointMsg
from state.records import ProgressRecord
from tools import context_store
from tools.context_store import record_progress
from tools.journal import Journal, Write
from tools.resources import hold
from tools.workspace import workspace_config, write_file

UNSAVED = "unsaved"
"""Thread name used when a graph runs without a checkpointer (no thread id)."""


def settings(runtime: Runtime[RunContext]) -> RunContext:
    """The run's settings: a graph invoked without `context=` runs on the defaults (the offline model, workspaces
    under ./workspaces), as the CLI does."""
    return runtime.context if runtime.context is not None else RunContext()


def thread_of(runtime: Runtime[RunContext]) -> str:
    info = runtime.execution_info
    return (info.thread_id if info else None) or UNSAVED


def journal(runtime: Runtime[RunContext]) -> Journal:
    return Journal(runtime.store, thread_of(runtime), runtime.stream_writer)


async def workspace(runtime: Runtime[RunContext]) -> Path:
    """The run's workspace folder, created off the event loop (async nodes must not block); once per process."""
    root = Path(settings(runtime).workspace_root) / thread_of(runtime)
    if not root.is_absolute():  # made absolute off the loop: that reads the working folder (the dev server refuses it)
        root = await asyncio.to_thread(root.absolute)
    if root not in _made:  # only the first calls of a run (those before the folder exists) ask
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        _made.add(root)
    return root


_made: set[Path] = set()
"""Workspace folders this process has made (a worker of a thousand-way fan-out need not ask again)."""


async def read_text(path: Path) -> str:
    """A workspace file's text, read off the event loop; unreadable or missing: empty."""
    try:
        return await asyncio.to_thread(path.read_text, encoding="utf-8", errors="replace")
    except OSError:
        return ""


async def write_text(runtime: Runtime[RunContext], path: str, text: str) -> None:
    """Write the run's workspace file `path` (relative to the workspace), off the event loop, through the one door
    workers use too: confined to the workspace, and kept in the run's store (the folder is a view of it)."""
    config = workspace_config(await workspace(runtime), get_config())
    await asyncio.to_thread(write_file, path, text, config)


def node_of() -> str | None:
    """The graph node this code runs in (None outside a graph)."""
    try:
        return get_config().get("metadata", {}).get("langgraph_node")
    except RuntimeError:  # not inside a runnable
        return None


def attempt(runtime: Runtime[RunContext]) -> int:
    info = runtime.execution_info
    return info.node_attempt if info else 1


async def progress(runtime: Runtime[RunContext], task_id: str, status: str, assignee: str, round: int) -> None:
    """Record a subtask's progress in the shared context store."""
    await record_progress(runtime.store, thread_of(runtime), _progress(task_id, status, assignee, round))


def progress_write(runtime: Runtime[RunContext], task_id: str, status: str, assignee: str, round: int) -> Write:
    """The same record as a store write, to make with a journal post (`Journal.post(..., also=[...])`)."""
    return context_store.progress_write(thread_of(runtime), _progress(task_id, status, assignee, round))


def _progress(task_id: str, status: str, assignee: str, round: int) -> ProgressRecord:
    return ProgressRecord(task_id=task_id, status=status, assignee=assignee, round=round)


@asynccontextmanager
async def holding(runtime: Runtime[RunContext], names: list[str], *, task_id: str, agent: str, lead: str
                  ) -> AsyncIterator[None]:
    """Hold exclusive resources (`tools.resources`) for the block; a wait is journaled, saying who holds it."""
    if not names:
        yield
        return
    holder = f"{task_id} ({agent})"

    async def waiting(resource: str, held_by: str | None) -> None:
        note = f"{holder} waits for {resource!r}" + (f", held by {held_by}" if held_by else "")
        await journal(runtime).post(CheckpointMsg(sender=agent, recipient=lead, correlation_id=task_id,
                                                  label="resource: waiting", note=note))

    folder = Path(settings(runtime).workspace_root) / ".locks"
    async with hold(names, holder=holder, folder=folder, timeout=settings(runtime).resource_timeout, on_wait=waiting):
        yield
