"""The supervisor: plans the work, has the plan approved, and asks a person when the team is stuck.

`planner` asks the planner model for a decomposition, repairs what it can of a bad answer
(`nodes.plan_repair`: errors go back to the planner, fixable faults are fixed and said so, and as the
last resort the whole task becomes one subtask) and assigns each subtask to a role by capability.
`plan_gate` lets a person approve, edit or reject the plan before any worker starts (only subtasks not
approved before are asked about). `authorizer` asks before a gated role's subtask starts; `escalator`
puts a subtask the team could not recover to a person: retry, skip or edit. The deterministic half that
schedules the work is `nodes.dispatcher`; the half that changes the plan mid-run is `nodes.replanner`.

Team-file settings (`patterns.hierarchical`, `HierarchicalSettings`; `build()` keywords override them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import BaseMessage
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, Send
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nodes import scope, shared_context
from nodes.approval import ask_person
from nodes.briefs import prompt
from nodes.kit import Kit
from nodes.models import ModelSpecError, check_spec
from nodes.plan_repair import ask_for_draft, fallback_plan, normalize
from state.channels import Payload, parse, payload
from state.context import RunContext
from state.plan import Plan, PlanDraft, PlannedTask, Subtask, TaskRecord, TaskStatus
from state.protocol import Blocker, CheckpointMsg, Replan, TaskAssign
from state.roles import Role, Team, TeamError
from state.team import Escalation, Ledger, TeamState, WorkOrder, plan_writes
from tools.amendments import read_amendments

NAME = "supervisor"

P = TypeVar("P", bound=BaseModel)

PLANNER_PROMPT = """You are the supervisor of a team of specialists. You decompose a task into subtasks that \
specialists can do independently, with explicit dependencies, so that independent subtasks run in parallel."""

PLAN_INSTRUCTIONS = """Decompose the task below. Give every subtask a short id (T1, T2, ...), one capability taken \
from the roles' capabilities, the ids of the earlier subtasks it depends on (ids of subtasks listed before it, not \
role names), and 2-4 checkable acceptance criteria."""

DIMINISHING = "returns diminish with team size (about 1.8x at 2 agents, 3x at 5, 3.5x at 10)"


class PlanningError(RuntimeError):
    """The planner could not produce a usable plan."""


class HierarchicalSettings(BaseModel):
    """The team file's `patterns.hierarchical` section."""

    model_config = ConfigDict(extra="forbid")

    reviewer: str | None = Field(default=None, description="A team role that reviews every artifact with its own "
                                 "prompt and model (default: the built-in reviewer).")
    approve_before: list[str] = Field(default_factory=list, description="Roles whose subtasks wait for a person's "
                                      "approval before they are assigned (bookings, payments).")
    approve_plan: bool = Field(default=False, description="A person approves, edits or rejects the plan before any "
                               "worker starts (also `--approve-plan`).")
    max_workers: int = Field(default=5, ge=1, le=1000, description="Subtasks worked on at once at most; the "
                             "supervisor starts fewer when the plan is narrower (" + DIMINISHING + ").")
    plan_attempts: int = Field(default=3, ge=1, le=10, description="Asks of the planner for one usable answer; "
                               "each retry is told what was wrong with the last.")
    fallback_model: str | None = Field(default=None, description="A model spec a failed subtask is retried on when "
                                       "no other role has its capability (e.g. a stronger model).")
    stall_steps: int = Field(default=8, ge=2, le=100, description="Steps without a subtask starting or finishing "
                             "after which the supervisor replans instead of waiting.")
    max_replans: int = Field(default=8, ge=0, le=100, description="Recoveries (reassign, split, escalate) a run may "
                             "take in all; past it, unfinished subtasks are given up and the run ends.")
    max_subtasks: int = Field(default=40, ge=1, le=1000, description="Subtasks a plan may grow to through splits "
                              "and fixes of side findings (a model that keeps finding work cannot grow it forever).")
    max_escalations: int = Field(default=2, ge=0, le=10, description="Times one subtask is put to a person.")
    fix_rounds: int = Field(default=2, ge=0, le=10, description="Times the checks after the work (coherence, the "
                            "team's tests) may send fix-up work back before the run goes on to approval anyway.")
    test_timeout: float = Field(default=60.0, gt=0, le=3600, description="Seconds the verifier gives the team's "
                                "own tests.")


def settings(kit: Kit, team: Team, overrides: Mapping[str, Any] | None = None) -> HierarchicalSettings:
    """The team's hierarchical settings (`build()` keywords over the team file's), every role named checked."""
    found = kit.settings(team, "hierarchical", HierarchicalSettings, overrides or {})
    names = [r.name for r in team.roles]
    named: list[tuple[tuple[str | int, ...], str]] = [(("reviewer",), found.reviewer)] if found.reviewer else []
    named += [(("approve_before", i), name) for i, name in enumerate(found.approve_before)]
    for loc, name in named:
        if name not in names:
            raise TeamError(f"{team.where('patterns', 'hierarchical', *loc)}: no role {name!r} in team {team.name!r} "
                            f"(roles: {', '.join(names)})")
    return found


