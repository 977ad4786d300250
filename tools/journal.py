"""A run's journal: its protocol messages, kept in the LangGraph store rather than the checkpointed state.

LangGraph's SQLite saver writes the whole state at every step, so a growing list there costs
quadratic storage. The journal puts each message once into the store, keyed by a
time-ordered id, and streams it live on the graph's `custom` stream mode.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.store.base import BaseStore, Item
from langgraph.types import StreamWriter

from state.protocol import AnyMessage, parse_message

PAGE = 500

Write = tuple[tuple[str, ...], str, dict[str, Any]]
"""A store write to make beside a journal post: (namespace, key, value), not indexed."""


def namespace(thread_id: str, kind: str) -> tuple[str, ...]:
    """Where a run's records of one kind live in the store."""
    return ("runs", thread_id, kind)


class Journal:
    """Posts protocol messages for one run: stored (when there is a store) and streamed."""

    def __init__(self, store: BaseStore | None, thread_id: str, writer: StreamWriter | None = None) -> None:
        self._store = store
        self._ns = namespace(thread_id, "messages")
        self._writer = writer

    async def post(self, *messages: AnyMessage, also: list[Write] | None = None) -> None:
        """Store the messages (and the `also` writes, e.g. progress records), then stream them. The writes are
        queued together, so the store makes them in one batch with whatever other nodes write meanwhile."""
        dumped = [(m.id, m.model_dump(mode="json")) for m in messages]
        writes = [(self._ns, key, data) for key, data in dumped] + (also or [])
        if self._store is not None and writes:
            await asyncio.gather(*(self._store.aput(ns, key, value, index=False) for ns, key, value in writes))
        if self._writer is not None:
            for _, data in dumped:
                self._writer({"message": data})


async def read_messages(store: BaseStore, thread_id: str) -> list[AnyMessage]:
    """Every message of a run, in the order they were posted."""
    return sorted((parse_message(v) for v in await read_all(store, namespace(thread_id, "messages"))),
                  key=lambda m: m.id)


async def read_all(store: BaseStore, ns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every value under a namespace, page by page."""
    return [item.value for item in await read_items(store, ns)]


async def read_items(store: BaseStore, ns: tuple[str, ...]) -> list[Item]:
    """Every item (key and value) under a namespace, page by page."""
    items: list[Item] = []
    while True:
        page = await store.asearch(ns, limit=PAGE, offset=len(items))
        items += page
        if len(page) < PAGE:
            return items
