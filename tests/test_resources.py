"""Exclusive resources: held in sorted order (no deadlock), queued fairly, let go on error, cancel, timeout and kill."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import blockbuster_ctx

from tools.resources import ResourceTimeout, hold, lock_path

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import asyncio, sys
from pathlib import Path
from tools.resources import hold

async def main() -> None:
    async with hold([sys.argv[2]], holder=sys.argv[3], folder=Path(sys.argv[1]), timeout=10):
        print("holding", flush=True)
        sys.stdin.readline()  # hold until told (or killed)

asyncio.run(main())
"""


def _no_overlap(intervals: list[tuple[float, float]]) -> None:
    spans = sorted(intervals)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans)), spans


OnWait = Callable[[str, str | None], Awaitable[None]]


def waiting_signal() -> tuple[asyncio.Event, list[tuple[str, str | None]], OnWait]:
    """An on_wait callback that records its calls and sets an event."""
    waited = asyncio.Event()
    calls: list[tuple[str, str | None]] = []

    async def on_wait(resource: str, held_by: str | None) -> None:
        calls.append((resource, held_by))
        waited.set()

    return waited, calls, on_wait


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[Callable[[str, str], subprocess.Popen[str]]]:
    """Starts a process that holds a resource until it reads a line (killed at the end if still alive)."""
    started: list[subprocess.Popen[str]] = []

    def start(resource: str, holder: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "locks"), resource, holder], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_holders_wanting_the_same_resources_in_opposite_orders_neither_deadlock_nor_overlap(tmp_path: Path) -> None:
    held: dict[str, list[tuple[float, float]]] = {"a": [], "b": [], "c": []}

    async def work(names: list[str], who: str) -> None:
        for _ in range(3):
            async with hold(names, holder=who, folder=tmp_path, timeout=10):
                start = time.monotonic()
                await asyncio.sleep(0.02)
                for name in set(names):  # c is named twice by T4
                    held[name].append((start, time.monotonic()))

    async def main() -> None:
        await asyncio.gather(work(["a", "b"], "T1"), work(["b", "a"], "T2"), work(["b", "c"], "T3"),
                             work(["c", "a", "c"], "T4"))

    asyncio.run(main())
    assert [len(v) for v in held.values()] == [9, 9, 6]
    for intervals in held.values():
        _no_overlap(intervals)


def test_waiters_in_a_process_are_served_first_come_first_served(tmp_path: Path) -> None:
    order: list[int] = []

    async def main() -> None:
        async def queue(i: int, waited: asyncio.Event) -> None:
            async def on_wait(resource: str, held_by: str | None) -> None:
                waited.set()

            async with hold(["suite"], holder=f"T{i}", folder=tmp_path, timeout=10, on_wait=on_wait):
                order.append(i)
                await asyncio.sleep(0.01)

        async with hold(["suite"], holder="T0", folder=tmp_path, timeout=1):
            tasks = []
            for i in [3, 1, 4, 5, 2]:
                waited = asyncio.Event()
                tasks.append(asyncio.create_task(queue(i, waited)))
                await waited.wait()  # queued before the next one starts
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == [3, 1, 4, 5, 2]


def test_an_exception_in_the_block_hands_the_resource_to_the_next_holder_at_once(tmp_path: Path) -> None:
    async def main() -> float:
        waited, calls, on_wait = waiting_signal()

        async def next_holder() -> float:
            async with hold(["api"], holder="T2", folder=tmp_path, timeout=5, on_wait=on_wait):
                return time.monotonic()

        with pytest.raises(ZeroDivisionError):
            async with hold(["api"], holder="T1", folder=tmp_path, timeout=1):
                task = asyncio.create_task(next_holder())
                await waited.wait()
                failed = time.monotonic()
                1 / 0  # noqa: B018
        assert calls == [("api", "T1")]
        return await task - failed

    assert asyncio.run(main()) < 0.5


def test_a_holder_cancelled_while_waiting_leaves_nothing_held_or_queued(tmp_path: Path) -> None:
    async def main() -> list[str]:
        got: list[str] = []
        first, _, on_first = waiting_signal()
        second, _, on_second = waiting_signal()

        async def wait_for(names: list[str], who: str, on_wait: OnWait) -> None:
            async with hold(names, holder=who, folder=tmp_path, timeout=5, on_wait=on_wait):
                got.append(who)

        async with hold(["b"], holder="T1", folder=tmp_path, timeout=1):
            cancelled = asyncio.create_task(wait_for(["a", "b"], "T2", on_first))  # takes a, waits for b
            await first.wait()
            behind = asyncio.create_task(wait_for(["b"], "T3", on_second))  # queued behind T2
            await second.wait()
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            async with hold(["a"], holder="T4", folder=tmp_path, timeout=0):  # T2 gave a back
                got.append("T4")
        await asyncio.wait_for(behind, 2)  # T3 is next for b, not the cancelled T2
        async with hold(["a", "b"], holder="T5", folder=tmp_path, timeout=0):
            got.append("T5")
        return got

    assert asyncio.run(main()) == ["T4", "T3", "T5"]


