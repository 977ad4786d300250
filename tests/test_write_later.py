"""A model call's usage record is stored without the call waiting for it (`tools.journal.write_later`), and no
later than the run's next journal post: the post waits for it and raises its error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from state.budget import Call
from state.protocol import Progress
from tools.journal import Journal, namespace, read_all, settle, write_later
from tools.usage import Meter


class SlowStore(InMemoryStore):
    """A store whose writes take a while, or fail for one namespace."""

    def __init__(self, fail: str | None = None) -> None:
        super().__init__()
        self.fail = fail

    async def aput(self, namespace: tuple[str, ...], key: str, value: dict[str, Any], *args: Any,
                   **kwargs: Any) -> None:
        await asyncio.sleep(0.05)
        if namespace[-1] == self.fail:
            raise OSError("disk full")
        await super().aput(namespace, key, value, *args, **kwargs)


def note() -> Progress:
    return Progress(sender="worker", recipient="supervisor", correlation_id="T1", note="done")


def test_a_usage_record_does_not_hold_up_the_call_and_is_stored_by_the_next_post() -> None:
    async def go() -> tuple[int, int]:
        store = SlowStore()
        Meter.forget(store, "t", new=True)
        await Meter.of(store, "t").record(Call(agent="worker", model="offline", model_role="worker"))
        before = len(await read_all(store, namespace("t", "calls")))
        await Journal(store, "t").post(note())
        return before, len(await read_all(store, namespace("t", "calls")))

    assert asyncio.run(go()) == (0, 1)


def test_settle_waits_for_them_without_a_post() -> None:
    async def go() -> int:
        store = SlowStore()
        write_later(store, "t", (namespace("t", "calls"), "k", {"n": 1}))
        await settle(store, "t")
        return len(await read_all(store, namespace("t", "calls")))

    assert asyncio.run(go()) == 1


def test_a_write_that_failed_fails_the_next_post_and_is_not_lost_silently() -> None:
    async def go() -> None:
        store = SlowStore(fail="calls")
        write_later(store, "t", (namespace("t", "calls"), "k", {"n": 1}))
        await asyncio.sleep(0.1)  # it has failed by now: the post still says so
        await Journal(store, "t").post(note())

    with pytest.raises(OSError, match="disk full"):
        asyncio.run(go())


def test_a_new_runs_meter_counts_from_nothing_without_reading_the_store() -> None:
    async def go() -> int:
        store = SlowStore()
        await store.aput(namespace("t", "calls"), "old", Call(agent="a", model="m", model_role="worker").model_dump(
            mode="json"))
        Meter.forget(store, "t", new=True)
        await Meter.of(store, "t").load()
        return Meter.of(store, "t").run.calls

    assert asyncio.run(go()) == 0
