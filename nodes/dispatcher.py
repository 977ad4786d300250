"""The supervisor's deterministic half: after every super-step it decides what happens next.

In order: reports from workers and reviewers, and scope changes, go to `replan`. A subtask that loops (its
next work order would repeat its last one: the same review feedback again) or a team that stalls (no
subtask started or finished for `stall_steps` steps) counts as failed. A failed subtask is recovered, one
rung at a time: another role with its capability, the `fallback_model`, split into smaller subtasks
(`replan`), a person (`escalate`); past `max_replans` recoveries in all, what is unfinished is given up so
the run ends. Then every subtask whose dependencies are done starts (`Send`): urgent ones first, holding
work that has not started (preemption), at most `max_workers` at once. Artifacts go to review. When
nothing is left, the run goes on to the approval gate. Every decision is a REPLAN with its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from nodes import scope, spending
from nodes.kit import Kit
from nodes.supervisor import NAME, HierarchicalSettings, pending_amendments, settings, topological
from state.channels import payload
from state.context import RunContext
from state.plan import TERMINAL, Plan, PlannedTask, TaskRecord, TaskStatus
from state.protocol import AnyMessage, Blocker, CheckpointMsg, Replan, TaskAssign
from state.roles import Team
from state.team import Escalation, Handoff, Ledger, Request, ReviewOrder, TeamState, WorkOrder

GIVEN_UP = (TaskStatus.FAILED, TaskStatus.BLOCKED)


def dispatcher(kit: Kit, overrides: Mapping[str, Any] | None = None) -> Callable[..., Awaitable[Command]]:
    """The dispatch node of the hierarchical graph (nodes work, review, authorize, escalate, replan, check)."""

    async def dispatch(state: TeamState, runtime: Runtime[RunContext]) -> Command:
        plan = state["plan"]
        assert plan is not None, "dispatch runs after plan"
        team = await kit.team_for(runtime)
        found = settings(kit, team, overrides)
        ledger = (state.get("ledger") or Ledger()).model_copy(deep=True)
        ledger.step += 1
        if state.get("requests") or await pending_amendments(runtime, ledger):
            return Command(goto="replan", update={"ledger": ledger})
        budget = await kit.budget_for(runtime)
        if why := await spending.wrapping_up(runtime, budget):
            s = _Step(plan, dict(state["board"]), ledger, found, team)
            s.wrap_up(why)
            return await _to_approval(runtime, s)
        found = found.model_copy(update={"max_workers": await spending.narrowed(runtime, budget, found.max_workers)})
        s = _Step(plan, dict(state["board"]), ledger, found, team)
        s.catch_loops_and_stalls()
        s.recover()
        if s.requests:  # a failed subtask is split by the planner first
            await scope.journal(runtime).post(*s.messages)
            return Command(goto="replan", update=s.update() | {"requests": s.requests})
        s.schedule()
        if s.sends:
            started = [scope.progress_write(runtime, t.id, TaskStatus.IN_PROGRESS, t.assignee, s.board[t.id].round)
                       for t in s.started]
            await scope.journal(runtime).post(*s.messages, also=started)
            return Command(goto=[Send(send.node, payload(send.arg)) for send in s.sends], update=s.update())
        s.give_up_stuck()
        return await _to_approval(runtime, s)

    return dispatch


async def _to_approval(runtime: Runtime[RunContext], s: _Step) -> Command:
    """Nothing left to start: on to the checks of the assembled result (`nodes.checks`), then the approval gate."""
    await scope.journal(runtime).post(*s.messages)
    return Command(goto="check", update=s.update())


class _Step:
    """One dispatch: the board, plan and ledgers as they change, and what to send and say."""

    def __init__(self, plan: Plan, board: dict[str, TaskRecord], ledger: Ledger, found: HierarchicalSettings,
                 team: Team) -> None:
        self.plan, self.board, self.ledger, self.found, self.team = plan, board, ledger, found, team
        self.tasks = {t.id: t for t in plan.tasks}
        self.changed: dict[str, TaskRecord] = {}
        self.plan_changed = False
        self.messages: list[AnyMessage] = []
        self.sends: list[Send] = []
        self.requests: list[Request] = []
        self.started: list[PlannedTask] = []
        done = sum(r.status == TaskStatus.DONE for r in board.values())
        if done > ledger.done:
            ledger.done, ledger.last_progress = done, ledger.step

    def set(self, task_id: str, **fields: Any) -> TaskRecord:
        rec = self.board[task_id].model_copy(update=fields)
        self.board[task_id] = self.changed[task_id] = rec
        return rec

    def say(self, task_id: str, action: str, reason: str, tasks: list[str] | None = None) -> None:
        self.messages.append(Replan(sender=NAME, recipient=self.tasks[task_id].assignee, correlation_id=task_id,
                                    action=action, reason=reason, tasks=tasks or [task_id]))

    def update(self) -> dict[str, Any]:
        out: dict[str, Any] = {"board": payload(self.changed), "ledger": self.ledger}
        if self.plan_changed:
            out["plan"] = payload(self.plan.model_copy(update={"tasks": [self.tasks[t.id] for t in self.plan.tasks]}))
        return out

    def catch_loops_and_stalls(self) -> None:
        """A work order that would repeat the last one, or no progress for `stall_steps`: a failure to recover."""
        for t in self.plan.tasks:
            rec = self.board[t.id]
            if rec.status == TaskStatus.ASSIGNED and rec.round >= 1 and \
                    self.ledger.orders.get(t.id) == order_signature(t, rec):
                self.set(t.id, status=TaskStatus.FAILED,
                         reason=f"looping: round {rec.round + 1} would repeat round {rec.round} (the same review "
                                "feedback again)")
        idle = self.ledger.step - self.ledger.last_progress
        if idle >= self.found.stall_steps:
            reworked = [t for t in self.plan.tasks if self.board[t.id].status == TaskStatus.ASSIGNED
                        and self.board[t.id].round >= 1]
            if reworked:
                worst = max(reworked, key=lambda t: self.board[t.id].round)
                self.set(worst.id, status=TaskStatus.FAILED,
                         reason=f"stalled: no subtask started or finished in {idle} steps")
                self.ledger.last_progress = self.ledger.step

    def recover(self) -> None:
        """Each new failure takes the next rung of the recovery ladder."""
        for t in topological(self.plan):
            rec = self.board[t.id]
            if rec.status != TaskStatus.FAILED or rec.final:
                continue
            attempt = f"round {rec.round} by {t.assignee}" + (f" on {t.model}" if t.model else "") + f": {rec.reason}"
            history = [*rec.history, attempt]
            if self.ledger.replans >= self.found.max_replans:
                reason = f"{rec.reason}; given up: the run has used its {self.found.max_replans} replans"
                self.set(t.id, final=True, reason=reason, history=history)
                self.say(t.id, "give up", reason)
                continue
            self.ledger.replans += 1
            self.ledger.last_progress = self.ledger.step
            rung, value = next_rung(t, rec, history, self.team, self.found)
            if rung in ("reassign", "model"):
                task = t.model_copy(update={"assignee": value, "model": None} if rung == "reassign"
                                    else {"model": value})
                self.tasks[t.id], self.plan_changed = task, True
                self.set(t.id, status=TaskStatus.ASSIGNED, round=0, feedback=[], reason=None, history=history)
                target = f"{value}, which also has capability {t.capability!r}" if rung == "reassign" else \
                    f"{t.assignee} on the fallback model {value}"
                self.say(t.id, "reassign", f"{attempt}; reassigned to {target}")
            elif rung == "split":
                self.set(t.id, history=history)
                self.requests.append(Request(kind="failed", task_id=t.id, sender=NAME, text=str(rec.reason)))
                self.say(t.id, "split", f"{attempt}; no other role or model left: splitting it into smaller subtasks")
            elif rung == "escalate":
                self.set(t.id, status=TaskStatus.ESCALATED, history=history)
                self.say(t.id, "escalate", f"{attempt}; every recovery tried: asking a person (retry, skip or edit)")
            else:
                reason = f"{rec.reason}; given up: {value}"
                self.set(t.id, final=True, reason=reason, history=history)
                self.say(t.id, "give up", reason)

    def schedule(self) -> None:
        """Start ready subtasks (urgent first, at most `max_workers`), send artifacts to review, one interrupt."""
        urgent = [t for t in self.plan.tasks if t.urgent and self.board[t.id].status not in TERMINAL]
        needed = _ancestors(self.plan, {t.id for t in urgent})
        gated = set(self.found.approve_before)
        interrupting = False
        budget = self.found.max_workers
        ordered = sorted(topological(self.plan), key=lambda t: not self.tasks[t.id].urgent)
        for planned in ordered:
            t, rec = self.tasks[planned.id], self.board[planned.id]
            if rec.status == TaskStatus.PENDING:
                failed = [d for d in t.depends_on if self.board[d].status in GIVEN_UP]
                if failed:
                    reason = f"depends on {', '.join(failed)}, which did not finish"
                    rec = self.set(t.id, status=TaskStatus.BLOCKED, reason=reason, final=True)
                    self.messages.append(Blocker(sender=NAME, recipient=t.assignee, correlation_id=t.id, reason=reason))
                elif all(self.board[d].status == TaskStatus.DONE for d in t.depends_on):
                    rec = self.set(t.id, status=TaskStatus.ASSIGNED)
            if rec.status == TaskStatus.ESCALATED and not interrupting:
                interrupting = True
                self.sends.append(Send("escalate", Escalation(subtask=t, history=rec.history, plan=self._plan())))
            elif rec.status == TaskStatus.ASSIGNED:
                first = rec.round == 0
                if first and urgent and not t.urgent and t.id not in needed:
                    continue  # preempted: waits for the urgent fix (said when the fix was scheduled)
                gate = first and t.assignee in gated
                if budget == 0 or (gate and interrupting):
                    continue
                budget -= 1
                rec = self.set(t.id, status=TaskStatus.IN_PROGRESS, round=rec.round + 1)
                self.ledger.orders[t.id] = order_signature(t, rec)
                if first:
                    self.ledger.last_progress = self.ledger.step
                inputs = [_handoff(self.tasks[d], self.board[d]) for d in t.depends_on]
                order = WorkOrder(subtask=t, round=rec.round, feedback=rec.feedback, inputs=inputs)
                self.started.append(t)
                if gate:
                    interrupting = True
                    self.sends.append(Send("authorize", order))
                    self.messages.append(CheckpointMsg(sender=NAME, recipient="approver", correlation_id=t.id,
                                                       label="approval requested", note=f"{t.assignee}: {t.title}"))
                else:
                    self.sends.append(Send("work", order))
                    self.messages.append(TaskAssign(sender=NAME, recipient=t.assignee, correlation_id=t.id,
                                                    title=t.title, round=rec.round, feedback=rec.feedback,
                                                    reason=self.why(t, rec)))
            elif rec.status == TaskStatus.IN_REVIEW and rec.artifact:
                self.sends.append(Send("review", ReviewOrder(subtask=t, path=rec.artifact, round=rec.round)))
        self.ledger.next = [t.id for t in self.started]

    def why(self, t: PlannedTask, rec: TaskRecord) -> str:
        """Why `t.assignee` gets this round of `t`: the skill that matched, a recovery, a review's request."""
        role = next((r for r in self.team.roles if r.name == t.assignee), None)
        skill = "its main skill" if role and role.capabilities[0] == t.capability else "one of its skills"
        why = f"the plan needs {t.capability!r}, {skill}"
        if rec.history:
            why += f"; after: {rec.history[-1]}"
        if t.model:
            why += f"; on the fallback model {t.model}"
        return why + (f"; round {rec.round}: the review asked for changes" if rec.round > 1 else "")

    def wrap_up(self, why: str) -> None:
        """The budget is nearly spent: every subtask not done stops where it is, saying why."""
        for t in self.plan.tasks:
            if self.board[t.id].status not in TERMINAL:
                self.set(t.id, status=TaskStatus.FAILED, final=True, reason=f"not finished: {why}")
                self.say(t.id, "budget", why)

    def give_up_stuck(self) -> None:
        """Nothing could be sent but work is left (never a dead end): give it up, saying why."""
        for t in self.plan.tasks:
            rec = self.board[t.id]
            if rec.status not in TERMINAL:
                reason = f"could not progress (was {rec.status.value})"
                self.set(t.id, status=TaskStatus.FAILED, final=True, reason=reason)
                self.say(t.id, "give up", reason)

    def _plan(self) -> Plan:
        return self.plan.model_copy(update={"tasks": [self.tasks[t.id] for t in self.plan.tasks]})


