"""Side effects that happen at most once per task attempt, even when the process dies mid-step.

LangGraph writes a checkpoint after a step, so a run killed between a tool's effect (a payment, an
e-mail, a POST) and that checkpoint re-runs the whole node when it resumes, effect included
(at-least-once; langgraph #8039). `effect(pay)` journals each call of `pay` in the run's store (namespace
`("runs", thread_id, "effects")`, beside the run's other records; troupe's store commits every write at once)
and consults the journal before the effect:

- The idempotency key of a call is a hash of the LangGraph task (its id and checkpoint namespace), the
  tool's name and its arguments as canonical JSON. A task id stays the same when LangGraph replays a step
  after a crash or retries it (`RetryPolicy`), and is new for a new attempt (the next review round), so
  the same call with the same arguments in one task attempt has one key.
- No record: it is recorded as started, run, then recorded as done with its result (as text).
- Done: not run again; the recorded result is returned.
- Started but never done (the process died during or just after the effect, the outcome is unknown): a
  function that declares a parameter `idempotency_key` is called again with the same key, so the system
  it talks to can drop the repeat (give it that key as the request's idempotency key: this is what makes
  the unknown window safe). Any other effect is not repeated: the call raises a `ToolException` saying
  so (the model gets it as a tool error), and the record says "unknown".
- An effect that raised an `Exception` reported that it did not happen: its record is removed, so the
  model may call it again. A `BaseException` (cancelled, killed) leaves it started: the outcome is unknown.

`idempotency_key` is always passed to a function that declares it (outside a run: a new key per call)
and is hidden from the model. Outside a LangGraph run (no store or task in the config) an effect simply
runs. Limits: a model that, replayed, asks for different arguments makes a different effect (a real
model rarely answers the same twice); identical calls within one task attempt happen once.

The workspace's `write_file` is not journaled: it writes a temporary file and renames it over the target,
so repeating it leaves the same file.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from langgraph.runtime import get_runtime
from langgraph.store.base import BaseStore, Item
from pydantic import BaseModel, Field, create_model

from tools.journal import namespace, read_all

IDEMPOTENCY_KEY = "idempotency_key"
"""The parameter through which an effect receives its call's key (hidden from the model)."""
NOT_ARGUMENTS = frozenset({IDEMPOTENCY_KEY, "config", "run_manager", "callbacks"})
"""Parameters LangChain or `effect` fill in: not part of what the model asked for, so not part of the key."""
F = TypeVar("F", bound=Callable[..., Any])

Status = Literal["started", "done", "unknown"]


class EffectRecord(BaseModel):
    """One journaled call: what was asked, and how far it got."""

    key: str
    tool: str
    args: dict[str, Any]
    status: Status
    result: str = ""
    time: float = Field(default_factory=time.time)


@dataclass(frozen=True)
class _Entry:
    """Where one call's record lives."""

    store: BaseStore
    ns: tuple[str, ...]
    key: str
    tool: str
    args: dict[str, Any]

    def record(self, status: Status, result: str = "") -> dict[str, Any]:
        return EffectRecord(key=self.key, tool=self.tool, args=self.args, status=status, result=result).model_dump()

    def after(self, found: Item | None, takes_key: bool) -> str | None:
        """The recorded result of a call that must not run again, or None to run it; raises if its outcome is
        unknown and it cannot be repeated safely."""
        if found is None:
            return None
        record = EffectRecord.model_validate(found.value)
        if record.status == "done":
            return record.result
        if record.status == "started" and takes_key:
            return None
        raise ToolException(unknown(record.tool))


def unknown(tool: str) -> str:
    """The tool error a model gets for an effect whose outcome a crash left unknown."""
    return (f"{tool} was started with these arguments before a crash and its outcome is unknown, so it was not "
            "repeated; check whether it happened before trying again")


def idempotency_key(task_id: str, checkpoint_ns: str, tool: str, args: dict[str, Any]) -> str:
    """The key of one call: a hash of the task attempt, the tool and its arguments (canonical JSON)."""
    text = json.dumps([task_id, checkpoint_ns, tool, args], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(tool: str, args: dict[str, Any]) -> _Entry | None:
    """The call's journal entry, or None outside a LangGraph run with a store."""
    try:
        runtime = get_runtime()
    except RuntimeError:  # not inside a runnable at all
        return None
    info = runtime.execution_info if runtime is not None else None
    if runtime is None or runtime.store is None or info is None or not info.thread_id:
        return None
    canonical = json.loads(json.dumps(args, default=str))
    key = idempotency_key(info.task_id, info.checkpoint_ns, tool, canonical)
    return _Entry(runtime.store, namespace(info.thread_id, "effects"), key, tool, canonical)


def _text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, default=str, ensure_ascii=False)


def _journaled(tool: str, args: dict[str, Any], takes_key: bool, run: Callable[[str], Any]) -> Any:
    """`_ajournaled` with the store's blocking methods (LangChain runs a sync tool in a worker thread)."""
    entry = _entry(tool, args)
    if entry is None:
        return run(uuid.uuid4().hex)
    store, found = entry.store, entry.store.get(entry.ns, entry.key)
    try:
        recorded = entry.after(found, takes_key)
    except ToolException as exc:
        store.put(entry.ns, entry.key, entry.record("unknown", str(exc)), index=False)
        raise
    if recorded is not None:
        return recorded
    if found is None:
        store.put(entry.ns, entry.key, entry.record("started"), index=False)
    try:
        result = run(entry.key)
    except Exception:
        store.delete(entry.ns, entry.key)
        raise
    store.put(entry.ns, entry.key, entry.record("done", _text(result)), index=False)
    return result


