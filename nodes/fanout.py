"""Fan-out under a cap: split a task into independent parts, dispatch them in waves, fail branches alone.

`splitter` asks the planner for independent sub-problems and gives each to a role by capability.
`dispatcher` runs after every super-step: it sends (`Send`) at most `max_concurrency` agents at a
time, each under `agent_timeout` (the pushed task's node timeout), and moves on to `finish` when
every part is done or failed. `branch_failed` is a node's `error_handler`: a branch that raised or
timed out after its retries is marked FAILED with the reason, and the run goes on.

Without review the pattern is one fan-out and cannot loop. With review a part sent back goes round again, at most
`max_review_rounds` times; when the reviewer sends it back with the same unmet criteria as the round before, another
round would repeat it, so the part fails at once with the reason and a "loop detected" CHECKPOINT (`stop_on_repeat`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langgraph.errors import NodeError, NodeTimeoutError
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import ValidationError

from nodes import scope, spending
from nodes.briefs import prompt
from nodes.kit import Kit
from nodes.models import is_transient
from nodes.supervisor import NAME, PlanningError, ask_planner
from state.channels import Payload, parse, payload
from state.context import RunContext
from state.loops import loop_detected, signature
from state.parallel import ParallelSettings, ParallelState, Part, Split
from state.plan import TERMINAL, Plan, PlannedTask, TaskRecord, TaskStatus
from state.protocol import AnyMessage, CheckpointMsg, Progress, TaskAssign
from state.roles import Team, TeamError
from state.team import ReviewOrder, WorkOrder, plan_writes
from tools.journal import Write

PATTERN = "parallel"

SPLITTER_PROMPT = """You are the supervisor of a team of specialists. You split a task into sub-problems that \
specialists solve independently and at the same time: no part may need another part's result."""

SPLIT_INSTRUCTIONS = """Split the task below into independent parts. When it names several items (products, \
options, regions), give each item its own part. Give every part a short id (T1, T2, ...), one capability taken \
from the roles' capabilities, and 2-4 checkable acceptance criteria."""


