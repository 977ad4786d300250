"""The hierarchical team's graph state, its public input/output, and the hand-off payloads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic builds schemas (Studio's input form) only from this one on 3.11

from state.channels import JsonDelta, JsonReduced, JsonValue, payload
from state.plan import Plan, PlannedTask, TaskRecord, TaskStatus

RunStatus = Literal["planning", "working", "awaiting_approval", "completed", "rejected"]
Board = dict[str, TaskRecord]


BoardUpdate = Mapping[str, TaskRecord | dict[str, Any]]
"""What a node writes to the board: per task, a record that replaces its entry or a dict of the fields to patch."""


def fold_board(board: Board | None, writes: Sequence[BoardUpdate]) -> Board:
    """The board channel's reducer, each write in turn onto a copy: a record replaces a task's entry; a dict patches
    the fields it names (of a new entry: of an empty record; a whole record written as JSON, as nodes write it
    (`payload`), is such a patch)."""
    merged = dict(board or {})
    for right in writes:
        for task_id, update in right.items():
            if isinstance(update, TaskRecord):
                merged[task_id] = update
            else:
                old = merged[task_id].model_dump() if task_id in merged else {}
                merged[task_id] = TaskRecord.model_validate({**old, **update})
    return merged


def fold_plan(plan: Plan | None, writes: Sequence[Plan | dict[str, Any] | None]) -> Plan | None:
    """The plan channel's reducer: the last plan written (as JSON, `payload`, or a model) replaces it."""
    if not writes:
        return plan
    return None if writes[-1] is None else Plan.model_validate(writes[-1])


def plan_writes(plan: Plan) -> dict[str, Any]:
    """A new plan's writes, as JSON: the plan, and a fresh board entry for each of its tasks."""
    return {"plan": payload(plan), "board": payload({t.id: TaskRecord() for t in plan.tasks})}


class Decision(BaseModel):
    """A person's (or the auto-approver's) answer at an interrupt.

    At the plan gate `edit` is a changed plan (`{"summary": ..., "subtasks": [...]}`); at an escalation,
    approved means retry, rejected means skip, and `edit` holds subtask fields to change before the retry.
    """

    approved: bool
    comment: str = ""
    by: str = Field(default="human", description="'human' or 'auto'.")
    edit: dict[str, Any] | None = Field(default=None, description="A changed plan (plan gate) or changed subtask "
                                        "fields (escalation).")


RequestKind = Literal["complexity", "failed", "finding", "critical", "conflict", "contract"]


class Request(BaseModel):
    """Something a worker or reviewer reports that needs the supervisor's decision."""

    kind: RequestKind = Field(description="complexity: the subtask is bigger than planned; failed: it failed and "
                              "is to be split; finding: a side finding; critical: a problem that must be fixed first; "
                              "conflict: its edit of a file overlapped another worker's; contract: its artifact "
                              "disagrees with an interface contract.")
    task_id: str
    sender: str
    text: str
    parts: list[str] = Field(default_factory=list, description="With complexity: the smaller pieces the worker sees.")
    detail: dict[str, Any] = Field(default_factory=dict, description="With conflict: the overlapping edit (the "
                                   "workspace tool's report); with contract: the contract's key and what differs.")


def merge_requests(left: list[Request] | None, right: list[Request | dict[str, Any]]) -> list[Request]:
    """Requests accumulate until the supervisor takes them (it clears the list with `Overwrite`). A request is a
    dict when a server that does not load our classes read it back from the pending writes of an interrupted step."""
    return [*(left or []), *(Request.model_validate(r) for r in right)]


class Ledger(BaseModel):
    """The supervisor's ledgers, after Magentic-One: small, checkpointed, rewritten at every dispatch.

    The task ledger is what is known and agreed (facts logged for later, the plan's version, the
    amendments applied, the subtasks a person approved); the progress ledger is whether the team is
    getting anywhere (steps since a subtask last finished, each active subtask's last work order, replans).
    """

    facts: list[str] = Field(default_factory=list, description="Findings logged for later (the last 20).")
    plan_version: int = 1
    amendments: list[str] = Field(default_factory=list, description="Ids of the scope changes already planned.")
    findings: list[str] = Field(default_factory=list, description="Signatures of the side findings decided.")
    approved: list[str] = Field(default_factory=list, description="Signatures of subtasks a person approved.")
    step: int = Field(default=0, description="Dispatches so far.")
    done: int = Field(default=0, description="Subtasks done at the last dispatch.")
    last_progress: int = Field(default=0, description="The step at which a subtask last finished or started.")
    orders: dict[str, str] = Field(default_factory=dict, description="Each subtask's last work order signature.")
    replans: int = Field(default=0, description="Replans for failures, stalls and loops (bounded).")
    next: list[str] = Field(default_factory=list, description="Who works next: the subtasks dispatched last.")
    checks: int = Field(default=0, description="Rounds of fix-up work the checks after the work sent back.")


class TeamInput(TypedDict):
    task: str


class TeamOutput(TypedDict, total=False):
    status: RunStatus
    result: str | None
    board: dict[str, TaskRecord]


class WorkState(TypedDict, total=False):
    """The keys of every pattern that works a plan on a board (what the synthesizer reads). The models are
    checkpointed as JSON (`state.channels`); the plan and the board, which grow with the work, as the writes that
    made them (`JsonDelta`): nodes write them as JSON (`payload`)."""

    task: str
    plan: Annotated[Plan | None, JsonDelta(fold_plan)]
    board: Annotated[Board, JsonDelta(fold_board)]
    status: RunStatus
    decision: Annotated[Decision | None, JsonValue]
    result: str | None


class TeamState(WorkState, total=False):
    """Checkpointed state. Kept small: the growing record of a run lives in the journal."""

    ledger: Annotated[Ledger, JsonValue]
    requests: Annotated[list[Request], JsonReduced(list[Request], merge_requests)]


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


class Escalation(BaseModel):
    """A subtask the supervisor could not recover, put to a person with the history of its attempts."""

    subtask: PlannedTask
    history: list[str]
    plan: Plan = Field(description="The plan it belongs to, so that an edit of the subtask updates it.")


class ReviewVerdict(BaseModel):
    """The reviewer's answer about one artifact."""

    approved: bool = Field(description="True only if every acceptance criterion is met.")
    unmet_criteria: list[str] = Field(default_factory=list, description="Criteria the artifact does not meet yet.")
    feedback: str = Field(description="What to change, concretely; or why it passes.")
    critical: str = Field(default="", description="A critical problem (a security hole, data loss) that must be "
                          "fixed before any other work goes on; empty when there is none.")


class ReviewOrder(BaseModel):
    """What the reviewer checks: one artifact against its subtask's acceptance criteria."""

    subtask: PlannedTask
    path: str
    round: int


CHECKPOINTED_TYPES: tuple[type, ...] = (
    Plan, PlannedTask, TaskRecord, TaskStatus, Decision, WorkOrder, ReviewOrder, Handoff, ReviewVerdict, Ledger,
    Request, Escalation,
)
"""Our classes in what nodes write, and in checkpoints written before those held plain JSON (`state.channels`): the
serializer's allow-list."""
