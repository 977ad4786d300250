"""The plan and the board are checkpointed as the writes that made them (`state.channels.JsonDelta`).

A checkpoint that copied them whole made a run's checkpoints grow with the square of its work; these tests hold
what the change must keep: a reopened database reads the same models back, from its writes, from a snapshot, and
from a checkpoint written before the change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Overwrite
from typing_extensions import TypedDict

from graphs.runtime import serializer
from state.channels import JsonDelta, JsonReduced, JsonValue, payload
from state.plan import Plan, PlannedTask, TaskRecord, TaskStatus
from state.team import Board, BoardUpdate, fold_board, fold_plan

STEPS = 30
CONFIG: Any = {"configurable": {"thread_id": "t"}}


class Delta(TypedDict, total=False):
    step: int
    plan: Annotated[Plan | None, JsonDelta(fold_plan)]
    board: Annotated[Board, JsonDelta(fold_board)]


class Snapshotted(TypedDict, total=False):
    step: int
    plan: Annotated[Plan | None, JsonDelta(fold_plan)]
    board: Annotated[Board, JsonDelta(fold_board, snapshot_frequency=5)]


def merge(left: Board | None, right: BoardUpdate) -> Board:
    return fold_board(left, [right])


class Copied(TypedDict, total=False):
    """The channels before the change: the whole value, as JSON, in every checkpoint."""

    step: int
    plan: Annotated[Plan | None, JsonValue]
    board: Annotated[Board, JsonReduced(Board, merge)]


PLAN = Plan(summary="s", tasks=[PlannedTask(id=f"T{i}", title=f"task {i}", description="d", capability="c",
                                             acceptance_criteria=["works"], assignee="w") for i in range(STEPS)])


def graph(schema: type, saver: SqliteSaver) -> Any:
    """A plan written once, then one board entry done per step, as the nodes write them: JSON (models before)."""
    write = (lambda value: value) if schema is Copied else payload

    def plan(_: Any) -> dict[str, Any]:
        return {"plan": write(PLAN), "board": write({t.id: TaskRecord() for t in PLAN.tasks}), "step": 0}

    def work(state: Any) -> dict[str, Any]:
        i = state["step"]
        return {"board": write({f"T{i}": TaskRecord(status=TaskStatus.DONE, round=1, summary=f"done {i}")}),
                "step": i + 1}

    g = StateGraph(schema)
    g.add_node("plan", plan)
    g.add_node("work", work)
    g.add_edge(START, "plan")
    g.add_edge("plan", "work")
    g.add_conditional_edges("work", lambda s: END if s["step"] == STEPS else "work")
    return g.compile(checkpointer=saver)


@contextmanager
def opened(db: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        yield SqliteSaver(conn, serde=serializer())
    finally:
        conn.close()


def expected_board() -> Board:
    return {f"T{i}": TaskRecord(status=TaskStatus.DONE, round=1, summary=f"done {i}") for i in range(STEPS)}


def test_no_checkpoint_copies_the_board_or_the_plan_yet_a_reopened_database_reads_them_back(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    with opened(db) as saver:
        graph(Delta, saver).invoke({}, CONFIG)
        held = [k for c in saver.list(CONFIG) for k in c.checkpoint["channel_values"] if k in ("plan", "board")]
    assert held == []
    with opened(db) as saver:
        values = graph(Delta, saver).get_state(CONFIG).values
    assert values["plan"] == PLAN and isinstance(values["plan"], Plan)
    assert values["board"] == expected_board()
    assert all(isinstance(r, TaskRecord) for r in values["board"].values())


def test_a_snapshot_every_n_updates_reads_back_the_same(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    with opened(db) as saver:
        graph(Snapshotted, saver).invoke({}, CONFIG)
        snapshots = [c for c in saver.list(CONFIG) if isinstance(c.checkpoint["channel_values"].get("board"),
                                                                   _DeltaSnapshot)]
    assert len(snapshots) == (STEPS + 1) // 5
    with opened(db) as saver:
        assert graph(Snapshotted, saver).get_state(CONFIG).values["board"] == expected_board()


def test_a_snapshot_read_back_as_json_by_a_server_that_loads_none_of_our_classes_is_validated() -> None:
    channel = JsonDelta(fold_board, Board)
    loaded = channel.from_checkpoint(_DeltaSnapshot(payload(expected_board())))
    assert loaded.get() == expected_board()


def test_a_thread_checkpointed_before_the_change_reads_back_and_goes_on(tmp_path: Path) -> None:
    """An older database: the whole board and plan as JSON in each checkpoint."""
    db = tmp_path / "d.sqlite"
    with opened(db) as saver:
        graph(Copied, saver).invoke({}, CONFIG, interrupt_before=["work"])
    with opened(db) as saver:
        g = graph(Delta, saver)
        assert g.get_state(CONFIG).values["plan"] == PLAN
        assert g.invoke(None, CONFIG)["board"] == expected_board()


def test_an_overwrite_of_json_stands_for_the_models_it_holds() -> None:
    channel = JsonDelta(fold_board, Board).from_checkpoint(None)
    channel.update([payload({"T0": TaskRecord(round=2)})])
    channel.update([Overwrite(payload({"T1": TaskRecord(status=TaskStatus.DONE)}))])
    assert channel.get() == {"T1": TaskRecord(status=TaskStatus.DONE)}


def test_the_plan_is_the_last_one_written_and_nothing_before_the_first() -> None:
    channel = JsonDelta(fold_plan, Plan | None).from_checkpoint(None)
    assert channel.get() is None
    other = PLAN.model_copy(update={"summary": "other"})
    channel.replay_writes([("a", "plan", payload(PLAN)), ("b", "plan", payload(other))])
    assert channel.get() == other