def check_settings(kit: Kit, team: Team, overrides: Mapping[str, Any] | None = None) -> HierarchicalSettings:
    """The settings, checked once when the graph is built: roles named and the fallback model's provider."""
    found = settings(kit, team, overrides)
    if found.fallback_model:
        try:
            check_spec(found.fallback_model)
        except ModelSpecError as exc:
            raise TeamError(f"{team.where('patterns', 'hierarchical', 'fallback_model')}: {exc}") from None
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
    chat = await kit.model("planner", runtime, agent=NAME, attempt=scope.attempt(runtime))
    try:
        return schema.model_validate(await chat.with_structured_output(schema).ainvoke(messages))
    except (ValidationError, OutputParserException) as exc:
        raise PlanningError(f"the planner's answer is not {what}: {str(exc).splitlines()[0]}") from exc


def planner(kit: Kit, overrides: Mapping[str, Any] | None = None) -> Callable[..., Awaitable[Command]]:
    """The plan node: decomposes the task, repairs the answer, assigns each subtask to a role by capability."""

    async def plan(state: TeamState, runtime: Runtime[RunContext]) -> Command:
        task = (state.get("task") or "").strip()
        if not task:
            raise PlanningError("the task is empty: say what the team should do")
        team = await kit.team_for(runtime)
        found = settings(kit, team, overrides)
        await shared_context.seed(runtime, team)
        brief = {"task": task, "roles": [{"name": r.name, "capabilities": r.capabilities} for r in team.roles]}
        draft, problems = await ask_for_draft(kit, runtime, PlanDraft, prompt(PLANNER_PROMPT, PLAN_INSTRUCTIONS, brief),
                                              "a valid plan", attempts=found.plan_attempts, check=_has_tasks(team))
        if draft is None:
            tasks, summary = fallback_plan(task, team), f"One subtask for the whole task: {task}"
            fixes: list[str] = []
            problems.append("no usable plan after every ask: the whole task is one subtask")
        else:
            (tasks, fixes), summary = normalize(draft, team), draft.summary
        journal = scope.journal(runtime)
        if problems or fixes:
            await journal.post(Replan(sender=NAME, recipient="team", correlation_id="plan", action="repair",
                                      reason="; ".join([*problems, *fixes]), tasks=[t.id for t in tasks]))
        planned = Plan(summary=summary, tasks=tasks)
        await journal.post(CheckpointMsg(sender=NAME, recipient="team", correlation_id="plan", label="plan ready",
                                         note=summary),
                           Replan(sender=NAME, recipient="team", correlation_id="plan", action="size",
                                  reason=sizing(planned, found.max_workers), tasks=[t.id for t in tasks]))
        ledger = Ledger()
        return Command(goto=next_after_plan(planned, ledger, scope.settings(runtime), found),
                       update=plan_writes(planned) | {"status": "working", "ledger": ledger})

    return plan


def _has_tasks(team: Team) -> Callable[[PlanDraft], list[str]]:
    def check(draft: PlanDraft) -> list[str]:
        tasks, _ = normalize(draft, team)
        return [] if tasks else ["the plan has no usable subtasks"]

    return check


def sizing(plan: Plan, max_workers: int) -> str:
    """Why the team is as big as it is: the plan's width and critical path against the cap."""
    depth: dict[str, int] = {}
    for t in topological(plan):
        depth[t.id] = 1 + max((depth[d] for d in t.depends_on if d in depth), default=0)
    levels = max(depth.values(), default=1)
    width = max((sum(1 for v in depth.values() if v == level) for level in range(1, levels + 1)), default=1)
    workers = min(width, max_workers)
    why = (f"the widest step has {width}, so more would idle" if width <= max_workers
           else f"capped at max_workers={max_workers}: {DIMINISHING}")
    steps = "1 step" if levels == 1 else f"{levels} steps"
    return (f"{len(plan.tasks)} subtasks, critical path {steps}: up to {workers} at once ({why}); "
            f"expected speedup over one agent at most {min(len(plan.tasks) / levels, workers):.1f}x")


def signature(t: PlannedTask) -> str:
    """What a person approves of a subtask: it changes when the subtask does."""
    return hashlib.sha256(t.model_dump_json(exclude={"urgent"}).encode()).hexdigest()[:16]