def test_a_holder_that_times_out_says_who_holds_the_resource_and_keeps_nothing(tmp_path: Path) -> None:
    async def main() -> tuple[ResourceTimeout, float]:
        async with hold(["b"], holder="T1", folder=tmp_path, timeout=1):
            start = time.monotonic()
            with pytest.raises(ResourceTimeout) as timed_out:
                async with hold(["a", "b"], holder="T2", folder=tmp_path, timeout=0.3):
                    pytest.fail("held b twice")
            waited = time.monotonic() - start
            async with hold(["a"], holder="T3", folder=tmp_path, timeout=0):  # a was taken and given back
                pass
        async with hold(["a", "b"], holder="T3", folder=tmp_path, timeout=0):
            pass
        return timed_out.value, waited

    error, waited = asyncio.run(main())
    message = str(error)
    assert isinstance(error, RuntimeError) and "\n" not in message and 0.3 <= waited < 1
    assert "'b'" in message and f"T1 (pid {os.getpid()}" in message and re.search(r"T2 waited 0\.\ds", message), message


def test_a_killed_holder_process_lets_go_of_its_resource(tmp_path: Path, other_process: Any) -> None:
    proc = other_process("test-suite", "T9")

    async def main() -> tuple[list[tuple[str, str | None]], float]:
        waited, calls, on_wait = waiting_signal()

        async def kill_when_waiting() -> float:
            await waited.wait()
            os.kill(proc.pid, signal.SIGKILL)
            return time.monotonic()

        killer = asyncio.create_task(kill_when_waiting())
        async with hold(["test-suite"], holder="T1", folder=tmp_path / "locks", timeout=10, on_wait=on_wait):
            return calls, time.monotonic() - await killer

    calls, after_kill = asyncio.run(main())
    assert calls == [("test-suite", "T9")] and after_kill < 2
    assert proc.wait(5) == -signal.SIGKILL


def test_a_holder_waits_for_another_process_and_gets_the_resource_when_it_lets_go(tmp_path: Path,
                                                                                  other_process: Any) -> None:
    proc = other_process("rate-limited API", "worker-7")
    folder = tmp_path / "locks"

    async def main() -> list[tuple[str, str | None]]:
        with pytest.raises(ResourceTimeout, match=rf"'rate-limited API' is held by worker-7 \(pid {proc.pid}\)"):
            async with hold(["rate-limited API"], holder="T1", folder=folder, timeout=0):
                pass
        waited, calls, on_wait = waiting_signal()

        async def release_when_waiting() -> None:
            await waited.wait()
            proc.stdin.write("done\n")
            proc.stdin.flush()

        releaser = asyncio.create_task(release_when_waiting())
        async with hold(["rate-limited API"], holder="T1", folder=folder, timeout=10, on_wait=on_wait):
            assert releaser.done()
        return calls

    assert asyncio.run(main()) == [("rate-limited API", "worker-7")]
    assert proc.wait(5) == 0


def test_holders_on_other_event_loops_and_threads_share_the_queue(tmp_path: Path) -> None:
    held: list[tuple[float, float]] = []

    async def contend(who: str) -> None:
        async def one(i: int) -> None:
            async with hold(["db"], holder=f"{who}.{i}", folder=tmp_path, timeout=10):
                start = time.monotonic()
                await asyncio.sleep(0.01)
                held.append((start, time.monotonic()))

        await asyncio.gather(*(one(i) for i in range(4)))

    asyncio.run(contend("first loop"))
    threads = [threading.Thread(target=asyncio.run, args=(contend(f"thread {i}"),)) for i in range(3)]
    for t in threads:
        t.start()
    asyncio.run(contend("main thread"))
    for t in threads:
        t.join(10)
    assert len(held) == 20
    _no_overlap(held)


def test_waiting_for_a_resource_makes_no_blocking_call_on_the_event_loop(tmp_path: Path) -> None:
    async def second() -> None:
        async with hold(["a"], holder="T2", folder=tmp_path / "new", timeout=1):
            pass

    async def main() -> None:
        with blockbuster_ctx():  # raises BlockingError on any blocking call made on the event loop
            async with hold(["a"], holder="T1", folder=tmp_path / "new", timeout=1):
                waiter = asyncio.create_task(second())
                await asyncio.sleep(0.1)
            await waiter

    asyncio.run(main())


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "tab\there", "x" * 101, 7])
def test_bad_resource_names_are_refused(tmp_path: Path, bad: Any) -> None:
    async def main() -> None:
        async with hold([bad], holder="T1", folder=tmp_path, timeout=1):
            pass

    with pytest.raises(ValueError, match="bad resource name"):
        asyncio.run(main())


def test_resource_names_map_to_distinct_safe_file_names(tmp_path: Path) -> None:
    names = ["test-suite", "test suite", "Test Suite", "../../etc/passwd", "ünïcode ✓", "..."]
    paths = [lock_path(tmp_path, name) for name in names]
    assert len(set(paths)) == len(names)
    assert all(p.parent == tmp_path and p.name.endswith(".lock") and "/" not in p.name for p in paths)
    assert paths[0].name.startswith("test-suite-") and paths[3].name.startswith("etc-passwd-")