def next_rung(t: PlannedTask, rec: TaskRecord, history: list[str], team: Team, found: HierarchicalSettings
              ) -> tuple[str, str]:
    """The recovery for a failed subtask: (reassign, role) | (model, spec) | (split, '') | (escalate, '') |
    (give up, why), each rung taken once, in that order."""
    tried = " ".join(history)
    others = [r.name for r in team.roles if t.capability in r.capabilities and r.name != t.assignee
              and f"by {r.name}" not in tried]
    if others:
        return "reassign", others[0]
    if found.fallback_model and t.model != found.fallback_model and f"on {found.fallback_model}" not in tried:
        return "model", found.fallback_model
    if t.split_from is None and not any(h.startswith("split") for h in history) and "split into" not in tried:
        return "split", ""
    escalations = sum(h.startswith("retried by") for h in history)
    if escalations < found.max_escalations:
        return "escalate", ""
    return "give up", f"escalated {escalations} times" if escalations else "no person to ask (max_escalations: 0)"


def order_signature(t: PlannedTask, rec: TaskRecord) -> str:
    """What a work order for the next round would be: the same one twice means the subtask is looping."""
    key = [t.id, t.assignee, t.model or "", len(rec.history), *rec.feedback]
    return hashlib.sha256("\x1f".join(map(str, key)).encode()).hexdigest()[:16]


def _ancestors(plan: Plan, ids: set[str]) -> set[str]:
    tasks = {t.id: t for t in plan.tasks}
    seen: set[str] = set()
    stack = list(ids)
    while stack:
        for d in tasks[stack.pop()].depends_on:
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


def _handoff(task: PlannedTask, rec: TaskRecord) -> Handoff:
    return Handoff(task_id=task.id, title=task.title, path=rec.artifact or "", summary=rec.summary or "")
