"""The SQLite store's batches survive another connection's writes: a batch reads before it writes, and SQLite fails
such a transaction at once ("database is locked") when another connection commits while it waits to write."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import aiosqlite
import pytest
from langgraph.store.base import GetOp, PutOp
from langgraph.store.sqlite.aio import AsyncSqliteStore

from graphs.runtime import BUSY_TIMEOUT, RetryingSqliteStore


def _batch_while_another_connection_writes(db: Path, kind: type[AsyncSqliteStore]) -> None:
    held = threading.Event()

    def other_writer() -> None:
        with sqlite3.connect(db, isolation_level=None) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO store (prefix, key, value) VALUES ('other', 'k', '{}')")
            held.set()
            time.sleep(0.5)  # the batch below is waiting for the write lock now
            conn.execute("COMMIT")

    async def go() -> None:
        async with aiosqlite.connect(db, timeout=BUSY_TIMEOUT, isolation_level=None) as conn:
            store = kind(conn)
            await store.setup()
            writer = threading.Thread(target=other_writer)
            writer.start()
            await asyncio.to_thread(held.wait)
            await store.abatch([GetOp(("a",), "x"), PutOp(("a",), "x", {"v": 1})])
            await asyncio.to_thread(writer.join)
            assert (await store.aget(("a",), "x")).value == {"v": 1}  # type: ignore[union-attr]

    asyncio.run(go())


def _wal(db: Path) -> None:
    async def setup() -> None:
        async with aiosqlite.connect(db, isolation_level=None) as conn:
            await AsyncSqliteStore(conn).setup()
            await conn.execute("PRAGMA journal_mode=WAL")

    asyncio.run(setup())


def test_a_batch_that_meets_another_writer_is_tried_again(tmp_path: Path) -> None:
    db = tmp_path / "busy.sqlite"
    _wal(db)
    _batch_while_another_connection_writes(db, RetryingSqliteStore)


def test_without_the_retry_the_same_batch_fails(tmp_path: Path) -> None:
    db = tmp_path / "busy.sqlite"
    _wal(db)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _batch_while_another_connection_writes(db, AsyncSqliteStore)
