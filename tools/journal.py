"""A run's journal: its protocol messages, kept in the LangGraph store rather than the checkpointed state.

LangGraph's SQLite saver writes the whole state at every step, so a growing list there costs
quadratic storage. The journal puts each message once into the store, keyed by a
time-ordered id, and streams it live on the graph's `custom` stream mode.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from langgraph.store.base import BaseStore, Item
from langgraph.types import StreamWriter

from state.protocol import AnyMessage, parse_message

PAGE = 500

Write = tuple[tuple[str, ...], str, dict[str, Any]]
"""A store write to make beside a journal post: (namespace, key, value), not indexed."""


_LATER: weakref.WeakKeyDictionary[BaseStore, dict[str, set[asyncio.Future[None]]]] = weakref.WeakKeyDictionary()
"""Each run's store writes started by `write_later` and not yet waited for, by store and thread."""


def write_later(store: BaseStore, thread_id: str, write: Write) -> None:
    """Start a store write for a run without waiting for it (a model call's usage record: the call need not wait
    on the database). The run's next journal post waits for it (and raises its error), so it is stored before
    anything that post records; `settle` waits for it too."""
    ns, key, value = write
    pending = _LATER.setdefault(store, {}).setdefault(thread_id, set())
    future = asyncio.ensure_future(store.aput(ns, key, value, index=False))
    pending.add(future)

    def done(f: asyncio.Future[None]) -> None:
        if not f.cancelled() and f.exception() is None:
            pending.discard(f)  # a failed one stays, for `settle` to raise

    future.add_done_callback(done)


async def settle(store: BaseStore | None, thread_id: str) -> None:
    """Wait for the run's writes started by `write_later`; the first that failed raises."""
    pending = _LATER.get(store, {}).get(thread_id) if store is not None else None
    while pending:
        waiting = list(pending)
        pending.difference_update(waiting)
        failed = [r for r in await asyncio.gather(*waiting, return_exceptions=True) if isinstance(r, BaseException)]
        if failed:
            raise failed[0]


def namespace(thread_id: str, kind: str) -> tuple[str, ...]:
    """Where a run's records of one kind live in the store."""
    return ("runs", thread_id, kind)


class Journal:
    """Posts protocol messages for one run: stored (when there is a store) and streamed."""

    def __init__(self, store: BaseStore | None, thread_id: str, writer: StreamWriter | None = None) -> None:
        self._store, self._thread = store, thread_id
        self._ns = namespace(thread_id, "messages")
        self._writer = writer

    async def post(self, *messages: AnyMessage, also: list[Write] | None = None) -> None:
        """Store the messages (and the `also` writes, e.g. progress records), then stream them. The writes are
        queued together, so the store makes them in one batch with whatever other nodes write meanwhile; the run's
        writes started earlier without waiting (`write_later`) are waited for too."""
        dumped = [(m.id, m.model_dump(mode="json")) for m in messages]
        writes = [(self._ns, key, data) for key, data in dumped] + (also or [])
        if self._store is not None:
            await asyncio.gather(*(self._store.aput(ns, key, value, index=False) for ns, key, value in writes),
                                 settle(self._store, self._thread))
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