def settings(kit: Kit, team: Team | None, overrides: Mapping[str, Any]) -> ParallelSettings:
    """The team file's `patterns.parallel` section, then `build()` keywords (None: unset); no team: the keywords."""
    if team is not None:
        return kit.settings(team, PATTERN, ParallelSettings, overrides)
    try:
        return ParallelSettings.model_validate({k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TeamError(f"{PATTERN} setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def splitter(kit: Kit) -> Callable[..., Awaitable[dict]]:
    """The split node: the task as independent parts, each assigned to a role of the team."""

    async def split(state: ParallelState, runtime: Runtime[RunContext]) -> dict:
        task = (state.get("task") or "").strip()
        if not task:
            raise PlanningError("the task is empty: say what the team should do")
        team = await kit.team_for(runtime)
        brief = {"task": task, "roles": [{"name": r.name, "capabilities": r.capabilities} for r in team.roles]}
        parts = await ask_planner(kit, runtime, Split, prompt(SPLITTER_PROMPT, SPLIT_INSTRUCTIONS, brief),
                                  "a valid split")
        tasks, notes = assign(parts.parts, team)
        await scope.journal(runtime).post(CheckpointMsg(
            sender=NAME, recipient="team", correlation_id="plan", label="split ready",
            note=" ".join([parts.summary, *notes])))
        return plan_writes(Plan(summary=parts.summary, tasks=tasks)) | {
                "status": "working", "wave": 0}

    return split


def assign(parts: Sequence[Part], team: Team) -> tuple[list[PlannedTask], list[str]]:
    """Each part to a role that lists its capability (main skill first; several such roles take turns).

    A capability no role lists goes to the team's roles in turn, and a note says so.
    """
    turns: dict[str, int] = {}
    spare = 0
    tasks: list[PlannedTask] = []
    notes: list[str] = []
    for part in parts:
        cap = part.capability.strip().lower()
        able = sorted((r for r in team.roles if cap in (c.lower() for c in r.capabilities)),
                      key=lambda r: r.capabilities[0].lower() != cap)
        if able:
            role = able[turns.get(cap, 0) % len(able)]
            turns[cap] = turns.get(cap, 0) + 1
        else:
            role, spare = team.roles[spare % len(team.roles)], spare + 1
            notes.append(f"No role lists {part.capability!r}: {part.id} goes to {role.name} in turn.")
        tasks.append(PlannedTask(**part.model_dump(), depends_on=[], assignee=role.name))
    return tasks, notes


def dispatcher(kit: Kit, overrides: Mapping[str, Any], *, work: str, review: str, finish: str
               ) -> Callable[..., Awaitable[Command]]:
    """The dispatch node: the next wave (at most `max_concurrency` agents), or `finish` when all parts settled."""

    async def dispatch(state: ParallelState, runtime: Runtime[RunContext]) -> Command:
        cfg = settings(kit, await kit.team_for(runtime), overrides)
        plan = state["plan"]
        assert plan is not None, "dispatch runs after split"
        board, changed = dict(state["board"]), {}
        verdicts = dict(state.get("verdicts") or {})
        messages: list[AnyMessage] = []
        progress: list[Write] = []
        reviews: list[PlannedTask] = []
        rework: list[PlannedTask] = []
        fresh: list[PlannedTask] = []
        for t in plan.tasks:
            rec = board[t.id]
            if rec.status == TaskStatus.IN_REVIEW and not cfg.review:
                board[t.id] = changed[t.id] = rec.model_copy(update={"status": TaskStatus.DONE})
                messages.append(Progress(sender=NAME, recipient=t.assignee, correlation_id=t.id,
                                         note="accepted without review (review is off)"))
            elif rec.status == TaskStatus.IN_REVIEW:
                reviews.append(t)
            elif rec.status == TaskStatus.ASSIGNED:  # the reviewer sent it back: again, unless that repeats
                sig = signature(sorted(rec.feedback))
                if cfg.stop_on_repeat and verdicts.get(t.id) == sig:
                    board[t.id] = changed[t.id] = await _loop(runtime, t, rec, messages)
                else:
                    verdicts[t.id] = sig
                    rework.append(t)
            elif rec.status == TaskStatus.PENDING:
                fresh.append(t)
            elif rec.status not in TERMINAL:
                raise RuntimeError(f"part {t.id} is still {rec.status.value} after its step ended")
        queue = [*reviews, *rework, *fresh]  # what was started finishes first
        budget = await kit.budget_for(runtime)
        if queue and (why := await spending.wrapping_up(runtime, budget)):
            for t in queue:
                board[t.id] = changed[t.id] = board[t.id].model_copy(
                    update={"status": TaskStatus.FAILED, "reason": f"not finished: {why}"})
            queue = []
        width = await spending.narrowed(runtime, budget, cfg.max_concurrency)
        wave, waiting = queue[:width], len(queue) - width
        if not wave:
            return await _finish(runtime, plan, board, changed, messages, finish)
        number, reviewing = state.get("wave", 0) + 1, {t.id for t in reviews}
        who = ", ".join(f"{t.id} ({'reviewer' if t.id in reviewing else t.assignee})" for t in wave)
        note = f"{len(wave)} of {width} slots, {cfg.agent_timeout:g} s each: {who}"
        note += f"; {waiting} waiting" if waiting > 0 else ""
        messages.append(CheckpointMsg(sender=NAME, recipient="team", correlation_id=f"wave-{number}",
                                      label=f"wave {number}", note=note))
        sends: list[Send] = []
        for t in wave:
            rec = board[t.id]
            if t.id in reviewing and rec.artifact:
                sends.append(Send(review, payload(ReviewOrder(subtask=t, path=rec.artifact, round=rec.round)),
                                  timeout=cfg.agent_timeout))
                continue
            rec = changed[t.id] = rec.model_copy(update={"status": TaskStatus.IN_PROGRESS, "round": rec.round + 1})
            sends.append(Send(work, payload(WorkOrder(subtask=t, round=rec.round, feedback=rec.feedback)),
                              timeout=cfg.agent_timeout))
            messages.append(TaskAssign(sender=NAME, recipient=t.assignee, correlation_id=t.id, title=t.title,
                                       round=rec.round, feedback=rec.feedback,
                                       reason=f"the splitter gave it part {t.id}" + (
                                           f"; round {rec.round}: the review asked for changes" if rec.round > 1
                                           else "")))
            progress.append(scope.progress_write(runtime, t.id, rec.status, t.assignee, rec.round))
        await scope.journal(runtime).post(*messages, also=progress)
        return Command(goto=sends, update={"board": payload(changed), "wave": number, "verdicts": verdicts})

    return dispatch


async def _loop(runtime: Runtime[RunContext], t: PlannedTask, rec: TaskRecord, messages: list[AnyMessage]
                ) -> TaskRecord:
    """A part sent back with the same unmet criteria as the round before: it fails now, with the reason."""
    reason = (f"the reviewer sent it back in round {rec.round} with the same unmet criteria as in round "
              f"{rec.round - 1}: {'; '.join(rec.feedback)}")
    messages.append(loop_detected(sender=NAME, recipient=t.assignee, correlation_id=t.id, reason=(
        f"{reason}; another round (of at most {scope.settings(runtime).max_review_rounds}) would repeat it, so {t.id} "
        "fails now")))
    await scope.progress(runtime, t.id, TaskStatus.FAILED, t.assignee, rec.round)
    return rec.model_copy(update={"status": TaskStatus.FAILED, "reason": reason})


async def _finish(runtime: Runtime[RunContext], plan: Plan, board: dict[str, TaskRecord],
                  changed: dict[str, TaskRecord], messages: list[AnyMessage], finish: str) -> Command:
    """Every part settled: say what is done and what is missing (and why), then go to `finish`."""
    done = [t.id for t in plan.tasks if board[t.id].status == TaskStatus.DONE]
    missing = [f"{t.id}: {board[t.id].reason}" for t in plan.tasks if board[t.id].status != TaskStatus.DONE]
    note = f"{len(done)}/{len(plan.tasks)} parts done" + (f"; missing: {'; '.join(missing)}" if missing else "")
    messages.append(CheckpointMsg(sender=NAME, recipient="synthesizer", correlation_id="synthesis",
                                  label="parts settled", note=note))
    await scope.journal(runtime).post(*messages)
    return Command(goto=finish, update={"board": payload(changed)})


def branch_failed(*, agent: str | None, attempts: int, then: str) -> Callable[..., Awaitable[Command]]:
    """An `error_handler` for a branch node: its part FAILED with the reason, then on to `then`.

    `agent` names who failed (None: the part's assignee); `attempts` is the node's retry policy's limit.
    """

    async def failed(state: Payload, error: NodeError, runtime: Runtime[RunContext]) -> Command:
        task, rnd = parse(PlannedTask, state["subtask"]), state["round"]  # a WorkOrder's or a ReviewOrder's
        reason = why(error.error, attempts)
        who = agent or task.assignee
        await scope.journal(runtime).post(Progress(sender=who, recipient=NAME, correlation_id=task.id,
                                                   note=f"failed: {reason}"))
        await scope.progress(runtime, task.id, TaskStatus.FAILED, task.assignee, rnd)
        record = {"status": TaskStatus.FAILED, "reason": reason}
        return Command(update={"board": payload({task.id: record})}, goto=then)

    return failed


def why(exc: BaseException, attempts: int) -> str:
    """'timed out after 0.5 s on each of 3 attempts', or the error's type and first line."""
    tried = attempts if isinstance(exc, Exception) and is_transient(exc) else 1
    if isinstance(exc, NodeTimeoutError):
        return f"timed out after {exc.timeout:g} s" + (f" on each of {tried} attempts" if tried > 1 else "")
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:200] + (f" (gave up after {tried} attempts)" if tried > 1 else "")
