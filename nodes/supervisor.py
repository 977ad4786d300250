"""The supervisor: plans the work, then dispatches ready subtasks and artifacts to review.

`plan` asks the planner model for a decomposition and assigns each subtask to a role by
capability. `dispatcher` is the supervisor's deterministic half: after every super-step it
reads the task board and fans out, with `Send`, every subtask whose dependencies are done and
every artifact waiting for review; when nothing is left it moves on to the approval gate.

Team-file settings (`patterns.hierarchical`, `HierarchicalSettings`): `reviewer` names a team role that
reviews in place of the built-in reviewer; `approve_before` names roles whose subtasks wait at `authorize`
(an `interrupt`) for a person's approval before they are assigned: a rejected one is BLOCKED, with its
dependents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import BaseMessage
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nodes import scope
from nodes.approval import ask_person
from nodes.briefs import prompt
from nodes.kit import Kit
from state.context import RunContext
from state.plan import TERMINAL, Plan, PlanDraft, PlannedTask, TaskRecord, TaskStatus
from state.protocol import AnyMessage, Blocker, CheckpointMsg, TaskAssign
from state.roles import Role, Team, TeamError
from state.team import Handoff, ReviewOrder, TeamState, WorkOrder

NAME = "supervisor"

P = TypeVar("P", bound=BaseModel)

PLANNER_PROMPT = """You are the supervisor of a team of specialists. You decompose a task into subtasks that \
specialists can do independently, with explicit dependencies, so that independent subtasks run in parallel."""

PLAN_INSTRUCTIONS = """Decompose the task below. Give every subtask a short id (T1, T2, ...), one capability taken \
from the roles' capabilities, the ids it depends on, and 2-4 checkable acceptance criteria."""


class PlanningError(RuntimeError):
    """The planner could not produce a usable plan."""


class HierarchicalSettings(BaseModel):
    """The team file's `patterns.hierarchical` section."""

    model_config = ConfigDict(extra="forbid")

    reviewer: str | None = Field(default=None, description="A team role that reviews every artifact with its own "
                                 "prompt and model (default: the built-in reviewer).")
    approve_before: list[str] = Field(default_factory=list, description="Roles whose subtasks wait for a person's "
                                      "approval before they are assigned (bookings, payments).")


def settings(kit: Kit, team: Team) -> HierarchicalSettings:
    """The team's hierarchical settings, every role they name checked against the team."""
    found = kit.settings(team, "hierarchical", HierarchicalSettings, {})
    names = [r.name for r in team.roles]
    named: list[tuple[tuple[str | int, ...], str]] = [(("reviewer",), found.reviewer)] if found.reviewer else []
    named += [(("approve_before", i), name) for i, name in enumerate(found.approve_before)]
    for loc, name in named:
        if name not in names:
            raise TeamError(f"{team.where('patterns', 'hierarchical', *loc)}: no role {name!r} in team {team.name!r} "
                            f"(roles: {', '.join(names)})")
    return found


def review_role(kit: Kit) -> Callable[[Team], Role | None]:
    """Which team role reviews (None: the built-in reviewer), for `reviewer.reviewer(kit, by=...)`."""

    def role(team: Team) -> Role | None:
        name = settings(kit, team).reviewer
        return team.role(name) if name else None

    return role


async def ask_planner(kit: Kit, runtime: Runtime[RunContext], schema: type[P], messages: list[BaseMessage],
                      what: str) -> P:
    """The planner model's structured answer; one that does not fit `schema` is a PlanningError ("not {what}")."""
    chat = kit.model("planner", runtime, agent=NAME, attempt=scope.attempt(runtime))
    try:
        return schema.model_validate(await chat.with_structured_output(schema).ainvoke(messages))
    except (ValidationError, OutputParserException) as exc:
        raise PlanningError(f"the planner's answer is not {what}: {str(exc).splitlines()[0]}") from exc


def planner(kit: Kit) -> Callable[..., Awaitable[dict]]:
    """The plan node: decomposes the task and assigns each subtask to the team's role for its capability."""

    async def plan(state: TeamState, runtime: Runtime[RunContext]) -> dict:
        task = (state.get("task") or "").strip()
        if not task:
            raise PlanningError("the task is empty: say what the team should do")
        team = await kit.team_for(runtime)
        brief = {"task": task, "roles": [{"name": r.name, "capabilities": r.capabilities} for r in team.roles]}
        messages = prompt(PLANNER_PROMPT, PLAN_INSTRUCTIONS, brief)
        draft = await ask_planner(kit, runtime, PlanDraft, messages, "a valid plan")
        try:
            tasks = [PlannedTask(**s.model_dump(), assignee=team.for_capability(s.capability).name)
                     for s in draft.subtasks]
        except LookupError as exc:
            raise PlanningError(str(exc)) from exc
        await scope.journal(runtime).post(
            CheckpointMsg(sender=NAME, recipient="team", correlation_id="plan", label="plan ready", note=draft.summary)
        )
        return {"plan": Plan(summary=draft.summary, tasks=tasks), "board": {t.id: TaskRecord() for t in tasks},
                "status": "working"}

    return plan


