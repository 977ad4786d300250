"""The hierarchical team's graph state, its public input/output, and the hand-off payloads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic builds schemas (Studio's input form) only from this one on 3.11

from state.plan import Plan, PlannedTask, TaskRecord, TaskStatus

RunStatus = Literal["planning", "working", "awaiting_approval", "completed", "rejected"]


def merge_board(
    left: dict[str, TaskRecord] | None, right: dict[str, TaskRecord | dict[str, Any]]
) -> dict[str, TaskRecord]:
    """Task-board reducer: a record replaces a task's entry; a dict patches the fields it names."""
    merged = dict(left or {})
    for task_id, update in right.items():
        if isinstance(update, TaskRecord):
            merged[task_id] = update
        else:
            merged[task_id] = TaskRecord.model_validate({**merged[task_id].model_dump(), **update})
    return merged


class Decision(BaseModel):
    """A person's (or the auto-approver's) answer at the approval gate."""

    approved: bool
    comment: str = ""
    by: str = Field(default="human", description="'human' or 'auto'.")


class TeamInput(TypedDict):
    task: str


class TeamOutput(TypedDict, total=False):
    status: RunStatus
    result: str | None
    board: dict[str, TaskRecord]


class TeamState(TypedDict, total=False):
    """Checkpointed state. Kept small: the growing record of a run lives in the journal."""

    task: str
    plan: Plan | None
    board: Annotated[dict[str, TaskRecord], merge_board]
    status: RunStatus
    decision: Decision | None
    result: str | None


class Handoff(BaseModel):
    """What a finished dependency passes on to the subtasks that build on it."""

    task_id: str
    title: str
    path: str = Field(description="Workspace-relative path of its artifact.")
    summary: str


class WorkOrder(BaseModel):
    """A worker's whole view of the run: its subtask, its inputs and open review points."""

    subtask: PlannedTask
    round: int
    feedback: list[str] = Field(default_factory=list)
    inputs: list[Handoff] = Field(default_factory=list)


class ReviewVerdict(BaseModel):
    """The reviewer's answer about one artifact."""

    approved: bool = Field(description="True only if every acceptance criterion is met.")
    unmet_criteria: list[str] = Field(default_factory=list, description="Criteria the artifact does not meet yet.")
    feedback: str = Field(description="What to change, concretely; or why it passes.")


class ReviewOrder(BaseModel):
    """What the reviewer checks: one artifact against its subtask's acceptance criteria."""

    subtask: PlannedTask
    path: str
    round: int


CHECKPOINTED_TYPES: tuple[type, ...] = (
    Plan, PlannedTask, TaskRecord, TaskStatus, Decision, WorkOrder, ReviewOrder, Handoff, ReviewVerdict,
)
"""Our classes that appear in checkpoints (state values and pending `Send`s): the serializer's allow-list."""
