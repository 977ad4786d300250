"""The supervisor's plan: subtasks with dependencies and acceptance criteria."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator


class TaskStatus(StrEnum):
    """Where a subtask is in its life cycle."""

    PENDING = "pending"  # waiting for its dependencies
    ASSIGNED = "assigned"  # handed back to its worker for another round
    IN_PROGRESS = "in_progress"  # a worker is on it
    BLOCKED = "blocked"  # a dependency failed
    IN_REVIEW = "in_review"  # an artifact waits for the reviewer
    DONE = "done"
    FAILED = "failed"


TERMINAL = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.BLOCKED})


class Subtask(BaseModel):
    """One unit of work the supervisor hands to a specialist."""

    id: str = Field(description="Short unique id, e.g. 'T1'.")
    title: str = Field(description="Imperative one-line title.")
    description: str = Field(description="What to produce and why.")
    capability: str = Field(description="The skill needed, e.g. 'backend' or 'testing'.")
    depends_on: list[str] = Field(default_factory=list, description="Ids of subtasks that must finish first.")
    acceptance_criteria: list[str] = Field(min_length=1, description="Checkable statements the result must satisfy.")


class PlanDraft(BaseModel):
    """What the planner model returns: the decomposition of a task."""

    summary: str = Field(description="One or two sentences on the approach.")
    subtasks: list[Subtask] = Field(min_length=1, description="The subtasks, in a sensible order.")

    @model_validator(mode="after")
    def _consistent(self) -> PlanDraft:
        ids = [s.id for s in self.subtasks]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate subtask ids: {ids}")
        for s in self.subtasks:
            unknown = set(s.depends_on) - set(ids)
            if unknown:
                raise ValueError(f"subtask {s.id} depends on unknown ids {sorted(unknown)}")
        _check_acyclic({s.id: s.depends_on for s in self.subtasks})
        return self


class PlannedTask(Subtask):
    """A subtask with the specialist the supervisor assigned it to."""

    assignee: str = Field(description="Name of the role that does the work.")


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


def _check_acyclic(deps: dict[str, list[str]]) -> None:
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise ValueError(f"dependency cycle: {' -> '.join([*path, node])}")
        state[node] = 1
        for dep in deps[node]:
            visit(dep, [*path, node])
        state[node] = 2

    for node in deps:
        visit(node, [])