def needs_approval(plan: Plan, ledger: Ledger, ctx: RunContext, found: HierarchicalSettings) -> list[PlannedTask]:
    """The subtasks a person has not approved yet, when plans need approval."""
    if not (ctx.approve_plan or found.approve_plan):
        return []
    return [t for t in plan.tasks if signature(t) not in ledger.approved]


def next_after_plan(plan: Plan, ledger: Ledger, ctx: RunContext, found: HierarchicalSettings) -> str:
    return "plan_gate" if needs_approval(plan, ledger, ctx, found) else "dispatch"


async def pending_amendments(runtime: Runtime[RunContext], ledger: Ledger) -> list[str]:
    """Ids of scope changes posted to this run and not planned yet (a sub-team leaves them to the top run)."""
    info = runtime.execution_info
    if info is not None and "|" in info.checkpoint_ns:
        return []
    posted = await read_amendments(runtime.store, scope.thread_of(runtime))
    return [a.id for a in posted if a.id not in ledger.amendments]


async def reopener(state: TeamState, runtime: Runtime[RunContext]) -> str | None:
    """For the final gate: a scope change posted before the person answered sends the run to `replan`."""
    return "replan" if await pending_amendments(runtime, state.get("ledger") or Ledger()) else None


def plan_gate(kit: Kit, overrides: Mapping[str, Any] | None = None) -> Callable[..., Awaitable[Command]]:
    """The plan gate: a person approves, edits or rejects the plan before (more) work starts.

    Only subtasks not approved before are put to the person; an amendment posted meanwhile is planned
    first (`replan`), so the person approves the plan that will run. An edit is repaired like a model's
    plan, recorded, and counts as approved.
    """

    async def gate(state: TeamState, runtime: Runtime[RunContext]) -> Command:
        plan, ledger = state["plan"], state.get("ledger") or Ledger()
        assert plan is not None
        if await pending_amendments(runtime, ledger):
            return Command(goto="replan")
        team = await kit.team_for(runtime)
        found = settings(kit, team, overrides)
        asked = {t.id for t in needs_approval(plan, ledger, scope.settings(runtime), found)}
        shown: dict[str, Any] = {
            "kind": "plan", "question": "Approve the plan before any worker starts?",
            "tasks": [{"id": t.id, "title": t.title, "assignee": t.assignee,
                       "status": "new" if t.id in asked else "approved"} for t in plan.tasks],
            "details": f"{plan.summary}\n{sizing(plan, found.max_workers)}",
            "plan": {"summary": plan.summary, "subtasks": [t.model_dump(include=set(Subtask.model_fields))
                                                           for t in plan.tasks]},
            "answer": {"approved": "true|false", "comment": "optional text",
                       "edit": "optional: the plan changed, same shape as 'plan'"},
        }
        journal = scope.journal(runtime)
        while True:
            decision = ask_person(shown)
            if not decision.approved:
                await journal.post(CheckpointMsg(sender=decision.by, recipient=NAME, correlation_id="plan",
                                                 label="plan rejected", note=decision.comment))
                return Command(goto=END, update={"status": "rejected", "decision": decision})
            if decision.edit is None:
                break
            try:
                draft = PlanDraft.model_validate(decision.edit)
            except ValidationError as exc:
                shown = {**shown, "error": f"the edited plan is not usable: {_first_error(exc)}"}
                continue
            tasks, fixes = normalize(draft, team)
            board = state["board"]
            kept = {t.id: board[t.id] for t in tasks if t.id in board}
            plan = Plan(summary=draft.summary, tasks=tasks)
            before = {t.id for t in state["plan"].tasks} if state["plan"] else set()
            added, removed = sorted({t.id for t in tasks} - before), sorted(before - {t.id for t in tasks})
            await journal.post(Replan(sender=decision.by, recipient=NAME, correlation_id="plan", action="edit",
                                      reason="; ".join([f"plan edited by {decision.by}"
                                                        + (f": {decision.comment}" if decision.comment else ""),
                                                        *([f"added {', '.join(added)}"] if added else []),
                                                        *([f"removed {', '.join(removed)}"] if removed else []),
                                                        *fixes]),
                                      tasks=[t.id for t in tasks]))
            approved = [*ledger.approved, *(signature(t) for t in tasks)]
            new_ledger = ledger.model_copy(update={"approved": approved, "plan_version": ledger.plan_version + 1})
            return Command(goto="dispatch", update={
                "plan": payload(plan), "ledger": new_ledger,
                "board": Overwrite(payload({t.id: kept.get(t.id, TaskRecord()) for t in tasks}))})
        await journal.post(CheckpointMsg(sender=decision.by, recipient=NAME, correlation_id="plan",
                                         label="plan approved", note=decision.comment or f"{len(asked)} subtasks"))
        approved = [*ledger.approved, *(signature(t) for t in plan.tasks if t.id in asked)]
        return Command(goto="dispatch", update={"ledger": ledger.model_copy(update={"approved": approved})})

    return gate


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]


