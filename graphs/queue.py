"""Runs on a queue: `troupe submit` records a run and queues it, `troupe worker` processes drive queued runs.

The queue is procrastinate: a maintained task queue on PostgreSQL, asyncio-native, so the runs, their files and
their queue live in one database and one transaction system (no broker to run beside it). A job names a run's
thread. A worker resumes it (a new run starts from its task), answers its gates when it was submitted with
`--auto-approve`, and leaves it where a person is needed (`troupe approve THREAD`, from anywhere). Workers are
stateless: everything of a run is in the database (checkpoints, files, journal), so whichever worker takes a job
carries the run on from its last checkpoint, and finished subtasks are not done again.

A worker that dies (SIGKILL, a lost host) stops sending heartbeats. Every `RECOVER_EVERY` seconds one worker puts
the jobs of workers silent for `STALLED` seconds back on the queue (procrastinate's stalled-job API, run as its
periodic task); the run's lease (`graphs.lease`) keeps a job that is retried early from driving a run another live
process still drives: it waits until that process stops, then finds the run finished or carries it on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from graphs.commands import _context, _load, settle
from graphs.database import is_postgres, shown
from graphs.errors import TroupeError
from graphs.postgres import driver, setup_lock
from graphs.runtime import RunInfo, Runner, check_input, default_db, new_thread_id, resolve
from graphs.views import Quiet
from state.context import RunContext
from state.roles import Team

QUEUE = "troupe-runs"
DRIVE = "troupe.drive"
RECOVER = "troupe.recover"
HEARTBEAT = 2.0
"""Seconds between a worker's heartbeats."""
STALLED = 10.0
"""Seconds of silence after which a worker is taken for dead and its jobs are queued again."""
RECOVER_EVERY = 2
"""Seconds between looks for stalled jobs."""
Approval = Literal["auto", "hold"]


def database(db: Path | str | None) -> str:
    """The PostgreSQL URL the queue lives in, or a TroupeError that says how to give one."""
    db = db or default_db()
    if not is_postgres(db):
        raise TroupeError(f"the run queue needs PostgreSQL, and {db} is a SQLite file: pass --db "
                          "postgresql://USER@HOST/NAME or set $TROUPE_DB (with troupe[postgres] installed)")
    return str(db)


@asynccontextmanager
async def opened_queue(url: str) -> AsyncIterator[Any]:
    """The procrastinate app on `url`, open, with its schema applied (once, whoever comes first)."""
    driver()
    import procrastinate
    from psycopg.rows import scalar_row

    connector = procrastinate.PsycopgConnector(conninfo=url)
    app = procrastinate.App(connector=connector)
    _tasks(app)
    async with app.open_async():
        async with connector.pool.connection() as conn, setup_lock(conn):  # one process applies the schema
            cursor = conn.cursor(row_factory=scalar_row)
            await cursor.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            if not await cursor.fetchone():
                await app.schema_manager.apply_schema_async()
        yield app


def _tasks(app: Any) -> None:
    """Register the queue's two tasks on `app`: drive a run, and put stalled jobs back."""

    @app.task(name=DRIVE, queue=QUEUE, pass_context=True)
    async def drive(context: Any, thread: str, approval: str) -> str:
        runner: Runner = context.additional_context["runner"]
        try:
            outcome = await runner.resume(thread)
        except TroupeError as exc:  # finished meanwhile (a job retried after its run ended), or no such run
            print(f"{thread}: {exc}", flush=True)
            return str(exc)
        outcome = await settle(runner, outcome, approval, Quiet())
        print(f"{thread}: {outcome.status}", flush=True)
        return outcome.status

    @app.periodic(cron=f"* * * * * */{RECOVER_EVERY}", periodic_id="recover")
    @app.task(name=RECOVER, queue=QUEUE, queueing_lock=RECOVER)
    async def recover(timestamp: int) -> int:
        stalled = list(await app.job_manager.get_stalled_jobs(task_name=DRIVE, seconds_since_heartbeat=STALLED))
        for job in stalled:
            print(f"{job.task_kwargs.get('thread')}: its worker went silent; queued again", flush=True)
            await app.job_manager.retry_job(job)
        await app.job_manager.prune_stalled_workers(seconds_since_heartbeat=STALLED)
        return len(stalled)


async def enqueue(runner: Runner, app: Any, pattern: str, task: str, ctx: RunContext, *,
                  team: Team | str | Path | None = None, thread_id: str | None = None,
                  approval: Approval = "hold") -> RunInfo:
    """Record a new run (checked as `Runner.start` checks it) and queue it on `app` (`opened_queue`) for a worker;
    `approval` "auto" has the worker approve its gates, "hold" leaves them to a person."""
    info = await runner.create(pattern, task, ctx, team=team, thread_id=thread_id or new_thread_id(task))
    try:
        await app.configure_task(DRIVE, lock=info.thread_id).defer_async(thread=info.thread_id, approval=approval)
    except Exception as exc:  # the queue's own errors: the run is recorded, a person can carry it on
        raise TroupeError(f"run {info.thread_id!r} is recorded but could not be queued ({exc}): "
                          f"`troupe resume {info.thread_id}` runs it here") from None
    return info


async def submit(args: argparse.Namespace) -> int:
    """`troupe submit`: check and record the run, queue it, print its thread id."""
    url = database(args.db)
    ctx = _context(args)
    check_input(args.task, ctx, args.thread)
    try:
        args.pattern, chosen = resolve(args.pattern, args.team_file or args.team)
    except LookupError as exc:
        raise TroupeError(str(exc)) from None
    team = _load(chosen or "software", ctx)
    async with Runner.open(url) as runner, opened_queue(url) as app:
        info = await enqueue(runner, app, args.pattern, args.task, ctx, team=team, thread_id=args.thread,
                             approval=args.approval or "hold")
    print(info.thread_id)
    return 0


async def worker(args: argparse.Namespace) -> int:
    """`troupe worker`: drive queued runs, `--concurrency` at a time, until stopped (or the queue is empty)."""
    url = database(args.db)
    if args.concurrency < 1:
        raise TroupeError(f"--concurrency {args.concurrency}: give how many runs to drive at once, at least 1")
    async with Runner.open(url, wait=True) as runner, opened_queue(url) as app:
        print(f"troupe worker: driving queued runs from {shown(url)}, {args.concurrency} at a time", file=sys.stderr,
              flush=True)
        await app.run_worker_async(queues=[QUEUE], concurrency=args.concurrency, wait=not args.once,
                                   additional_context={"runner": runner}, delete_jobs="successful",
                                   update_heartbeat_interval=HEARTBEAT, stalled_worker_timeout=STALLED,
                                   fetch_job_polling_interval=1.0)
    return 0
