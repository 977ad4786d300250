"""The model cache: an identical model call (same model, settings, tools and messages) is answered from the store.

A LangChain `BaseCache` over the run's LangGraph store, so it lives where the run's other records are (the SQLite
file, or PostgreSQL) and hits across runs and processes. The key is a hash of the model's spec (which model, where)
and LangChain's own description of the call (the model's parameters, the tools offered, the messages), so a changed
model, setting or prompt misses. An answer read from the cache is marked (`CACHED`), so usage counts it as free.

Why not LangGraph's node cache (`CachePolicy`): troupe's agent nodes have effects beyond their state update (the
artifact they write, the messages they journal), which a node-cache hit would skip; caching the model call keeps
every effect and still makes a re-run call no model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration
from langgraph.store.base import BaseStore

log = logging.getLogger(__name__)

NAMESPACE = ("cache", "models")
CACHED = "troupe_cached"
"""The generation-info key that marks an answer read from the cache (seen by callbacks, not by the conversation)."""


class StoreCache(BaseCache):
    """Model answers in a LangGraph store, keyed by the model's spec and the call."""

    def __init__(self, store: BaseStore, spec: str) -> None:
        self.store, self.spec = store, spec

    def _key(self, prompt: str, llm_string: str) -> str:
        return hashlib.sha256("\x1f".join((self.spec, llm_string, _what_was_said(prompt))).encode()).hexdigest()

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        item = await self.store.aget(NAMESPACE, self._key(prompt, llm_string))
        return _marked(item.value["generations"]) if item else None

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        try:
            await self.store.aput(NAMESPACE, self._key(prompt, llm_string), _value(return_val), index=False)
        except Exception as exc:  # an answer that cannot be cached is still the answer: the call must not fail
            log.warning("the model cache could not keep an answer: %s: %s", type(exc).__name__, exc)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        item = self.store.get(NAMESPACE, self._key(prompt, llm_string))
        return _marked(item.value["generations"]) if item else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.store.put(NAMESPACE, self._key(prompt, llm_string), _value(return_val), index=False)

    def clear(self, **kwargs: Any) -> None:
        while items := self.store.search(NAMESPACE, limit=500):
            for item in items:
                self.store.delete(NAMESPACE, item.key)


def _what_was_said(prompt: str) -> str:
    """The messages of a call without what varies between identical conversations: each message's id, usage and
    response metadata (an answer read from the cache comes back with other metadata than the model's own)."""
    try:
        messages = json.loads(prompt)
    except ValueError:
        return prompt
    for m in messages if isinstance(messages, list) else []:
        if isinstance(m, dict) and isinstance(m.get("kwargs"), dict):
            for field in ("id", "usage_metadata", "response_metadata"):
                m["kwargs"].pop(field, None)
    return json.dumps(messages, sort_keys=True)


def _value(generations: Sequence[Any]) -> dict[str, Any]:
    return {"generations": [{"message": message_to_dict(g.message), "info": g.generation_info}
                            for g in generations if isinstance(g, ChatGeneration)]}


def _marked(stored: list[dict[str, Any]]) -> list[ChatGeneration]:
    generations = [ChatGeneration(message=messages_from_dict([g["message"]])[0], generation_info=g["info"])
                   for g in stored]
    for g in generations:
        g.generation_info = {**(g.generation_info or {}), CACHED: True}
    return generations


async def clear_cache(store: BaseStore) -> int:
    """Delete every cached answer; how many there were."""
    deleted = 0
    while items := await store.asearch(NAMESPACE, limit=500):
        for item in items:
            await store.adelete(NAMESPACE, item.key)
        deleted += len(items)
    return deleted