def authorizer(*, work: str, back: str) -> Callable[..., Awaitable[Command]]:
    """The per-task approval gate: the run stops (`interrupt`) until a person answers with a `Decision`;
    approved, the subtask goes on to `work`; rejected, it is BLOCKED with the reason and the run goes `back`."""

    async def authorize(state: Payload, runtime: Runtime[RunContext]) -> Command:
        order = parse(WorkOrder, state)
        t = order.subtask
        shown: dict[str, Any] = {
            "kind": "authorize", "question": f"Approve {t.id} for {t.assignee} before it runs (it may book or pay)?",
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
                sender=NAME, recipient=t.assignee, correlation_id=t.id, title=t.title, round=order.round,
                reason=f"approved by {decision.by} before it started"))
            return Command(goto=Send(work, state))
        reason = f"rejected by {decision.by}" + (f": {decision.comment}" if decision.comment else "")
        await scope.journal(runtime).post(verdict, Blocker(sender=NAME, recipient=t.assignee, correlation_id=t.id,
                                                           reason=reason))
        await scope.progress(runtime, t.id, TaskStatus.BLOCKED, t.assignee, order.round)
        patch = {"status": TaskStatus.BLOCKED, "reason": reason, "round": order.round - 1}  # no round was worked
        return Command(goto=back, update={"board": payload({t.id: patch})})

    return authorize


def topological(plan: Plan) -> list[PlannedTask]:
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


def escalator(kit: Kit) -> Callable[..., Awaitable[Command]]:
    """The escalation node: a subtask the team could not finish goes to a person with the history of its attempts.

    Approved: it is retried (with `edit`: its fields changed first); rejected: it is skipped for good.
    """

    async def escalate(state: Payload, runtime: Runtime[RunContext]) -> Command:
        order = parse(Escalation, state)
        t, team = order.subtask, await kit.team_for(runtime)
        editable = t.model_dump(include={"title", "description", "capability", "acceptance_criteria", "assignee"})
        shown: dict[str, Any] = {
            "kind": "escalation",
            "question": f"{t.id} could not be finished ({_attempts(len(order.history))}): retry (approve), skip "
                        "(reject) or edit it?",
            "tasks": [{"id": t.id, "title": t.title, "assignee": t.assignee, "status": "escalated"}],
            "details": "\n".join(order.history), "subtask": editable,
            "answer": {"approved": "true = retry, false = skip", "comment": "optional text",
                       "edit": "optional: fields of 'subtask' to change before the retry"},
        }
        journal = scope.journal(runtime)
        while True:
            decision = ask_person(shown)
            try:
                task = _edited(t, decision.edit, team) if decision.approved and decision.edit else t
                break
            except (ValidationError, TeamError, KeyError) as exc:
                why = _first_error(exc) if isinstance(exc, ValidationError) else str(exc).strip("'\"")
                shown = {**shown, "error": f"the edit is not usable: {why}"}
        who = decision.by + (f": {decision.comment}" if decision.comment else "")
        if not decision.approved:
            reason = f"skipped by {who}"
            await journal.post(Replan(sender=decision.by, recipient=NAME, correlation_id=t.id, action="skip",
                                      reason=reason))
            patch = {"status": TaskStatus.FAILED, "final": True, "reason": reason,
                     "history": [*order.history, reason]}
            return Command(goto="dispatch", update={"board": payload({t.id: patch})})
        note = f"retried by {who}" + (" with edits" if task != t else "")
        await journal.post(Replan(sender=decision.by, recipient=NAME, correlation_id=t.id, action="escalate",
                                  reason=note, tasks=[t.id]))
        patch = {"status": TaskStatus.ASSIGNED, "round": 0, "feedback": [], "reason": None,
                 "history": [*order.history, note]}
        update: dict[str, Any] = {"board": payload({t.id: patch})}
        if task != t:
            tasks = [task if x.id == t.id else x for x in order.plan.tasks]
            update["plan"] = payload(order.plan.model_copy(update={"tasks": tasks}))
        return Command(goto="dispatch", update=update)

    return escalate


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _edited(t: PlannedTask, edit: dict[str, Any], team: Team) -> PlannedTask:
    """The subtask with a person's edits; a capability or assignee the team lacks is an error to show them."""
    fields = {k: v for k, v in edit.items() if k in {"title", "description", "capability", "acceptance_criteria",
                                                     "assignee"}}
    task = PlannedTask.model_validate({**t.model_dump(), **fields})
    if "assignee" in fields:
        team.role(task.assignee)
        return task
    if "capability" in fields:
        try:
            return task.model_copy(update={"assignee": team.for_capability(task.capability).name})
        except LookupError as exc:
            raise TeamError(str(exc)) from None
    return task
