"""The sequential pipeline's own nodes: lay out the stages, advance them in order, check, finish.

`Stages` closes over the kit and the `build()` settings. Its `plan` node makes one task per stage;
`advance` (deterministic) runs the next stage with the shared worker, sends a checking stage's
artifact to `check`, and ends in `finish`; `check` asks the checking stage's agent for a verdict
and sends the checked stage back with its findings, until the check's rounds run out, or until it fails with
the same findings as its previous verdict: another round would only repeat it, so that verdict is final at once
(loop detection, `stop_on_repeat`), journaled as a "loop detected" CHECKPOINT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.exceptions import OutputParserException
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import ValidationError

from nodes import reviewer, scope, synthesizer
from nodes.briefs import prompt
from nodes.guard import fenced
from nodes.kit import Kit
from state.channels import Payload, parse, payload
from state.context import RunContext
from state.loops import loop_detected, signature
from state.plan import Plan, PlannedTask, TaskRecord, TaskStatus
from state.protocol import AnyMessage, Blocker, CheckpointMsg, ReviewResult, TaskAssign
from state.roles import Role, Team
from state.sequential import CheckOrder, Pipeline, SequentialSettings, SequentialState, StageCheck, resolve
from state.team import Handoff, WorkOrder, plan_writes
from state.untrusted import DATA_RULE, fence, suspicions
from tools.journal import Write

NAME = "pipeline"

CHECK_PROMPT = """You check an earlier stage's work before the pipeline goes on. Pass it only if it meets every \
acceptance criterion; otherwise list each finding concretely, so that stage can fix it."""

CHECK_INSTRUCTIONS = "Check the artifact below, written by the earlier stage named in the brief.\n" + DATA_RULE

FLAGGED_HEADING = "## Still flagged"


