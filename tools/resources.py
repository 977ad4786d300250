"""Exclusive resources for agents: `async with hold(["test-suite"], holder="T1", folder=f, timeout=60): ...`

Each resource is a lock file in `folder`, held with `fcntl.flock`: the kernel lets go when the holding process
dies, even by SIGKILL. The file records the holder's name and pid, so waiters can say who they wait for.

Fairness. Within a process, waiters for a resource queue first come, first served (one FIFO per lock file, shared by
every event loop and thread of the process); only the queue's head tries the lock. Across processes there is no
queue: each process's head retries a non-blocking flock every `POLL` seconds, so after a release the next holder is
whichever process tries first. Exclusion and release on kill hold across processes; order does not (a process that
hands a resource to its own next waiter may keep it while another process polls). File work runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

POLL = 0.05  # seconds between flock attempts while another process holds a resource
MAX_NAME = 100

OnWait = Callable[[str, "str | None"], Awaitable[None]]


class ResourceTimeout(RuntimeError):
    """Not every resource could be held within the timeout (whatever was taken has been released)."""


def check_name(name: str) -> str:
    """`name`, if it is a usable resource name (a few printable characters), else ValueError."""
    if not isinstance(name, str) or not name.strip() or not name.isprintable() or len(name) > MAX_NAME:
        raise ValueError(f"bad resource name {name!r}: use 1 to {MAX_NAME} printable characters, not only spaces")
    return name


def lock_path(folder: Path, name: str) -> Path:
    """The lock file of resource `name`: a readable slug plus a short hash of the exact name."""
    slug = re.sub(r"[^a-z0-9]+", "-", check_name(name).lower()).strip("-")[:40] or "resource"
    return folder / f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:12]}.lock"


@dataclass(eq=False)
class _Ticket:
    name: str
    key: str  # the lock file's absolute path
    holder: str
    loop: asyncio.AbstractEventLoop
    turn: asyncio.Future[None]  # done when the ticket heads its queue
    fd: int | None = None  # the locked file, while held
    blocker: str = "an unknown holder"  # who holds the resource, as far as known


_guard = threading.Lock()
_queues: dict[str, deque[_Ticket]] = {}  # lock file -> tickets of this process, the head holds or tries the lock


def _join(t: _Ticket) -> _Ticket | None:
    """Queue `t`; the ticket ahead of it at the head, or None if `t` is the head."""
    with _guard:
        queue = _queues.setdefault(t.key, deque())
        queue.append(t)
        return None if queue[0] is t else queue[0]


def _leave(t: _Ticket) -> None:
    """Dequeue `t` and, if it was the head, wake the next ticket whose loop still runs."""
    with _guard:
        queue = _queues[t.key]
        was_head = queue[0] is t
        queue.remove(t)
        while was_head and queue:
            with contextlib.suppress(RuntimeError):  # that loop was closed: drop its ticket
                queue[0].loop.call_soon_threadsafe(_wake, queue[0].turn)
                break
            queue.popleft()
        if not queue:
            del _queues[t.key]


def _wake(turn: asyncio.Future[None]) -> None:
    if not turn.done():  # not cancelled meanwhile
        turn.set_result(None)


def _try_lock(key: str, holder: str) -> tuple[int | None, str | None, int | None]:
    """One non-blocking attempt: (fd, None, None) when locked (and signed), else (None, holder, pid) from the file."""
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            info = json.loads(os.pread(fd, 4096, 0))
            return None, str(info["holder"]), int(info["pid"])
        except (ValueError, KeyError, TypeError):  # not written yet
            return None, None, None
        finally:
            os.close(fd)
    data = json.dumps({"holder": holder, "pid": os.getpid()}).encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
    return fd, None, None


def _close_late(done: asyncio.Future[tuple[int | None, str | None, int | None]]) -> None:
    """An attempt whose waiter was cancelled: let go of the lock it may have taken."""
    if not done.cancelled() and done.exception() is None and (fd := done.result()[0]) is not None:
        os.close(fd)


async def _take(t: _Ticket, deadline: float, since: float, on_wait: OnWait | None) -> None:
    """Queue for `t`'s resource, then lock its file; on any failure `t` leaves the queue and holds nothing."""
    told = False
    try:
        if (ahead := _join(t)) is None:
            t.turn.set_result(None)
        else:
            told = True
            if on_wait is not None:
                await on_wait(t.name, ahead.holder)
            async with asyncio.timeout_at(deadline):
                await t.turn
        while True:
            attempt = t.loop.run_in_executor(None, _try_lock, t.key, t.holder)
            try:
                t.fd, holder, pid = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                attempt.add_done_callback(_close_late)
                raise
            if t.fd is not None:
                return
            t.blocker = f"{holder} (pid {pid})" if holder else "an unknown holder"
            if not told and on_wait is not None:
                await on_wait(t.name, holder)
            told = True
            if t.loop.time() >= deadline:
                raise TimeoutError
            await asyncio.sleep(min(POLL, deadline - t.loop.time()))
    except BaseException as error:
        with _guard:
            if (head := _queues[t.key][0]) is not t:  # still queued behind a holder in this process
                t.blocker = f"{head.holder} (pid {os.getpid()}, this process)"
        _leave(t)
        if isinstance(error, TimeoutError):
            raise ResourceTimeout(f"resource {t.name!r} is held by {t.blocker}; {t.holder} waited "
                                  f"{t.loop.time() - since:.1f}s for it: retry later, raise the timeout, "
                                  "or stop that holder") from None
        raise


@contextlib.asynccontextmanager
async def hold(names: str | Iterable[str], *, holder: str, folder: Path, timeout: float,
               on_wait: OnWait | None = None) -> AsyncIterator[None]:
    """Hold every named resource for the block, taken in sorted order (so holders cannot deadlock).

    Raises `ResourceTimeout` if they are not all held within `timeout` seconds. `on_wait(resource, held_by)` is
    awaited once for each resource this holder has to wait for (`held_by` is None when the holder is unknown).
    """
    wanted = sorted({check_name(names)} if isinstance(names, str) else {check_name(n) for n in names})
    await asyncio.to_thread(Path(folder).mkdir, parents=True, exist_ok=True)
    folder = await asyncio.to_thread(Path(folder).resolve)
    loop = asyncio.get_running_loop()
    start = loop.time()
    taken: list[_Ticket] = []
    try:
        for name in wanted:
            ticket = _Ticket(name, str(lock_path(folder, name)), holder, loop, loop.create_future())
            await _take(ticket, start + timeout, start, on_wait)
            taken.append(ticket)
        yield
    finally:
        for ticket in reversed(taken):
            if ticket.fd is not None:
                os.close(ticket.fd)  # releases the flock
            _leave(ticket)
