"""One owner per run: a lease, held in the run's database, by whichever process drives the run.

A process that starts, resumes, approves or amends a run takes its lease first and gives it back when
the call returns; while it holds it, a thread renews it every `HEARTBEAT` seconds. Another process
asking for the same run is refused (or waits), so two processes never both do a run's remaining work,
and two answers to one gate are never both applied: the second finds the gate answered.

A lease lapses when its owner stops renewing it: after `LEASE_SECONDS` for an owner on another host,
and at once for a process of this host that is gone (killed, crashed), so a SIGKILLed run can be
resumed immediately. Taking a lease is a compare-and-set on the row's token (plain SQL that SQLite and
PostgreSQL both run), so of two processes racing for a free or lapsed lease exactly one wins. The leases live in
the run's database: a SQLite file, a PostgreSQL database (`postgresql://...`), or for a runner given only a
checkpointer and a store, an in-memory SQLite database of the process (`Leases.in_process()`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphs.database import LEASES as TABLE
from graphs.database import is_postgres

LEASE_SECONDS = 30.0
"""How long a lease lasts without a renewal."""
HEARTBEAT = 5.0
"""How often the owner renews its lease."""
POLL = 0.25
"""How often a process waiting for a lease (`wait=True`) looks again."""
_SCHEMA = (f"CREATE TABLE IF NOT EXISTS {TABLE} (thread_id TEXT PRIMARY KEY, token TEXT NOT NULL, "
           "pid INTEGER NOT NULL, host TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)")
HOST = socket.gethostname()


@dataclass(frozen=True)
class Owner:
    """Who holds a run's lease."""

    token: str
    pid: int
    host: str
    expires: float

    def alive(self, now: float) -> bool:
        """Still renewing: not expired and, on this host, its process still running."""
        return self.expires > now and (self.host != HOST or _running(self.pid))

    def __str__(self) -> str:
        return f"pid {self.pid}, {self.host}"


class Busy(Exception):
    """The run is driven by another live process (`owner`)."""

    def __init__(self, owner: Owner) -> None:
        super().__init__(str(owner))
        self.owner = owner


class Leases:
    """The leases of one database, a SQLite file or a PostgreSQL URL (short connections of their own, usable from
    any thread)."""

    def __init__(self, db: Path | str) -> None:
        self.db = db
        self._postgres = is_postgres(db)
        self._keeper: sqlite3.Connection | None = None

    @classmethod
    def in_process(cls) -> Leases:
        """Leases in an in-memory database of this process: one owner per run among this process's runners."""
        leases = cls(f"file:troupe-leases-{uuid.uuid4().hex}?mode=memory&cache=shared")
        leases._keeper = leases._connect()  # the database lives while a connection to it is open
        leases.setup()
        return leases

    def _connect(self) -> Any:
        if self._postgres:
            import psycopg

            return psycopg.connect(str(self.db), autocommit=True, connect_timeout=10)
        return sqlite3.connect(self.db, timeout=30, isolation_level=None, uri=str(self.db).startswith("file:"))

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._postgres else statement

    def setup(self) -> None:
        with closing(self._connect()) as conn:
            conn.execute(_SCHEMA)

    def owner(self, thread_id: str) -> Owner | None:
        """The live owner of `thread_id`'s lease, if any."""
        with closing(self._connect()) as conn:
            row = conn.execute(self._sql(f"SELECT token, pid, host, expires FROM {TABLE} WHERE thread_id = ?"),
                               (thread_id,)).fetchone()
        return owner if row is not None and (owner := Owner(*row)).alive(time.time()) else None

    def try_take(self, thread_id: str, token: str) -> Owner | None:
        """Take the lease of `thread_id` if no live process holds it: None when taken, else the live owner."""
        with closing(self._connect()) as conn:
            while True:
                row = conn.execute(self._sql(f"SELECT token, pid, host, expires FROM {TABLE} WHERE thread_id = ?"),
                                   (thread_id,)).fetchone()
                mine = (token, os.getpid(), HOST, time.time() + LEASE_SECONDS)
                if row is None:
                    taken = conn.execute(self._sql(f"INSERT INTO {TABLE} (token, pid, host, expires, thread_id) "
                                                   "VALUES (?, ?, ?, ?, ?) ON CONFLICT (thread_id) DO NOTHING"),
                                         (*mine, thread_id)).rowcount
                else:
                    if (owner := Owner(*row)).alive(time.time()):
                        return owner
                    taken = conn.execute(self._sql(f"UPDATE {TABLE} SET token = ?, pid = ?, host = ?, expires = ? "
                                                   "WHERE thread_id = ? AND token = ?"),
                                         (*mine, thread_id, owner.token)).rowcount
                if taken == 1:
                    return None  # else another process won this round: look again

    def renew(self, thread_id: str, token: str) -> None:
        with closing(self._connect()) as conn:
            conn.execute(self._sql(f"UPDATE {TABLE} SET expires = ? WHERE thread_id = ? AND token = ?"),
                         (time.time() + LEASE_SECONDS, thread_id, token))

    def give_back(self, thread_id: str, token: str) -> None:
        with closing(self._connect()) as conn:
            conn.execute(self._sql(f"DELETE FROM {TABLE} WHERE thread_id = ? AND token = ?"), (thread_id, token))

    @asynccontextmanager
    async def held(self, thread_id: str, *, wait: bool = False) -> AsyncIterator[str]:
        """Hold the lease of `thread_id` for the block (renewed meanwhile); its token is yielded. Busy when a live
        process holds it, unless `wait`: then wait until it is free."""
        token = uuid.uuid4().hex
        while (owner := await asyncio.to_thread(self.try_take, thread_id, token)) is not None:
            if not wait:
                raise Busy(owner)
            await asyncio.sleep(POLL)
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(thread_id, token, stop), daemon=True,
                                name=f"troupe-lease-{thread_id}")
        beat.start()
        try:
            yield token
        finally:
            stop.set()
            self.give_back(thread_id, token)  # synchronous: a cancelled task still gives its lease back

    def _beat(self, thread_id: str, token: str, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT):
            try:
                self.renew(thread_id, token)
            except Exception:  # the database is busy or out of reach for now (either driver's): the next beat renews
                continue


def _running(pid: int) -> bool:
    """Whether process `pid` of this host is running (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"
