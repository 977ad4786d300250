"""What a run's model calls used: one record per call in the run's store, and the totals a budget is checked on.

Records are written once each (keyed by a time-ordered id) and streamed live on the graph's `custom` stream as
`{"usage": call}`, so a dashboard counts tokens and dollars as they are spent and `troupe stats` and `troupe report`
read them afterwards. The totals are loaded once per process from the records, then kept by counting: a run has one
driving process at a time (`graphs.lease`), and the runner forgets them before it drives a run again.
"""

from __future__ import annotations

import asyncio
import weakref

from langgraph.store.base import BaseStore
from langgraph.types import StreamWriter

from state.budget import Budget, Call, Usage
from state.protocol import message_id
from tools.journal import namespace, read_all

_METERS: weakref.WeakKeyDictionary[BaseStore, dict[str, Meter]] = weakref.WeakKeyDictionary()
"""The meters of this process, by store and thread: an in-memory view of the store's records, gone with the store."""


class Meter:
    """A run's spending: in all, and per agent."""

    def __init__(self, store: BaseStore | None, thread_id: str) -> None:
        self.store, self.thread_id = store, thread_id
        self.run = Usage()
        self.agents: dict[str, Usage] = {}
        self.said: set[str] = set()
        """Budget decisions already journaled by this process (each is said once)."""
        self._loaded = store is None
        self._lock = asyncio.Lock()

    @classmethod
    def of(cls, store: BaseStore | None, thread_id: str) -> Meter:
        """The run's meter in this process (a graph run without a store gets a fresh one: nothing to share)."""
        if store is None:
            return cls(None, thread_id)
        meters = _METERS.setdefault(store, {})
        if thread_id not in meters:
            meters[thread_id] = cls(store, thread_id)
        return meters[thread_id]

    @staticmethod
    def forget(store: BaseStore, thread_id: str) -> None:
        """Drop what this process counted of a run (another process may have driven it since)."""
        _METERS.get(store, {}).pop(thread_id, None)

    async def load(self) -> None:
        """Count the run's recorded calls, once."""
        async with self._lock:
            if self._loaded or self.store is None:
                return
            for value in await read_all(self.store, namespace(self.thread_id, "calls")):
                self._count(Call.model_validate(value))
            self._loaded = True

    async def record(self, call: Call, writer: StreamWriter | None = None) -> None:
        """Store one call, count it, and stream it."""
        await self.load()
        data = call.model_dump(mode="json")
        if self.store is not None:
            await self.store.aput(namespace(self.thread_id, "calls"), message_id(), data, index=False)
        self._count(call)
        if writer is not None:
            writer({"usage": data})

    def fraction(self, budget: Budget, agent: str | None = None) -> float:
        """The share of the run's cap (or `agent`'s own) used so far."""
        if agent is None:
            return budget.fraction(self.run)
        cap = budget.agents.get(agent)
        return cap.fraction(self.agents.get(agent, Usage())) if cap else 0.0

    def _count(self, call: Call) -> None:
        self.run.add(call)
        self.agents.setdefault(call.agent, Usage()).add(call)


async def read_calls(store: BaseStore, thread_id: str) -> list[Call]:
    """Every model call of a run, in the order they ended."""
    return sorted((Call.model_validate(v) for v in await read_all(store, namespace(thread_id, "calls"))),
                  key=lambda c: c.ended)


def totals(calls: list[Call]) -> tuple[Usage, dict[str, Usage]]:
    """(the run's usage, usage per agent) of a list of calls."""
    meter = Meter(None, "")
    for call in calls:
        meter._count(call)
    return meter.run, meter.agents