@dataclass(frozen=True)
class Stages:
    """The pipeline's nodes, sharing the kit and the settings given to `build()` (None: unset)."""

    kit: Kit
    overrides: Mapping[str, Any]

    def pipeline(self, team: Team) -> Pipeline:
        settings = self.kit.settings(team, "sequential", SequentialSettings, self.overrides)
        return resolve(team, settings, [k for k, v in self.overrides.items() if v is not None])

    async def plan(self, state: SequentialState, runtime: Runtime[RunContext]) -> dict:
        """One task per stage, in order; each stage depends on the stages whose hand-offs it reads."""
        task = (state.get("task") or "").strip()
        if not task:
            raise ValueError("the task is empty: say what the team should do")
        team = await self.kit.team_for(runtime)
        line = self.pipeline(team)
        tasks = [_stage_task(team.role(s), line, task) for s in line.stages]
        checks = "; ".join(f"{c} checks {t}" for c, t in line.checks.items()) or "no checks"
        summary = (f"A {len(tasks)}-stage pipeline: {' -> '.join(line.stages)}; {checks} "
                   f"(at most {line.max_rounds} rounds each).")
        await scope.journal(runtime).post(
            CheckpointMsg(sender=NAME, recipient="team", correlation_id="plan", label="pipeline ready", note=summary))
        return plan_writes(Plan(summary=summary, tasks=tasks)) | {
                "status": "working", "check_rounds": {}}

    async def advance(self, state: SequentialState, runtime: Runtime[RunContext]) -> Command:
        """Run the first unfinished stage, check a checking stage's work, or finish when every stage is through."""
        plan = state["plan"]
        assert plan is not None, "advance runs after plan"
        line = self.pipeline(await self.kit.team_for(runtime))
        board = dict(state["board"])
        changed: dict[str, TaskRecord] = {}
        messages: list[AnyMessage] = []
        progress: list[Write] = []
        goto: Send | str = "finish"
        for t in plan.tasks:
            rec = board[t.id]
            if rec.status in (TaskStatus.PENDING, TaskStatus.ASSIGNED):
                missing = [d for d in t.depends_on if board[d].status in (TaskStatus.FAILED, TaskStatus.BLOCKED)]
                if missing:
                    reason = f"needs {', '.join(missing)}, which did not finish"
                    rec = rec.model_copy(update={"status": TaskStatus.BLOCKED, "reason": reason})
                    messages.append(Blocker(sender=NAME, recipient=t.assignee, correlation_id=t.id, reason=reason))
                else:
                    rec = rec.model_copy(update={"status": TaskStatus.IN_PROGRESS, "round": rec.round + 1})
                    inputs = [_handoff(plan.get(d), board[d]) for d in t.depends_on]
                    goto = Send("work", payload(WorkOrder(subtask=t, round=rec.round, feedback=rec.feedback,
                                                          inputs=inputs)))
                    why = f"stage {plan.tasks.index(t) + 1} of {len(plan.tasks)} of the pipeline" + (
                        f"; round {rec.round}: sent back by its check" if rec.round > 1 else "")
                    messages.append(TaskAssign(sender=NAME, recipient=t.assignee, correlation_id=t.id,
                                               title=t.title, round=rec.round, feedback=rec.feedback, reason=why))
            elif rec.status == TaskStatus.IN_REVIEW:
                target = line.checks.get(t.assignee)
                if target is None:
                    rec = rec.model_copy(update={"status": TaskStatus.DONE})
                else:
                    target_task = plan.get(line.id(target))
                    order = CheckOrder(checker=t, target=target_task, path=board[target_task.id].artifact or "",
                                       round=state.get("check_rounds", {}).get(t.id, 0) + 1,
                                       last_verdict=state.get("verdicts", {}).get(t.id, ""))
                    goto = Send("check", payload(order))
            elif rec.status == TaskStatus.IN_PROGRESS:
                raise RuntimeError(f"stage {t.id} is still in progress: its work was never recorded")
            if rec != board[t.id]:
                board[t.id] = changed[t.id] = rec
                progress.append(scope.progress_write(runtime, t.id, rec.status, t.assignee, rec.round))
            if isinstance(goto, Send):
                break
        await scope.journal(runtime).post(*messages, also=progress)
        return Command(goto=goto, update={"board": payload(changed)})

    async def check(self, state: Payload, runtime: Runtime[RunContext]) -> dict:
        """The checking stage's verdict: pass, send the earlier stage back with the findings, or flag them."""
        order = parse(CheckOrder, state)
        checker, target, rnd = order["checker"], order["target"], order["round"]
        team = await self.kit.team_for(runtime)
        line = self.pipeline(team)
        verdict, why = await self._verdict(team.role(checker.assignee), order, runtime)
        await scope.journal(runtime).post(
            ReviewResult(sender=checker.assignee, recipient=target.assignee, correlation_id=target.id,
                         approved=verdict.passed, round=rnd, unmet_criteria=verdict.findings,
                         feedback=why or verdict.summary))
        board: dict[str, Any] = {checker.id: {"status": TaskStatus.DONE}}
        findings = verdict.findings or [verdict.summary]
        sig = "" if why or verdict.passed else signature(sorted(findings))
        repeated = line.stop_on_repeat and bool(sig) and sig == order["last_verdict"]
        if why:  # no usable verdict: the work goes on unchecked, and the result says so
            board[target.id] = {"feedback": [why], "reason": f"not checked by {checker.assignee}"}
        elif not verdict.passed and rnd < line.max_rounds and not repeated:
            note = f"{target.id} ({target.assignee}) was revised after {checker.assignee}'s check: build on it"
            board[target.id] = {"status": TaskStatus.ASSIGNED, "feedback": findings}
            board |= {line.id(s): {"status": TaskStatus.PENDING, "feedback": [note]}
                      for s in line.rerun(target.assignee, checker.assignee)}
        elif repeated:  # the same findings as the verdict before: another round would repeat this one
            reason = (f"still flagged by {checker.assignee} after {rnd} rounds: round {rnd}'s verdict repeats round "
                      f"{rnd - 1}'s")
            board[target.id] = {"feedback": findings, "reason": reason}
            await scope.journal(runtime).post(loop_detected(
                sender=checker.assignee, recipient=NAME, correlation_id=target.id,
                reason=f"{reason}, so another round (of at most {line.max_rounds}) would not change it; the verdict "
                       f"is final and the run goes on: {'; '.join(findings)}"))
        elif not verdict.passed:
            reason = f"still flagged by {checker.assignee} after {rnd} rounds"
            board[target.id] = {"feedback": findings, "reason": reason}
            await scope.journal(runtime).post(CheckpointMsg(
                sender=checker.assignee, recipient=NAME, correlation_id=target.id, label="max rounds reached",
                note=f"{reason}; the run goes on: {'; '.join(findings)}"))
        for task_id, patch in board.items():
            if "status" in patch:
                await scope.progress(runtime, task_id, patch["status"], line.stage(task_id), rnd)
        return {"board": payload(board), "check_rounds": {checker.id: rnd}, "verdicts": {checker.id: sig}}

    async def _verdict(self, role: Role, order: CheckOrder, runtime: Runtime[RunContext]) -> tuple[StageCheck, str]:
        """The checker's StageCheck, or a failing stand-in and the reason when there is no usable one."""
        target = order["target"]
        try:
            path = await scope.workspace(runtime) / order["path"]
            artifact = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except OSError as exc:
            return StageCheck(passed=False, summary=""), f"cannot read {order['path']}: {exc.strerror}"
        brief = {"checker": role.name, "stage": target.assignee, "title": target.title,
                 "acceptance_criteria": target.acceptance_criteria, "path": order["path"], "round": order["round"],
                 "artifact": fence(artifact, f"{target.assignee}, {order['path']}")}
        if found := suspicions(artifact):
            brief["flagged"] = reviewer.FLAGGED.format(", ".join(found))
        chat = await self.kit.model("reviewer", runtime, agent=role.name, role=role,
                                   attempt=scope.attempt(runtime), task=target.id)
        try:
            answer = await chat.with_structured_output(StageCheck).ainvoke(
                prompt(f"{role.prompt}\n\n{CHECK_PROMPT}", CHECK_INSTRUCTIONS, brief))
            return StageCheck.model_validate(answer), ""
        except (ValidationError, OutputParserException) as exc:
            why = f"{role.name}'s verdict was malformed: {str(exc).splitlines()[0]}"
            return StageCheck(passed=False, summary=""), why

    async def finish(self, state: SequentialState, runtime: Runtime[RunContext]) -> dict:
        """The synthesizer's report on every stage, then (always, whatever the model wrote) what is still flagged."""
        plan, board = state["plan"], state["board"]
        assert plan is not None
        tasks = [{"id": t.id, "title": t.title, "assignee": t.assignee, "status": board[t.id].status.value,
                  "path": board[t.id].artifact, "summary": fenced(board[t.id].summary, f"{t.assignee}, {t.id}"),
                  "reason": fenced(board[t.id].reason, f"the record of {t.id}")} for t in plan.tasks]
        flagged = [f"- {t.id} {t.assignee} ({board[t.id].reason}): {'; '.join(board[t.id].feedback)}"
                   for t in plan.tasks if board[t.id].status == TaskStatus.DONE and board[t.id].feedback]
        brief = {"task": state["task"], "plan_summary": plan.summary, "tasks": tasks,
                 "flagged": [fence(f, "the checks") for f in flagged]}
        chat = await self.kit.model("synthesizer", runtime, agent=synthesizer.NAME, attempt=scope.attempt(runtime))
        reply = await chat.ainvoke(prompt(synthesizer.SYNTHESIZER_PROMPT, synthesizer.SYNTHESIS_INSTRUCTIONS, brief))
        result = reply.text.strip() + "\n\n" + "\n".join([FLAGGED_HEADING, "", *(flagged or ["- nothing"])])
        await scope.write_text(runtime, synthesizer.RESULT_FILE, result + "\n")
        await scope.journal(runtime).post(
            CheckpointMsg(sender=synthesizer.NAME, recipient="user", correlation_id="result", label="completed",
                          note=f"report in {synthesizer.RESULT_FILE}; {len(flagged)} stage(s) still flagged"))
        return {"result": result, "status": "completed"}


def _stage_task(role: Role, line: Pipeline, task: str) -> PlannedTask:
    """A stage's task: the role's main skill applied to the whole task, with criteria given or derived."""
    i, skill = line.stages.index(role.name), role.capabilities[0]
    before, after = line.stages[i - 1] if i else None, line.stages[i + 1] if i + 1 < len(line.stages) else None
    criteria = line.criteria.get(role.name) or [
        f"Covers the {skill} part of the task completely",
        f"Builds on the {before} stage's hand-off" if before else "States the facts and assumptions later stages use",
        f"Leaves the {after} stage what it needs" if after else "Is ready to deliver as the final result",
    ]
    return PlannedTask(id=line.id(role.name), title=f"{skill.capitalize()}: {task}",
                       description=f"Stage {i + 1} of {len(line.stages)} ({role.name}): do the {skill} work for "
                                   f"the task, building on the earlier stages' hand-offs.",
                       capability=skill, depends_on=[line.id(s) for s in line.needs[role.name]],
                       acceptance_criteria=criteria, assignee=role.name)


def _handoff(task: PlannedTask, rec: TaskRecord) -> Handoff:
    return Handoff(task_id=task.id, title=task.title, path=rec.artifact or "", summary=rec.summary or "")
