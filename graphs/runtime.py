"""The durable runtime: compiles a pattern with a checkpointer and a store, and runs, resumes, forks and approves
runs by thread.

One database holds everything of a run: LangGraph's checkpoints and the store (the run index, each run's
journal, its model calls, its shared context records, the content of its workspace files, and the model cache
shared by all runs). It is a SQLite file by default, a PostgreSQL database named by a URL to scale out
(`troupe[postgres]`), or any LangGraph checkpointer and store given to `Runner(...)`. Steps are written with
`durability="sync"`, so a run killed at any point resumes from its last super-step, and work finished within
that step (pending writes) is not done again; a run resumed by another process, on another host or another
workspace root, finds its files again (the workspace folder is a view of the store: `tools.workspace.materialize`).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.sqlite.aio import AsyncSqliteStore
from langgraph.types import Command, StreamMode
from pydantic import ValidationError

if sys.platform != "win32":
    import fcntl

from graphs.database import foreign_tables, is_postgres, shown
from graphs.errors import TroupeError
from graphs.lease import Busy, Leases
from graphs.registry import PATTERNS, builder
from graphs.timetravel import copy_records, copy_thread, copy_workspace, created, find, root_checkpoints
from nodes.kit import Agents, Kit, Tools
from nodes.models import Models, ModelSpecError
from nodes.spending import BUDGET
from nodes.teams import available, load_team
from state.budget import Budget, Call
from state.context import MODES, RunContext
from state.plan import TaskRecord, TaskStatus
from state.protocol import AnyMessage
from state.records import ProgressRecord
from state.roles import Team, TeamError, mcp_server_of
from state.team import CHECKPOINTED_TYPES, Decision
from state.team_file import read_team
from tools.amendments import post_amendment
from tools.context_store import read_progress
from tools.embeddings import semantic_index
from tools.journal import read_all, read_messages
from tools.usage import Meter, read_calls, totals
from tools.workspace import materialize, sweep

INDEX = ("index", "runs")
BUSY_TIMEOUT = 30.0
"""Seconds a write to the SQLite file waits while another connection writes (sqlite's default here is 5)."""
_FILLER = frozenset({"a", "an", "the", "for", "of", "on", "to", "and", "with", "about",
                     "build", "create", "make", "write", "implement", "design", "develop"})
THREAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
MAX_SEED = 2**63 - 1
"""The largest offline model seed: a run's settings are stored as 64-bit integers."""
MAX_TASK_CHARS = 20_000
"""The longest task or amendment, in characters (some 3,000 words, ten pages of a spec). The text is copied
into every checkpoint of the run and into the prompts of its agents, so a long one multiplies the db's size and
every model call's cost; longer material goes in a file the team reads."""
MAX_LATENCY = 600.0
"""Simulated seconds per offline model call, at most."""
MAX_ROUNDS = 100
"""Review rounds and tool turns, at most."""
STREAM_MODES: list[StreamMode] = ["updates", "custom"]
REPLAN_GATES = ("approval", "plan")
"""Interrupt kinds an amendment answers at once: the run replans instead of asking."""
EDIT_GATES = ("plan", "escalation")
"""Interrupt kinds whose answer may carry an edit."""
PLAN_GATED = ("hierarchical", "teams")
"""Patterns with a plan gate (`RunContext.approve_plan`)."""
GIVEN_UP = (TaskStatus.FAILED, TaskStatus.BLOCKED)
"""Subtask statuses of work a finished run did not do (skipped subtasks are failed ones, said so)."""
Listener = Callable[[str, Any], None]
"""Receives each streamed event as (stream mode, chunk)."""


def default_db() -> Path | str:
    """`$TROUPE_DB` (a SQLite file, or a PostgreSQL URL), else troupe.sqlite in the user's data folder."""
    if db := os.environ.get("TROUPE_DB"):
        return db if is_postgres(db) else Path(db)
    return data_folder() / "troupe.sqlite"


def data_folder() -> Path:
    """troupe's folder in the user's data folder (`$XDG_DATA_HOME/troupe`)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "troupe"


def serializer() -> JsonPlusSerializer:
    """LangGraph's serializer, allowed to load exactly our checkpointed classes."""
    return JsonPlusSerializer(allowed_msgpack_modules=list(CHECKPOINTED_TYPES))


class RetryingSqliteStore(AsyncSqliteStore):
    """LangGraph's SQLite store, with a batch that met a busy database tried again.

    A batch is one deferred transaction that reads before it writes (its gets and searches, then its puts). When
    another connection — the checkpointer's, another process's — wrote in between, SQLite cannot wait for the write
    lock (the transaction's snapshot is stale) and fails at once with "database is locked", whatever the busy
    timeout. The batch's puts are upserts and its deletes idempotent, so running it again is safe.
    """

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for attempt in range(BUSY_RETRIES - 1):
            try:
                return await super().abatch(ops)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            await asyncio.sleep(0.02 * 2**attempt)
        return await super().abatch(ops)


BUSY_RETRIES = 8
"""Tries of a store batch that met a busy database (waits of 0.02 s doubling: about 5 s in all)."""


def lock_file(db: Path) -> Path:
    """The file locked while the db's schema is set up (left in place: removing a lock file races its users)."""
    return db.with_name(db.name + ".lock")


@asynccontextmanager
async def _setup_lock(db: Path) -> AsyncIterator[None]:
    """Held while the schema is set up, so that any number of processes can open a fresh db at once (LangGraph's
    set-up is not safe to race: two processes both run the store's migrations, and one fails). An exclusive
    `flock` on `lock_file(db)`, released when its descriptor closes, so a killed process never leaves it held.
    No lock where the lock file cannot be made (a read-only folder: nothing can be set up there either)."""
    fd = None
    if sys.platform != "win32":
        with suppress(OSError):
            fd = os.open(lock_file(db), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fd is not None and sys.platform != "win32":
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def check_input(task: str, ctx: RunContext, thread_id: str | None = None) -> None:
    """A TroupeError unless the task, the settings and the thread id can be stored: checked before anything of a
    run is written (else the run would fail at its first write, with nothing saved to resume)."""
    if not task.strip():
        raise TroupeError("the task is empty: say what the team should do")
    check_length("task", task)
    if thread_id is not None and not THREAD_ID.match(thread_id):
        raise TroupeError(f"bad thread id {thread_id!r}: use letters, digits, '-' and '_' (at most 64)")
    try:
        task.encode()
    except UnicodeEncodeError:
        raise TroupeError("the task is not valid UTF-8 text: pass it in UTF-8 (check the terminal's or the file's "
                          "encoding)") from None
    for name, value in asdict(ctx).items():
        texts = [value] if isinstance(value, str) else [*value, *value.values()] if isinstance(value, dict) else []
        for text in texts:
            try:
                str(text).encode()
            except UnicodeEncodeError:
                raise TroupeError(f"the {name} setting is not valid UTF-8 text: pass it in UTF-8") from None
    if isinstance(ctx.seed, bool) or not isinstance(ctx.seed, int) or not 0 <= ctx.seed <= MAX_SEED:
        raise TroupeError(f"seed {ctx.seed!r} is out of range: use a whole number from 0 to {MAX_SEED}")
    if not (isinstance(ctx.latency, int | float) and math.isfinite(ctx.latency) and 0 <= ctx.latency <= MAX_LATENCY):
        raise TroupeError(f"latency {ctx.latency!r} is out of range: use seconds from 0 to {MAX_LATENCY}")
    for name in ("max_review_rounds", "max_tool_turns"):
        value = getattr(ctx, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROUNDS:
            raise TroupeError(f"{name} {value!r} is out of range: use a whole number from 1 to {MAX_ROUNDS}")
    for who, mode in ctx.fail.items():
        kind, _, upto = mode.partition(":")
        if kind not in MODES or (upto and not upto.isdigit()):
            raise TroupeError(f"fail {who}={mode}: the mode is one of {', '.join(MODES)}, optionally ':N'")


def check_length(what: str, text: str) -> None:
    """A TroupeError when the task or amendment `text` is longer than `MAX_TASK_CHARS`."""
    if len(text.strip()) > MAX_TASK_CHARS:
        raise TroupeError(f"the {what} is {len(text.strip())} characters; the limit is {MAX_TASK_CHARS}: put long "
                          "material in a file the team reads, or shorten it")


def listed(names: list[str], most: int = 8) -> str:
    """'a, b, c', or the first `most` names and how many more."""
    more = f", and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


@dataclass
class RunInfo:
    """What the index keeps of a run: enough to resume it with the same settings."""

    thread_id: str
    pattern: str
    task: str
    context: RunContext
    created: float
    team: dict[str, Any] | None = None
    """The team as it was when the run started (None: the team named in the context)."""
    objects: dict[str, list[str]] = field(default_factory=dict)
    """Names of the objects the run was started with ('models', 'tools', 'agents'): a resume needs them again."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        return cls(**{**data, "context": RunContext(**data["context"])})

    def team_spec(self) -> Team:
        if self.team is None:
            return load_team(self.context.team)
        try:
            return Team.model_validate(self.team)
        except ValidationError as exc:  # stored by an older version that checked less
            first = exc.errors()[0]
            raise TroupeError(f"run {self.thread_id!r} was stored with a team this version refuses "
                              f"({'.'.join(map(str, first['loc']))}: {first['msg']}): start it again with a "
                              "corrected team") from None

    @property
    def workspace(self) -> Path:
        return Path(self.context.workspace_root) / self.thread_id


@dataclass
class Outcome:
    """Where a run stands after a call returned."""

    info: RunInfo
    status: str
    values: dict[str, Any]
    interrupt: Any = None
    error: str | None = None
    interrupt_id: str | None = None
    """Which interrupt `interrupt` is: an answer goes to that one when several wait (sibling teams' gates)."""
    owner: str | None = None
    """The process driving the run ('pid 123, host'), when status is 'running'."""

    @property
    def gate(self) -> str | None:
        """The kind of interrupt the run waits at: 'plan', 'authorize', 'escalation' or 'approval' (also when the
        interrupt names no kind); None when it waits at none."""
        if self.status != "awaiting_approval":
            return None
        return str(self.interrupt.get("kind", "approval")) if isinstance(self.interrupt, dict) else "approval"

    @property
    def shortfall(self) -> str | None:
        """Why a run that finished did not do all it set out to (None: it did, or it has not finished): subtasks
        failed, blocked or skipped, dead letters, no safe consensus, a swarm's escalation, a person's rejection."""
        if self.status in ("escalated", "rejected"):
            return {"escalated": "the run escalated to a person", "rejected": "a person rejected it"}[self.status]
        if self.status != "completed":
            return None
        board = self.values.get("board") or {}
        short = [k for k, r in board.items() if isinstance(r, TaskRecord) and r.status in GIVEN_UP]
        if short:
            return f"{len(short)} of {len(board)} subtasks not done ({', '.join(short)})"
        if letters := self.values.get("dead_letters"):
            return f"{len(letters)} events not handled (dead letters)"
        verdict = self.values.get("verdict")
        if isinstance(verdict, dict) and "outcome" in verdict and verdict["outcome"] is None:
            return "no safe consensus"
        return None


class Runner:
    """Runs patterns durably. Use as `async with Runner.open(db) as runner` for a SQLite file or a PostgreSQL URL,
    or construct it with any LangGraph checkpointer and store (set up, and open for as long as the runner is used).

    `models`, `tools` and `agents` are the objects every run of this runner is built with (as for a
    pattern's `build()`); a run started with objects is resumed by a runner given the same ones. `leases` keep
    one process driving a run at a time (default: among this process's runners only); `workspaces` is where run
    workspaces go when the run's settings name none (default: ./workspaces); `where` names the database in messages.
    """

    def __init__(self, saver: BaseCheckpointSaver[Any], store: BaseStore, *, models: Models = None,
                 tools: Tools = None, agents: Agents = None, wait: bool = False, leases: Leases | None = None,
                 workspaces: Path | None = None, where: str = "this runner's database") -> None:
        self.saver, self.store, self.where, self.workspaces = saver, store, where, workspaces
        self.models, self.tools, self.agents = models, tools, agents
        self.leases, self.wait = leases or Leases.in_process(), wait
        self._held: set[str] = set()
        self._graphs: dict[tuple[str, str], CompiledStateGraph[Any, Any, Any, Any]] = {}
        """Compiled graphs by (pattern, the team as JSON): compiling takes tens of milliseconds, a run reuses it."""

    @classmethod
    @asynccontextmanager
    async def open(cls, db: Path | str, *, models: Models = None, tools: Tools = None,
                   agents: Agents = None, wait: bool = False) -> AsyncIterator[Runner]:
        """Open (creating it if new) the database `db`: a SQLite file's path, or a PostgreSQL URL
        (`postgresql://user@host:port/name`, with `troupe[postgres]` installed). Another application's database is
        refused before anything is written to it (`graphs.database`). A run is driven by one process at a time
        (see `graphs.lease`): a call on a run another live process drives fails, or with `wait` waits for it."""
        objects: dict[str, Any] = {"models": models, "tools": tools, "agents": agents, "wait": wait}
        if is_postgres(db):
            from graphs.postgres import opened

            async with opened(str(db)) as (saver, store):
                yield cls(saver, store, leases=Leases(str(db)), workspaces=data_folder() / "workspaces",
                          where=shown(db), **objects)
            return
        db = Path(db)
        async with AsyncExitStack() as stack:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
                # Two connections (and other processes) share the file: a writer waits up to BUSY_TIMEOUT for another.
                saver = AsyncSqliteSaver(await stack.enter_async_context(aiosqlite.connect(db, timeout=BUSY_TIMEOUT)),
                                         serde=serializer())
                store = RetryingSqliteStore(await stack.enter_async_context(
                    aiosqlite.connect(db, timeout=BUSY_TIMEOUT, isolation_level=None)),
                    index=semantic_index(["text"], store="sqlite"))  # None: the context store searches by words
                async with _setup_lock(db):
                    if tables := await asyncio.to_thread(foreign_tables, db):
                        raise TroupeError(f"{db} is another application's database (tables: {listed(tables)}): "
                                          "point --db or $TROUPE_DB at a troupe database or a new file")
                    await saver.setup()
                    await store.setup()
                    await asyncio.to_thread(Leases(db).setup)
            except (sqlite3.Error, OSError) as exc:  # a folder, a text file, /dev/null, a path under a file, ...
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise TroupeError(f"cannot use {db} as troupe's database ({why}): point --db or $TROUPE_DB at a "
                                  "SQLite file troupe can create or open") from None
            yield cls(saver, store, leases=Leases(db), workspaces=db.parent / "workspaces", where=str(db), **objects)

    def compile(self, info: RunInfo) -> CompiledStateGraph[Any, Any, Any, Any]:
        """The run's graph with this runner's objects, ready to drive."""
        return self._compiled(info.pattern, info.team_spec())

    def _compiled(self, pattern: str, team: Team) -> CompiledStateGraph[Any, Any, Any, Any]:
        """`pattern`'s graph for `team`, built (which checks its settings) and compiled once per runner."""
        key = (pattern, team.model_dump_json())
        if key not in self._graphs:
            try:
                graph = builder(pattern)(team=team, models=self.models, tools=self.tools, agents=self.agents)
            except (LookupError, TeamError, ModelSpecError) as exc:
                raise TroupeError(str(exc).strip("'\"")) from None
            self._graphs[key] = graph.compile(checkpointer=self.saver, store=self.store, name=pattern)
        return self._graphs[key]

    def _kit(self, team: Team | None) -> Kit:
        """This runner's objects with `team`, checked against it (None: no team to check against)."""
        return Kit.create(team=team, models=self.models, tools=self.tools, agents=self.agents)

    def reader(self, info: RunInfo) -> CompiledStateGraph[Any, Any, Any, Any]:
        """The run's graph for reading its state: the one that drives it where this runner can drive it (compiled
        once for both), else one that needs none of the objects, so any process can inspect any run."""
        try:
            self._require_objects(info)
            return self.compile(info)
        except TroupeError:  # started with objects this runner lacks, or a team that no longer builds
            pass
        key = (info.pattern, "")
        if key not in self._graphs:
            self._graphs[key] = builder(info.pattern)().compile(checkpointer=self.saver, store=self.store,
                                                                name=info.pattern)
        return self._graphs[key]

    async def start(self, pattern: str, task: str, ctx: RunContext | None = None, *,
                    team: Team | str | Path | None = None, thread_id: str | None = None,
                    listener: Listener | None = None) -> Outcome:
        """Start a new run of `pattern` on `task`; returns at the approval gate or the end.

        `pattern` is a pattern's name or a recipe's (a team that names its pattern); `ctx` holds the run's
        settings (default: `RunContext()`); `team` is a `Team`, a team file's path or a team's name (default:
        the one `ctx.team` names).
        """
        info = self._new_run(pattern, task, ctx, team, thread_id)
        async with self._owning(info.thread_id):
            await self._record(info)
            return await self._drive(info, {"task": info.task}, listener)

    async def create(self, pattern: str, task: str, ctx: RunContext | None = None, *,
                     team: Team | str | Path | None = None, thread_id: str | None = None) -> RunInfo:
        """Record a new run as `start` does, checked the same way, without driving it: `resume` starts it from its
        task, in this process or any other that shares the database (a queue worker: `graphs.queue`)."""
        info = self._new_run(pattern, task, ctx, team, thread_id)
        async with self._owning(info.thread_id):
            await self._record(info)
        return info

    def _new_run(self, pattern: str, task: str, ctx: RunContext | None, team: Team | str | Path | None,
                 thread_id: str | None) -> RunInfo:
        """A new run's index entry, once its pattern, task, settings and team are checked (nothing is written)."""
        ctx = ctx or RunContext()
        try:
            pattern, team = resolve(pattern, team)
        except LookupError as exc:
            raise TroupeError(str(exc)) from None
        task = task.strip()
        check_input(task, ctx, thread_id)
        if ctx.approve_plan and pattern not in PLAN_GATED:
            raise TroupeError(f"a {pattern} run has no plan to approve: approve_plan (--approve-plan) works on "
                              f"{' and '.join(PLAN_GATED)} runs and the recipes that run them")
        try:
            chosen = load_team(team if team is not None else ctx.team)
            kit = self._kit(chosen)
            kit.check(chosen, ctx)
        except (LookupError, TeamError, ModelSpecError) as exc:
            raise TroupeError(str(exc).strip("'\"")) from None
        self._compiled(pattern, chosen)  # builds it, which checks its settings
        thread_id = thread_id or new_thread_id(task)
        default_root = self.workspaces if ctx.workspace_root == RunContext.workspace_root else None
        ctx = replace(ctx, team=chosen.name, workspace_root=str(Path(default_root or ctx.workspace_root).resolve()))
        return RunInfo(thread_id=thread_id, pattern=pattern, task=task, context=ctx, created=time.time(),
                       team=chosen.model_dump(mode="json"), objects=_object_names(kit, chosen))

    async def _record(self, info: RunInfo) -> None:
        """Put a new run in the index (its lease held). The run exists from here on, with or without a checkpoint:
        a run killed before its first one is started again from its task by `resume` (see there)."""
        if await self.store.aget(INDEX, info.thread_id) is not None:
            raise TroupeError(f"thread {info.thread_id!r} already exists: resume it with "
                              f"`troupe resume {info.thread_id}`")
        await self.store.aput(INDEX, info.thread_id, asdict(info), index=False)

    async def resume(self, thread_id: str, *, settings: dict[str, Any] | None = None,
                     listener: Listener | None = None) -> Outcome:
        """Continue a stopped, failed or killed run from its last saved super-step.

        `settings` changes stored run settings first (e.g. `{"model": ...}` or `{"base_url": ...}`
        when the model was the cause of the failure); the new ones are kept for later resumes.
        """
        async with self._owning(thread_id):
            info = await self.info(thread_id)
            outcome = await self.outcome(info)
            if outcome.status in ("completed", "rejected"):
                raise TroupeError(f"run {thread_id!r} is already {outcome.status}; nothing to resume")
            if settings:
                self._require_objects(info)
                info.context = replace(info.context, **settings)
                try:
                    self._kit(None).check(info.team_spec(), info.context)
                except (LookupError, TeamError, ModelSpecError) as exc:
                    raise TroupeError(str(exc).strip("'\"")) from None
                await self.store.aput(INDEX, thread_id, asdict(info), index=False)
            if outcome.status == "awaiting_approval":
                return outcome
            if outcome.status == "out_of_budget":
                await self._check_budget_raised(info)
                snapshot = await self.reader(info).aget_state(_config(info))
                return await self._drive(info, Command(resume={i.id: "raised" for i in snapshot.interrupts}), listener)
            # No checkpoint yet (killed between its index entry and its first checkpoint): start it from its task.
            started = await self.saver.aget_tuple(_config(info)) is not None
            return await self._drive(info, None if started else {"task": info.task}, listener)

    async def history(self, thread_id: str) -> list[CheckpointTuple]:
        """The run's checkpoints, oldest first (what `fork` can start from)."""
        return await root_checkpoints(self.saver, (await self.info(thread_id)).thread_id)

    async def fork(self, thread_id: str, at: str, *, new_thread: str | None = None,
                   settings: dict[str, Any] | None = None, listener: Listener | None = None) -> Outcome:
        """Start a new run from checkpoint `at` of run `thread_id` (an id, a unique start of one, or its number in
        `history`), with the old run's settings changed by `settings`; the old run is left as it was."""
        info = await self.info(thread_id)
        try:
            point = find(await self.history(thread_id), at)
        except LookupError as exc:
            raise TroupeError(f"run {thread_id!r}: {exc}") from None
        new_thread = new_thread or new_thread_id(f"{thread_id} fork")
        if not THREAD_ID.match(new_thread):
            raise TroupeError(f"bad thread id {new_thread!r}: use letters, digits, '-' and '_' (at most 64)")
        forked = replace(info, thread_id=new_thread, created=time.time(),
                         context=replace(info.context, **(settings or {})))
        try:
            self._kit(None).check(forked.team_spec(), forked.context)
        except (LookupError, TeamError, ModelSpecError) as exc:
            raise TroupeError(str(exc).strip("'\"")) from None
        async with self._owning(new_thread):
            if await self.store.aget(INDEX, new_thread) is not None:
                raise TroupeError(f"thread {new_thread!r} already exists: fork into another (--thread ID)")
            await copy_thread(self.saver, thread_id, new_thread, point.config["configurable"]["checkpoint_id"])
            await copy_records(self.store, thread_id, new_thread, created(point))
            await copy_workspace(info.workspace, forked.workspace)
            await self.store.aput(INDEX, new_thread, asdict(forked), index=False)
            return await self._drive(forked, None, listener)

    async def approve(self, thread_id: str, decision: Decision, *, listener: Listener | None = None) -> Outcome:
        """Answer a run waiting at an approval gate (the first, when several wait) and carry it on."""
        async with self._owning(thread_id):
            info = await self.info(thread_id)
            outcome = await self.outcome(info)
            if outcome.status != "awaiting_approval":
                raise TroupeError(f"run {thread_id!r} is not waiting for approval (status: {outcome.status})")
            if decision.edit is not None and outcome.gate not in EDIT_GATES:
                raise TroupeError(f"run {thread_id!r} waits at its {outcome.gate} gate, which takes no edit: an edit "
                                  "answers a plan gate (a changed plan) or an escalation (subtask fields to change)")
            return await self._drive(info, Command(resume={outcome.interrupt_id: decision.model_dump()}), listener)

    async def amendable(self, thread_id: str, text: str) -> Outcome:
        """Where the run stands, if `text` can be added to its scope; else a TroupeError that says why not."""
        if not text.strip():
            raise TroupeError("the amendment is empty: say what to add, e.g. \"Also add OAuth login\"")
        check_length("amendment", text)
        info = await self.info(thread_id)
        if info.pattern != "hierarchical":
            raise TroupeError(f"run {thread_id!r} is a {info.pattern} run: amend works on hierarchical runs and "
                              "the recipes that run it")
        outcome = await self.outcome(info)
        if outcome.status in ("completed", "rejected"):
            raise TroupeError(f"run {thread_id!r} is already {outcome.status}: start a new run with the addition")
        if outcome.gate in REPLAN_GATES:
            self._require_objects(info)
        return outcome

    async def amend(self, thread_id: str, text: str, *, listener: Listener | None = None) -> Outcome:
        """Add `text` to a hierarchical run's scope: its supervisor decomposes it into new subtasks wired into the
        plan, keeps finished work, and journals a REPLAN.

        A run waiting at its plan gate or its final approval gate replans at once, and the outcome is where it
        then stands. Otherwise the amendment waits in the run's inbox and the outcome is unchanged: a run going
        on in another process plans it at its next step, a stopped one when resumed, one waiting at a subtask's
        gate or an escalation after that answer.
        """
        outcome = await self.amendable(thread_id, text)
        if outcome.gate not in REPLAN_GATES:
            await post_amendment(self.store, thread_id, text.strip())
            return outcome
        async with self._owning(thread_id):
            outcome = await self.amendable(thread_id, text)  # again, now that no one else can answer the gate
            await post_amendment(self.store, thread_id, text.strip())
            if outcome.gate not in REPLAN_GATES:
                return outcome
            return await self._drive(outcome.info, Command(resume={outcome.interrupt_id: {"amended": True}}),
                                     listener)

    @asynccontextmanager
    async def _owning(self, thread_id: str) -> AsyncIterator[None]:
        """Hold the run's lease for the block: a TroupeError when another live process drives the run (unless this
        runner waits)."""
        if not THREAD_ID.match(thread_id):
            await self.info(thread_id)  # says there is no such run
        try:
            async with self.leases.held(thread_id, wait=self.wait):
                self._held.add(thread_id)
                try:
                    yield
                finally:
                    self._held.discard(thread_id)
        except Busy as busy:
            raise TroupeError(f"run {thread_id!r} is running in another process ({busy.owner}): wait for it to "
                              "stop, or pass --wait to carry on after it") from None

    async def info(self, thread_id: str) -> RunInfo:
        item = await self.store.aget(INDEX, thread_id) if THREAD_ID.match(thread_id) else None
        if item is None:
            raise TroupeError(f"no run with thread id {thread_id!r} in {self.where} (see `troupe runs`)")
        return RunInfo.from_dict(item.value)

    async def runs(self) -> list[RunInfo]:
        return sorted((RunInfo.from_dict(v) for v in await read_all(self.store, INDEX)), key=lambda i: i.created)

    async def outcome(self, info: RunInfo) -> Outcome:
        """The run's status: running (another live process drives it), else from its latest checkpoint:
        awaiting_approval, stopped, failed, completed, rejected (a run with no checkpoint yet is stopped: `resume`
        starts it)."""
        snapshot = await self.reader(info).aget_state(_config(info))
        errors = [t.error for t in snapshot.tasks if t.error and not _cancelled(t.error)]
        owner = None if info.thread_id in self._held else await asyncio.to_thread(self.leases.owner, info.thread_id)
        if owner is not None:
            status = "running"
        elif snapshot.interrupts:
            status = "out_of_budget" if all(_is_budget(i.value) for i in snapshot.interrupts) else "awaiting_approval"
        elif errors:
            status = "failed"
        elif snapshot.tasks or not snapshot.values:  # tasks left, done or not: its last step never finished
            status = "stopped"
        else:
            status = snapshot.values.get("status", "stopped")
        # A gate a person answers comes before a budget stop, when both wait (parallel branches).
        first = next((i for i in snapshot.interrupts if not _is_budget(i.value)), None) or \
            (snapshot.interrupts[0] if snapshot.interrupts else None)
        error = next((e if isinstance(e, str) else f"{type(e).__name__}: {e}" for e in errors), None)
        return Outcome(info, status, dict(snapshot.values), first.value if first else None, error,
                       first.id if first else None, str(owner) if owner else None)

    async def _check_budget_raised(self, info: RunInfo) -> None:
        """A run out of budget goes on only once its budget (as its settings now say) has room."""
        used, _ = totals(await read_calls(self.store, info.thread_id))
        budget = (info.team_spec().budget or Budget()).for_run(info.context)
        if budget.fraction(used) >= 1:
            spent = f"{used.tokens:,} tokens" + (f", ${used.usd:,.4f}" if used.usd else "")
            raise TroupeError(f"run {info.thread_id!r} has spent its budget ({spent} of {budget.describe()}): resume "
                              "it with a larger one, e.g. --budget-tokens N or --budget-usd X")

    async def calls(self, thread_id: str) -> list[Call]:
        return await read_calls(self.store, thread_id)

    async def journal(self, thread_id: str) -> list[AnyMessage]:
        return await read_messages(self.store, thread_id)

    async def progress(self, thread_id: str) -> list[ProgressRecord]:
        return await read_progress(self.store, thread_id)

    def _require_objects(self, info: RunInfo) -> None:
        """A run started with objects goes on only with the same ones (by name), never silently without them."""
        held = _object_names(self._kit(None), info.team_spec())
        missing = {kind: sorted(set(names) - set(held[kind])) for kind, names in info.objects.items()}
        if wanted := "; ".join(f"{kind}={names}" for kind, names in missing.items() if names):
            raise TroupeError(f"run {info.thread_id!r} was started with objects this runner lacks ({wanted}): "
                              "open the Runner with the same models=, tools= and agents= to carry it on")

    async def _drive(self, info: RunInfo, payload: Any, listener: Listener | None) -> Outcome:
        await asyncio.to_thread(sweep, info.workspace)  # temp files a killed write left behind
        await materialize(self.store, info.thread_id, info.workspace)  # files this host lacks (another wrote them)
        self._require_objects(info)
        Meter.forget(self.store, info.thread_id)  # another process may have driven it since: count afresh
        graph = self.compile(info)
        stream = graph.astream(payload, _config(info), context=info.context, stream_mode=STREAM_MODES,
                               durability="sync")
        async for mode, chunk in stream:
            if listener is not None:
                listener(mode, chunk)
        return await self.outcome(info)


def resolve(name: str, team: Team | str | Path | None = None) -> tuple[str, Team | str | Path | None]:
    """(pattern, team) for a pattern name, or for a recipe: a team whose file names the pattern it runs."""
    if name in PATTERNS:
        return name, team
    try:
        recipe = load_team(name)
    except TeamError:
        raise LookupError(f"unknown pattern or recipe {name!r}; patterns: {', '.join(PATTERNS)}; recipes: "
                          f"{', '.join(recipes()) or 'none'}") from None
    if recipe.pattern is None:
        raise LookupError(f"team {name!r} names no pattern: run it as `troupe run hierarchical TASK --team {name}`")
    if team is not None:
        raise LookupError(f"recipe {name!r} brings its own team: drop --team/--team-file, or run a pattern")
    if recipe.pattern not in PATTERNS:
        raise LookupError(f"recipe {name!r} names unknown pattern {recipe.pattern!r}; known: {', '.join(PATTERNS)}")
    return recipe.pattern, recipe


def recipes() -> dict[str, Team]:
    """The ready-made teams that name their pattern, by name (the first found of each name)."""
    found: dict[str, Team] = {}
    for entry in available():
        if entry.name not in found:
            with suppress(TeamError):
                team = read_team(entry.path)
                if team.pattern:
                    found[entry.name] = team
    return found


def _object_names(kit: Kit, team: Team) -> dict[str, list[str]]:
    """The names of the objects a run depends on: model keys, the team's tools it was given, agents."""
    used = {t for r in team.roles for t in r.tools if mcp_server_of(t) is None}
    return {"models": sorted(kit.models), "tools": sorted(set(kit.tools) & used), "agents": sorted(kit.agents)}


def _is_budget(request: Any) -> bool:
    return isinstance(request, dict) and request.get("kind") == BUDGET


def _cancelled(error: Exception | str) -> bool:
    """A task error that only says the process was interrupted (Ctrl-C): the run stopped, it did not fail. A
    checkpoint read back gives the error as its text, e.g. 'CancelledError()'."""
    return isinstance(error, asyncio.CancelledError) or (isinstance(error, str) and error.startswith("CancelledError"))


def _config(info: RunInfo) -> RunnableConfig:
    return {"configurable": {"thread_id": info.thread_id}}


def new_thread_id(task: str) -> str:
    """A readable, unique thread id made from the task, e.g. 'rest-api-todo-3f9a'."""
    words = [w for w in re.findall(r"[a-z0-9]+", task.lower()) if w not in _FILLER][:3] or ["run"]
    return f"{'-'.join(words)}-{uuid.uuid4().hex[:4]}"
