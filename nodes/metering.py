"""Every model an agent gets is metered, cached and labelled here, whichever pattern asked for it.

`instrument` gives the model a copy with: a `Recorder` callback that records each call's tokens, dollars, time and
outcome (`tools.usage`); the model cache (`tools.model_cache`) unless the run turned it off; and a run name, tags
and metadata, so a LangSmith trace shows each agent by name, tagged with its pattern, role and task.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatGeneration, LLMResult
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime

from nodes import scope
from state.budget import Budget, Call
from state.context import RunContext
from tools.model_cache import CACHED, StoreCache
from tools.usage import Meter


class Recorder(AsyncCallbackHandler):
    """Records each call of one agent's model in the run's meter (and so its store and stream)."""

    raise_error = True  # a call that cannot be recorded fails loudly, it is not silently free
    run_inline = True

    def __init__(self, meter: Meter, budget: Budget, runtime: Runtime[RunContext], call: Call) -> None:
        self.meter, self.budget, self.writer, self.call = meter, budget, runtime.stream_writer, call
        self._started: dict[UUID, float] = {}

    async def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID,
                                  **kwargs: Any) -> None:
        self._started[run_id] = time.time()

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        generation = response.generations[0][0] if response.generations and response.generations[0] else None
        message = generation.message if isinstance(generation, ChatGeneration) else None
        usage = (getattr(message, "usage_metadata", None) or {}) if message else {}
        meta = message.response_metadata if message else {}
        model = self.call.model if self.call.model != "?" else str(meta.get("model_name") or "?")
        price = self.budget.price(model)
        tokens_in, tokens_out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        await self.meter.record(self.call.model_copy(update={
            "model": model, "input_tokens": tokens_in, "output_tokens": tokens_out,
            "usd": price.cost(tokens_in, tokens_out) if price else None,
            "cached": bool((generation.generation_info or {}).get(CACHED)) if generation else False,
            "started": self._started.pop(run_id, time.time()), "ended": time.time()}), self.writer)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if isinstance(error, GraphBubbleUp):
            return
        await self.meter.record(self.call.model_copy(update={
            "ok": False, "error": f"{type(error).__name__}: {error}"[:300], "usd": 0.0,
            "started": self._started.pop(run_id, time.time()), "ended": time.time()}), self.writer)


def instrument(chat: BaseChatModel, runtime: Runtime[RunContext], meter: Meter, budget: Budget, *, call: Call,
               spec: str, pattern: str | None) -> BaseChatModel:
    """A copy of `chat` that records its calls as `call` (agent, model, role, task), answers from the model cache
    (keyed by `spec`) unless the run says no, and is named and tagged for tracing."""
    tags = [f"pattern:{pattern}"] if pattern else []
    tags += [f"agent:{call.agent}", f"role:{call.model_role}"] + ([f"task:{call.task}"] if call.task else [])
    metadata = {"thread_id": scope.thread_of(runtime), "troupe_agent": call.agent, "troupe_task": call.task,
                "troupe_pattern": pattern}
    update: dict[str, Any] = {
        "callbacks": [*(chat.callbacks if isinstance(chat.callbacks, list) else []),
                      Recorder(meter, budget, runtime, call)],
        "tags": [*(chat.tags or []), *tags],
        "metadata": {**(chat.metadata or {}), **metadata},
        "name": call.agent,
    }
    if scope.settings(runtime).cache and runtime.store is not None and chat.cache is not False:
        update["cache"] = StoreCache(runtime.store, spec)
    return chat.model_copy(update=update)
