"""The supervisor's plan: subtasks with dependencies and acceptance criteria."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class TaskStatus(StrEnum):
    """Where a subtask is in its life cycle."""

    PENDING = "pending"  # waiting for its dependencies
    ASSIGNED = "assigned"  # handed back to its worker for another round
    IN_PROGRESS = "in_progress"  # a worker is on it
    BLOCKED = "blocked"  # a dependency failed
    IN_REVIEW = "in_review"  # an artifact waits for the reviewer
    ESCALATED = "escalated"  # failed after every recovery: waits for a person (retry, skip or edit)
    DONE = "done"
    FAILED = "failed"
    SPLIT = "split"  # replaced by smaller subtasks (its dependents wait for those instead)


TERMINAL = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.SPLIT})


class Subtask(BaseModel):
    """One unit of work the supervisor hands to a specialist."""

    id: str = Field(description="Short unique id, e.g. 'T1'.")
    title: str = Field(description="Imperative one-line title.")
    description: str = Field(description="What to produce and why.")
    capability: str = Field(description="The skill needed, e.g. 'backend' or 'testing'.")
    depends_on: list[str] = Field(default_factory=list, description="Ids of earlier subtasks (listed before this "
                                  "one) that must finish first.")
    acceptance_criteria: list[str] = Field(min_length=1, description="Checkable statements the result must satisfy.")


class PlanDraft(BaseModel):
    """What the planner model returns: the decomposition of a task.

    Only its shape is checked here; what a model can get wrong while keeping the shape (unknown or
    repeated ids, capabilities no role has, cycles) is repaired by `nodes.plan_repair`, and said so.
    """

    summary: str = Field(description="One or two sentences on the approach.")
    subtasks: list[Subtask] = Field(min_length=1, description="The subtasks, in a sensible order.")


class SplitDraft(PlanDraft):
    """The planner's answer when one subtask is split into smaller ones (too big, or failed as it was)."""


class AmendDraft(PlanDraft):
    """The planner's answer to a scope change: only the new subtasks, which may depend on existing ids."""


class FindingDecision(BaseModel):
    """The supervisor's decision about a side finding a worker reported."""

    action: Literal["fix_now", "log", "ignore"] = Field(description="fix_now: a new subtask in this run; log: keep "
                                                        "it for later in the shared notes; ignore: not worth it.")
    reason: str = Field(description="Why, in one sentence.")
    subtask: Subtask | None = Field(default=None, description="With fix_now: the subtask that fixes it.")


class ConflictDecision(BaseModel):
    """The supervisor's decision about two workers' overlapping edits of one file."""

    action: Literal["mine", "theirs", "adapt"] = Field(description="mine: the reporting worker's version replaces "
                                                       "the file; theirs: the file keeps the other's version; adapt: "
                                                       "the reporting worker redoes its edit on top of the file.")
    reason: str = Field(description="Why, in one sentence.")


class ContractDecision(BaseModel):
    """The supervisor's decision when work disagrees with an interface contract."""

    action: Literal["keep", "update"] = Field(description="keep: the contract stands and the work is redone to match "
                                              "it; update: the contract changes to `fields`, and all work that does "
                                              "not match the new contract is redone.")
    fields: list[str] = Field(default_factory=list, description="With update: every field of the new contract.")
    reason: str = Field(description="Why, in one sentence.")


class PlannedTask(Subtask):
    """A subtask with the specialist the supervisor assigned it to."""

    assignee: str = Field(description="Name of the role that does the work.")
    model: str | None = Field(default=None, description="A model spec for this subtask only (a reassignment to "
                              "another model after a failure); None: the role's model.")
    urgent: bool = Field(default=False, description="Scheduled before any other work that has not started "
                         "(a critical review finding).")
    split_from: str | None = Field(default=None, description="The subtask this one is a part of.")


class Plan(BaseModel):
    """The accepted plan: every subtask has an assignee from the team."""

    summary: str
    tasks: list[PlannedTask]

    def get(self, task_id: str) -> PlannedTask:
        return next(t for t in self.tasks if t.id == task_id)


class TaskRecord(BaseModel):
    """The task board's entry for one subtask: its status and latest outcome."""

    status: TaskStatus = TaskStatus.PENDING
    round: int = Field(default=0, description="Work rounds started (1 = first draft).")
    artifact: str | None = Field(default=None, description="Workspace-relative path of the latest artifact.")
    summary: str | None = Field(default=None, description="The worker's summary of the latest artifact.")
    feedback: list[str] = Field(default_factory=list, description="Open review points for the next round.")
    reason: str | None = Field(default=None, description="Why the task failed or is blocked.")
    history: list[str] = Field(default_factory=list, description="Earlier attempts and what the supervisor did "
                               "about each (reassigned, split, escalated).")
    final: bool = Field(default=False, description="FAILED for good: the supervisor stopped trying (or a person "
                        "skipped it). A failure that is not final is the supervisor's to recover.")

