"""troupe on PostgreSQL (`troupe[postgres]`): LangGraph's PostgreSQL checkpointer and store over one connection pool.

Everything a run keeps goes into the one database, as with SQLite: checkpoints, the store (index, journal, model
calls, context records, workspace files, model cache) and the run leases; the run queue (`graphs.queue`) too.
Any number of processes on any number of hosts may open it at once: the schema is set up under an advisory lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from graphs.database import foreign_tables, shown
from graphs.errors import TroupeError
from graphs.lease import Leases

SETUP_LOCK = 0x74726F757065  # "troupe"
"""The advisory lock held while the schema is set up (LangGraph's migrations are not safe to race)."""
POOL_SIZE = 8
"""Connections per process: the checkpointer's and the store's (parallel agents share them)."""
SETUP_POLL = 0.05
"""Seconds between tries for the set-up lock."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the database before saying it is out of reach."""


def driver() -> Any:
    """psycopg, or a TroupeError that says how to install it."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver  # noqa: F401
    except ImportError:
        raise TroupeError("PostgreSQL needs the postgres extra: pip install 'troupe[postgres]'") from None
    return psycopg


@asynccontextmanager
async def setup_lock(conn: Any) -> AsyncIterator[None]:
    """Hold `SETUP_LOCK` on the connection `conn` for the block. Taken by trying, not by waiting in a statement: a
    session blocked in `pg_advisory_lock` is an open transaction, which the holder's `CREATE INDEX CONCURRENTLY`
    (in LangGraph's migrations) waits for, and neither would ever go on."""
    from psycopg.rows import scalar_row

    tries = conn.cursor(row_factory=scalar_row)  # whatever rows the connection's own cursors make
    while not await (await tries.execute("SELECT pg_try_advisory_lock(%s)", (SETUP_LOCK,))).fetchone():
        await asyncio.sleep(SETUP_POLL)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """(checkpointer, store) on the PostgreSQL database `url`, set up; another application's database is refused."""
    psycopg = driver()
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres.aio import AsyncPostgresStore
    from psycopg import AsyncConnection
    from psycopg.rows import DictRow, dict_row
    from psycopg_pool import AsyncConnectionPool, PoolTimeout

    from graphs.runtime import listed, serializer

    pool = AsyncConnectionPool(url, connection_class=AsyncConnection[DictRow], min_size=1, max_size=POOL_SIZE,
                               open=False, timeout=CONNECT_TIMEOUT,
                               kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0,
                                       "connect_timeout": int(CONNECT_TIMEOUT)})
    try:
        try:
            if tables := await asyncio.to_thread(foreign_tables, url):  # also says at once why it is out of reach
                raise TroupeError(f"{shown(url)} is another application's database (tables: {listed(tables)}): "
                                  "point --db or $TROUPE_DB at a troupe database or a new one")
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
            saver, store = AsyncPostgresSaver(pool, serde=serializer()), AsyncPostgresStore(pool)
            async with pool.connection() as conn, setup_lock(conn):
                await saver.setup()
                await store.setup()
                await asyncio.to_thread(Leases(url).setup)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TroupeError(f"cannot use {shown(url)} as troupe's database ({why}): check that PostgreSQL runs "
                              "there and the database exists (createdb NAME)") from None
        yield saver, store
    finally:
        await pool.close()