async def _ajournaled(tool: str, args: dict[str, Any], takes_key: bool, run: Callable[[str], Awaitable[Any]]) -> Any:
    """Run one call of an effect as its journal record says (see the module's notes)."""
    entry = _entry(tool, args)
    if entry is None:
        return await run(uuid.uuid4().hex)
    store, found = entry.store, await entry.store.aget(entry.ns, entry.key)
    try:
        recorded = entry.after(found, takes_key)
    except ToolException as exc:
        await store.aput(entry.ns, entry.key, entry.record("unknown", str(exc)), index=False)
        raise
    if recorded is not None:
        return recorded
    if found is None:
        await store.aput(entry.ns, entry.key, entry.record("started"), index=False)
    try:
        result = await run(entry.key)
    except Exception:
        await store.adelete(entry.ns, entry.key)
        raise
    await store.aput(entry.ns, entry.key, entry.record("done", _text(result)), index=False)
    return result


@overload
def effect(target: BaseTool) -> BaseTool: ...
@overload
def effect(target: F) -> F: ...
def effect(target: Any) -> Any:
    """Mark a tool as a side effect: its calls are journaled and happen at most once per task attempt.

    Takes a plain function (sync or async; it keeps its name, docstring and argument schema, so `tools=`
    makes the same tool of it) or a LangChain tool, and returns the same kind. Use it as a decorator::

        @effect
        def pay(amount: int, idempotency_key: str) -> str:
            \"\"\"Pay an amount.\"\"\"
            return bank.pay(amount, idempotency_key=idempotency_key)
    """
    if isinstance(target, BaseTool):
        return _EffectTool(name=target.name, description=target.description, tool=target,
                           args_schema=_without_key(target.args_schema), return_direct=target.return_direct,
                           handle_tool_error=target.handle_tool_error,
                           handle_validation_error=target.handle_validation_error)
    if not callable(target):
        raise TypeError(f"effect() takes a function or a LangChain tool, not {target!r:.60}")
    signature = inspect.signature(target)
    takes_key = IDEMPOTENCY_KEY in signature.parameters
    shown = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != IDEMPOTENCY_KEY])
    name = target.__name__

    def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[str], Any]]:
        bound = shown.bind(*args, **kwargs)
        bound.apply_defaults()
        asked = {k: v for k, v in bound.arguments.items() if k not in NOT_ARGUMENTS}
        return asked, lambda key: target(*bound.args, **bound.kwargs, **({IDEMPOTENCY_KEY: key} if takes_key else {}))

    if inspect.iscoroutinefunction(target):
        @functools.wraps(target)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            asked, run = call(args, kwargs)
            return await _ajournaled(name, asked, takes_key, run)
    else:
        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            asked, run = call(args, kwargs)
            return _journaled(name, asked, takes_key, run)

    wrapper.__signature__ = shown  # type: ignore[attr-defined]
    wrapper.__annotations__ = {k: v for k, v in target.__annotations__.items() if k != IDEMPOTENCY_KEY}
    return wrapper


class _EffectTool(BaseTool):
    """A LangChain tool whose calls are journaled (see `effect`)."""

    tool: BaseTool

    def _takes_key(self) -> bool:
        return IDEMPOTENCY_KEY in self.tool.args

    def _inputs(self, kwargs: dict[str, Any], key: str) -> dict[str, Any]:
        return kwargs | ({IDEMPOTENCY_KEY: key} if self._takes_key() else {})

    def _inner(self) -> BaseTool:
        """The wrapped tool raising its errors, so a failed effect is not recorded as done."""
        return self.tool.model_copy(update={"handle_tool_error": False, "handle_validation_error": False})

    def _run(self, config: RunnableConfig, **kwargs: Any) -> Any:
        inner = self._inner()
        return _journaled(self.name, kwargs, self._takes_key(),
                          lambda key: inner.invoke(self._inputs(kwargs, key), config))

    async def _arun(self, config: RunnableConfig, **kwargs: Any) -> Any:
        inner = self._inner()
        return await _ajournaled(self.name, kwargs, self._takes_key(),
                                 lambda key: inner.ainvoke(self._inputs(kwargs, key), config))


def _without_key(schema: Any) -> Any:
    """A tool's argument schema without `idempotency_key` (a pydantic model or a JSON schema)."""
    if isinstance(schema, dict):
        props = {k: v for k, v in schema.get("properties", {}).items() if k != IDEMPOTENCY_KEY}
        required = [k for k in schema.get("required", []) if k != IDEMPOTENCY_KEY]
        return {**schema, "properties": props, "required": required}
    if isinstance(schema, type) and issubclass(schema, BaseModel) and IDEMPOTENCY_KEY in schema.model_fields:
        fields: dict[str, Any] = {k: (f.annotation, f) for k, f in schema.model_fields.items() if k != IDEMPOTENCY_KEY}
        return create_model(schema.__name__, __doc__=schema.__doc__, **fields)
    return schema


async def read_effects(store: BaseStore, thread_id: str) -> list[EffectRecord]:
    """Every journaled effect of a run, oldest first."""
    values = await read_all(store, namespace(thread_id, "effects"))
    return sorted((EffectRecord.model_validate(v) for v in values), key=lambda r: r.time)
