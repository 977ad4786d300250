"""The tools agents consult and grow the shared context store with (`tools.context_store`).

Built once; each call finds its run, team, agent and subtask in the config it is invoked with
(`agent_config`), and the store through LangGraph's `get_store()`. A query is journaled as a QUERY
message, a record as a CHECKPOINT, so the audit trail shows who knew what, when.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.config import get_store, get_stream_writer
from langgraph.store.memory import InMemoryStore
from pydantic import ValidationError

from state.protocol import CheckpointMsg, Query
from state.records import ContractRecord, MemoryNote, parse_record
from state.untrusted import fence, neutralize
from tools.context_store import get_record, is_semantic, put_record, remember, search
from tools.embeddings import Store, search_mode
from tools.journal import Journal
from tools.workspace import WRITER_KEY, workspace_config

TEAM_KEY, AGENT_KEY, TASK_KEY = "troupe_team", "troupe_agent", WRITER_KEY
"""Config keys (under 'configurable'): the team, the agent and the subtask a tool call is made for."""


def agent_config(root: Any, config: RunnableConfig | None, *, team: str, agent: str, task: str) -> RunnableConfig:
    """`config` for an agent's tool calls: its workspace, team, name and subtask (the subtask is the file writer)."""
    base = workspace_config(root, config)
    extra = {TEAM_KEY: team, AGENT_KEY: agent, TASK_KEY: task}
    return {**base, "configurable": {**base.get("configurable", {}), **extra}}


def _who(config: RunnableConfig) -> tuple[str, str, str, str]:
    conf = config.get("configurable") or {}
    thread, team, agent, task = (conf.get(k) for k in ("thread_id", TEAM_KEY, AGENT_KEY, TASK_KEY))
    if not (thread and team and agent and task):
        raise ToolException("no run to consult: this tool works inside a troupe run only")
    return str(thread), str(team), str(agent), str(task)


async def query_context(question: str, config: RunnableConfig, kind: str = "") -> str:
    """Ask the team's shared context store: decisions, interface contracts, constraints and conflicts recorded
    by the team so far (your brief's "context" already holds those that touch your subtask).

    Args:
        question: What you want to know, in plain words (e.g. "which database do we use?").
        kind: Only records of this kind: decision, contract, constraint or conflict (empty: any).
    """
    thread, team, agent, task = _who(config)
    store = get_store()
    found = await search(store, thread, team, question, kind=kind or None)
    await Journal(store, thread, get_stream_writer()).post(
        Query(sender=agent, recipient="context store", correlation_id=task, question=neutralize(question)[:500]))
    how = "by meaning" if is_semantic(store) else f"by words: {search_mode(_kind(store))}"
    if not found:
        return f"nothing recorded matches ({how})"
    listed = "\n".join(f"- {r.kind} {r.title!r} by {r.author}: {_said(r)}" for r in found)
    return fence(listed, f"the context store, searched {how}")


async def record_context(kind: Literal["decision", "contract", "constraint"], title: str, text: str,
                         touches: list[str], config: RunnableConfig, fields: list[str] | None = None,
                         reason: str = "") -> tuple[str, dict[str, Any]]:
    """Record something the rest of the team must know: an architecture decision (with its reason), an interface
    contract others build on (with the exact field names), or a constraint you discovered (e.g. "the host has no
    WebSockets: use SSE"). It reaches the later agents whose work it touches. Record each thing once.

    Args:
        kind: decision, contract or constraint.
        title: A short name, e.g. "auth API" or "no WebSockets".
        text: What it says, in one or two sentences.
        touches: Who it concerns: capabilities (e.g. "frontend"), role names or subtask ids; "*" for everyone.
        fields: For a contract: the names its shape consists of, exactly as spelled (e.g. ["token", "user_id"]).
        reason: For a decision: why it was taken.
    """
    thread, team, agent, task = _who(config)
    store = get_store()
    data: dict[str, Any] = {"kind": kind, "title": neutralize(title), "text": neutralize(text), "touches": touches,
                            "author": agent, "task_id": task}
    if kind == "contract":
        data["fields"] = [neutralize(f) for f in fields or []]
    elif kind == "decision":
        data["reason"] = neutralize(reason)
    try:
        record = parse_record(data)
    except ValidationError as exc:
        raise ToolException(f"not recorded: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    old = await get_record(store, thread, team, record.key)
    if isinstance(record, ContractRecord) and isinstance(old, ContractRecord):
        if old.fields == record.fields:
            return f"already recorded: contract {old.title!r} v{old.version}", {"record": old.key}
        if old.author != agent:  # only its author, or the supervisor settling a conflict, changes a contract
            raise ToolException(f"not recorded: contract {old.title!r} v{old.version} {{{', '.join(old.fields)}}} "
                                f"is {old.author}'s; build on it as it is (work that differs goes to the supervisor)")
        record = record.model_copy(update={"version": old.version + 1, "history": [
            *old.history, f"v{old.version} {{{', '.join(old.fields)}}} by {old.author}; changed by {agent} in {task}"]})
    await put_record(store, thread, team, record)
    await Journal(store, thread, get_stream_writer()).post(CheckpointMsg(
        sender=agent, recipient="team", correlation_id=task, label=f"context: {record.kind} recorded",
        note=f"{record.title}: {_said(record)} (touches {', '.join(record.touches)})"))
    return f"recorded {record.kind} {record.title!r}; it reaches the work it touches", {"record": record.key}


async def remember_convention(note: str, config: RunnableConfig) -> str:
    """Remember a convention of this project for your later runs (you keep it across runs): e.g. how errors are
    shaped or how files are named. Remember each thing once, in one sentence.

    Args:
        note: The convention, in one sentence.
    """
    thread, team, agent, _ = _who(config)
    await remember(get_store(), team, agent, MemoryNote(note=neutralize(note)[:500], learned_in=thread))
    return "remembered for your later runs"


def _kind(store: Any) -> Store:
    if isinstance(store, InMemoryStore):
        return "memory"
    return "postgres" if type(store).__module__.startswith("langgraph.store.postgres") else "sqlite"


def _said(record: Any) -> str:
    text: str = record.text
    if isinstance(record, ContractRecord):
        text += f" {{{', '.join(record.fields)}}} (v{record.version})"
    return text + (f" Because: {record.reason}" if getattr(record, "reason", "") else "")


def _tool(fn: Any, **options: Any) -> BaseTool:
    return StructuredTool.from_function(coroutine=fn, parse_docstring=True, handle_tool_error=True,
                                        handle_validation_error=True, **options)


CONTEXT_TOOLS: tuple[BaseTool, ...] = (_tool(query_context),
                                       _tool(record_context, response_format="content_and_artifact"))
"""Every worker of a hierarchical team gets these."""

MEMORY_TOOL: BaseTool = _tool(remember_convention)
"""A persistent specialist (`memory: persistent`) also gets this one."""

CONTEXT_TOOL_NAMES: frozenset[str] = frozenset({*(t.name for t in CONTEXT_TOOLS), MEMORY_TOOL.name})