def dispatcher(*, work: str, review: str, finish: str, kit: Kit | None = None, authorize: str | None = None
               ) -> Callable[..., Awaitable[Command]]:
    """The dispatch node, sending subtasks to `work`, artifacts to `review`, and the run to `finish` when done.

    With `kit` and `authorize`, a first-round subtask of a role in the team's `approve_before` goes to
    `authorize` instead of `work`, one at a time (one person's answer resumes one interrupt).
    """

    async def dispatch(state: TeamState, runtime: Runtime[RunContext]) -> Command:
        plan = state["plan"]
        assert plan is not None, "dispatch runs after plan"
        gated = set(settings(kit, await kit.team_for(runtime)).approve_before) if kit and authorize else set()
        gating = False
        board = dict(state["board"])
        changed: dict[str, TaskRecord] = {}
        sends: list[Send] = []
        messages: list[AnyMessage] = []
        for t in _topological(plan):
            rec = board[t.id]
            if rec.status == TaskStatus.PENDING:
                failed = [d for d in t.depends_on if board[d].status in (TaskStatus.FAILED, TaskStatus.BLOCKED)]
                if failed:
                    reason = f"depends on {', '.join(failed)}, which did not finish"
                    rec = rec.model_copy(update={"status": TaskStatus.BLOCKED, "reason": reason})
                    messages.append(Blocker(sender=NAME, recipient=t.assignee, correlation_id=t.id, reason=reason))
                elif all(board[d].status == TaskStatus.DONE for d in t.depends_on):
                    rec = rec.model_copy(update={"status": TaskStatus.ASSIGNED})
            gate = rec.status == TaskStatus.ASSIGNED and rec.round == 0 and t.assignee in gated
            if gate and gating:  # one approval at a time: this one waits for the next dispatch
                continue
            if rec.status == TaskStatus.ASSIGNED:
                rec = rec.model_copy(update={"status": TaskStatus.IN_PROGRESS, "round": rec.round + 1})
                inputs = [_handoff(plan.get(d), board[d]) for d in t.depends_on]
                order = WorkOrder(subtask=t, round=rec.round, feedback=rec.feedback, inputs=inputs)
                if gate and authorize:
                    gating = True
                    sends.append(Send(authorize, order))
                    messages.append(CheckpointMsg(sender=NAME, recipient="approver", correlation_id=t.id,
                                                  label="approval requested", note=f"{t.assignee}: {t.title}"))
                else:
                    sends.append(Send(work, order))
                    messages.append(TaskAssign(sender=NAME, recipient=t.assignee, correlation_id=t.id, title=t.title,
                                               round=rec.round, feedback=rec.feedback))
            elif rec.status == TaskStatus.IN_REVIEW and rec.artifact:
                sends.append(Send(review, ReviewOrder(subtask=t, path=rec.artifact, round=rec.round)))
            if rec != board[t.id]:
                board[t.id] = changed[t.id] = rec
                await scope.progress(runtime, t.id, rec.status, t.assignee, rec.round)
        if sends:
            await scope.journal(runtime).post(*messages)
            return Command(goto=sends, update={"board": changed})
        if not all(r.status in TERMINAL for r in board.values()):
            raise RuntimeError(f"no subtask can progress: {({k: v.status.value for k, v in board.items()})}")
        done = sum(r.status == TaskStatus.DONE for r in board.values())
        messages.append(CheckpointMsg(sender=NAME, recipient="approver", correlation_id="approval",
                                      label="approval requested", note=f"{done}/{len(board)} subtasks done"))
        await scope.journal(runtime).post(*messages)
        return Command(goto=finish, update={"board": changed, "status": "awaiting_approval"})

    return dispatch


def authorizer(*, work: str, back: str) -> Callable[..., Awaitable[Command]]:
    """The per-task approval gate: the run stops (`interrupt`) until a person answers with a `Decision`;
    approved, the subtask goes on to `work`; rejected, it is BLOCKED with the reason and the run goes `back`."""

    async def authorize(state: WorkOrder, runtime: Runtime[RunContext]) -> Command:
        t = state.subtask
        shown: dict[str, Any] = {
            "question": f"Approve {t.id} for {t.assignee} before it runs (it may book or pay)?",
            "tasks": [{"id": t.id, "title": t.title, "assignee": t.assignee, "status": "waiting"}],
            "details": "\n".join([t.description, *(f"- {c}" for c in t.acceptance_criteria)]),
            "answer": {"approved": "true|false", "comment": "optional text"},
        }
        decision = ask_person(shown)
        label = "approved" if decision.approved else "rejected"
        verdict = CheckpointMsg(sender=decision.by, recipient=NAME, correlation_id=t.id, label=label,
                                note=decision.comment)
        if decision.approved:
            await scope.journal(runtime).post(verdict, TaskAssign(
                sender=NAME, recipient=t.assignee, correlation_id=t.id, title=t.title, round=state.round))
            return Command(goto=Send(work, state))
        reason = f"rejected by {decision.by}" + (f": {decision.comment}" if decision.comment else "")
        await scope.journal(runtime).post(verdict, Blocker(sender=NAME, recipient=t.assignee, correlation_id=t.id,
                                                           reason=reason))
        await scope.progress(runtime, t.id, TaskStatus.BLOCKED, t.assignee, state.round)
        patch = {"status": TaskStatus.BLOCKED, "reason": reason, "round": state.round - 1}  # no round was worked
        return Command(goto=back, update={"board": {t.id: patch}})

    return authorize


def _handoff(task: PlannedTask, rec: TaskRecord) -> Handoff:
    return Handoff(task_id=task.id, title=task.title, path=rec.artifact or "", summary=rec.summary or "")


def _topological(plan: Plan) -> list[PlannedTask]:
    """Dependencies before dependents, so a failure blocks its whole chain in one pass."""
    order: list[PlannedTask] = []
    seen: set[str] = set()

    def visit(t: PlannedTask) -> None:
        if t.id not in seen:
            seen.add(t.id)
            for d in t.depends_on:
                visit(plan.get(d))
            order.append(t)

    for t in plan.tasks:
        visit(t)
    return order
