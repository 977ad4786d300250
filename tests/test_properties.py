"""Property tests (hypothesis): the state reducers, the plan's dependency handling and the protocol's parsing.

Reducers: identity, associativity where it holds, patches touch only the fields they name, no key lost.
Plans: `normalize` on arbitrary drafts always gives unique safe ids, dependencies on existing ids only, no cycle
and team roles as assignees; the dispatcher's own scheduling (`_Step`), driven step by step with random
outcomes, never sends a subtask to work before all its dependencies are done. Protocol: every message kind
round-trips through `parse_message(m.model_dump(mode="json"))`.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from nodes.dispatcher import _Step
from nodes.plan_repair import SAFE_ID, normalize
from nodes.supervisor import HierarchicalSettings, topological
from nodes.teams import load_team
from state.consensus import merge_votes
from state.debate import merge_positions
from state.event_driven import merge_reports
from state.plan import TERMINAL, Plan, PlanDraft, PlannedTask, Subtask, TaskRecord, TaskStatus
from state.protocol import AnyMessage, Kind, parse_message
from state.roles import Team
from state.sequential import merge_counts
from state.team import Ledger, Request, fold_board, merge_requests

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- reducers ----------------------------------------------------------------------------------------------------

keys = st.sampled_from(["T1", "T2", "T3", "T1.1", "a", "b"])
short = st.text(max_size=8)
records = st.builds(
    TaskRecord,
    status=st.sampled_from(list(TaskStatus)),
    round=st.integers(0, 5),
    artifact=st.none() | short,
    summary=st.none() | short,
    feedback=st.lists(short, max_size=2),
    reason=st.none() | short,
    history=st.lists(short, max_size=2),
    final=st.booleans(),
)
boards = st.dictionaries(keys, records, max_size=5)
FIELDS = list(TaskRecord.model_fields)
patch_values: dict[str, st.SearchStrategy[Any]] = {
    "status": st.sampled_from([s.value for s in TaskStatus]), "round": st.integers(0, 9),
    "artifact": st.none() | short, "summary": st.none() | short, "feedback": st.lists(short, max_size=2),
    "reason": st.none() | short, "history": st.lists(short, max_size=2), "final": st.booleans(),
}
patches = st.fixed_dictionaries({}, optional=patch_values)


@st.composite
def board_and_patches(draw: st.DrawFn) -> tuple[dict[str, TaskRecord], dict[str, Any]]:
    """A board and an update of it: records for any key, patches only for keys the board has."""
    board = draw(boards)
    update: dict[str, Any] = {}
    for k in draw(st.lists(keys, max_size=4, unique=True)):
        update[k] = draw(patches) if k in board and draw(st.booleans()) else draw(records)
    return board, update


def merge(left: dict[str, TaskRecord] | None, right: dict[str, Any]) -> dict[str, TaskRecord]:
    """One write onto the board, as the board channel's reducer folds it."""
    return fold_board(left, [right])


@SETTINGS
@given(boards, st.lists(boards, max_size=4), st.lists(boards, max_size=4))
def test_the_board_reducer_gives_the_same_board_however_its_writes_are_batched(board: dict, xs: list,
                                                                                ys: list) -> None:
    """`DeltaChannel`'s contract: a checkpoint's writes are replayed in larger batches than they were made."""
    assert fold_board(fold_board(board, xs), ys) == fold_board(board, xs + ys)
    assert fold_board(board, xs + ys) == fold_board(fold_board(fold_board(board, xs[:1]), xs[1:]), ys)


@SETTINGS
@given(boards)
def test_board_identity(board: dict[str, TaskRecord]) -> None:
    assert merge(board, {}) == board
    assert merge(None, board) == board
    assert merge({}, board) == board


@SETTINGS
@given(boards, boards, boards)
def test_board_is_associative_for_records(a: dict, b: dict, c: dict) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@SETTINGS
@given(board_and_patches())
def test_board_patches_touch_only_named_fields_and_lose_no_key(case: tuple[dict, dict]) -> None:
    board, update = case
    before = {k: v.model_copy(deep=True) for k, v in board.items()}
    merged = merge(board, update)
    assert board == before, "the left board is not mutated"
    assert set(merged) == set(board) | set(update)
    for k, rec in merged.items():
        assert isinstance(rec, TaskRecord)
        if k not in update:
            assert rec == board[k]
        elif isinstance(update[k], TaskRecord):
            assert rec == update[k]
        else:
            old, new = board[k].model_dump(), rec.model_dump()
            for field in FIELDS:
                expected = update[k][field] if field in update[k] else old[field]
                assert new[field] == expected, field


@SETTINGS
@given(boards.filter(bool), st.data())
def test_board_patches_in_sequence_equal_one_combined_patch(board: dict, data: st.DataObject) -> None:
    k = data.draw(st.sampled_from(sorted(board)))
    p1, p2 = data.draw(patches), data.draw(patches)
    assert merge(merge(board, {k: p1}), {k: p2}) == merge(board, {k: {**p1, **p2}})


requests = st.builds(Request, kind=st.sampled_from(["complexity", "failed", "finding", "critical"]),
                     task_id=keys, sender=short, text=short, parts=st.lists(short, max_size=2))
request_lists = st.lists(requests, max_size=4)


@SETTINGS
@given(request_lists, request_lists, request_lists)
def test_merge_requests_is_an_ordered_associative_append(a: list, b: list, c: list) -> None:
    a0 = list(a)
    assert merge_requests(a, []) == a and merge_requests(None, a) == a and merge_requests([], a) == a
    assert merge_requests(merge_requests(a, b), c) == merge_requests(a, merge_requests(b, c))
    assert merge_requests(a, b) == [*a, *b]
    assert a == a0, "the left list is not mutated"


# the dict reducers that simply overlay the right side (votes, positions, check counts and verdicts)
values = st.integers() | short | st.fixed_dictionaries({"answer": st.none() | short, "said": short})
dicts = st.dictionaries(keys, values, max_size=5)


@SETTINGS
@given(st.sampled_from([merge_votes, merge_positions, merge_counts]), dicts, dicts, dicts)
def test_overlay_reducers(merge: Any, a: dict, b: dict, c: dict) -> None:
    a0 = dict(a)
    assert merge(a, {}) == a and merge(None, a) == a and merge({}, a) == a
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    merged = merge(a, b)
    assert set(merged) == set(a) | set(b)
    assert all(merged[k] == (b[k] if k in b else a[k]) for k in merged)
    assert a == a0


reports = st.fixed_dictionaries({"event": st.none() | short, "subscriber": short, "ok": st.booleans(),
                                 "reason": short, "publish": st.just([])})
report_updates = st.dictionaries(keys, st.none() | reports, max_size=5)


@SETTINGS
@given(st.dictionaries(keys, reports, max_size=5), report_updates, st.dictionaries(keys, reports, max_size=5))
def test_merge_reports(a: dict, b: dict, c: dict) -> None:
    """None clears a report; associative when the last update clears nothing (a clear is not itself kept)."""
    a0 = dict(a)
    assert merge_reports(a, {}) == a and merge_reports(None, a) == a
    merged = merge_reports(a, b)
    cleared = {k for k, v in b.items() if v is None}
    assert set(merged) == (set(a) | set(b)) - cleared
    assert all(merged[k] == (b[k] if k in b else a[k]) for k in merged)
    assert None not in merged.values()
    assert merge_reports(merge_reports(a, b), c) == merge_reports(a, merge_reports(b, c))
    assert a == a0


# --- the plan's dependency handling ------------------------------------------------------------------------------

TEAMS = {name: load_team(name) for name in ("software", "content", "dev-team", "assistant", "support")}


def _vocabulary(team: Team) -> list[str]:
    roles = [r.name for r in team.roles]
    caps = [c for r in team.roles for c in r.capabilities]
    return [*roles, *caps, *(c.upper() for c in caps)]


ODD_IDS = ["", " ", "T1", "T1 ", " t1", "T2", "T3", "t2", "1", "a.b", "../etc", "a/b", "x" * 33, "-x", "T1b", "é",
           "T1\n", "\x00", "T10", "T1.1"]


@st.composite
def drafts(draw: st.DrawFn, team: Team) -> PlanDraft:
    words = _vocabulary(team)
    ids = st.sampled_from(ODD_IDS) | st.text(max_size=6)
    n = draw(st.integers(1, 7))
    raw_ids = [draw(ids) for _ in range(n)]
    refs = st.sampled_from(raw_ids) | st.sampled_from(ODD_IDS) | st.sampled_from(words) | st.text(max_size=6)
    subtasks = [
        Subtask(id=raw_ids[i], title=draw(short), description="d",
                capability=draw(st.sampled_from(words) | st.text(max_size=12)),
                depends_on=draw(st.lists(refs, max_size=4)), acceptance_criteria=["works"])
        for i in range(n)
    ]
    return PlanDraft(summary="s", subtasks=subtasks)


def _acyclic(deps: dict[str, list[str]]) -> bool:
    """Kahn's algorithm: every node removed means no cycle."""
    indegree = {t: sum(d in deps for d in ds) for t, ds in deps.items()}
    dependents: dict[str, list[str]] = {t: [] for t in deps}
    for t, ds in deps.items():
        for d in ds:
            if d in deps:
                dependents[d].append(t)
    ready = [t for t, n in indegree.items() if n == 0]
    removed = 0
    while ready:
        t = ready.pop()
        removed += 1
        for u in dependents[t]:
            indegree[u] -= 1
            if indegree[u] == 0:
                ready.append(u)
    return removed == len(deps)


def _check_tasks(tasks: list[PlannedTask], team: Team, existing: list[PlannedTask] = ()) -> None:  # type: ignore[assignment]
    ids = [t.id for t in tasks]
    known = set(ids) | {t.id for t in existing}
    assert len(set(ids)) == len(ids), f"repeated ids {ids}"
    assert not set(ids) & {t.id for t in existing}, "an existing id reused"
    roles = {r.name: r for r in team.roles}
    for t in tasks:
        assert SAFE_ID.match(t.id), t.id
        assert t.id not in t.depends_on, f"{t.id} depends on itself"
        assert len(set(t.depends_on)) == len(t.depends_on), f"{t.id}: repeated dependencies {t.depends_on}"
        assert set(t.depends_on) <= known, f"{t.id} depends on unknown {set(t.depends_on) - known}"
        assert t.assignee in roles, t.assignee
        assert t.capability in roles[t.assignee].capabilities
    assert _acyclic({t.id: t.depends_on for t in [*existing, *tasks]}), {t.id: t.depends_on for t in tasks}


@SETTINGS
@given(st.data())
def test_normalize_always_gives_a_sound_plan(data: st.DataObject) -> None:
    team = TEAMS[data.draw(st.sampled_from(sorted(TEAMS)))]
    draft = data.draw(drafts(team))
    tasks, _notes = normalize(draft, team)
    assert len(tasks) == len(draft.subtasks)
    _check_tasks(tasks, team)
    order = [t.id for t in topological(Plan(summary="s", tasks=tasks))]
    assert sorted(order) == sorted(t.id for t in tasks)
    position = {t: i for i, t in enumerate(order)}
    assert all(position[d] < position[t.id] for t in tasks for d in t.depends_on)
    # a sound plan stays as it is
    again, notes = normalize(PlanDraft(summary="s", subtasks=[Subtask(**t.model_dump(include=set(
        Subtask.model_fields))) for t in tasks]), team)
    assert notes == [] and again == tasks


@SETTINGS
@given(st.data())
def test_normalize_new_subtasks_beside_existing_ones(data: st.DataObject) -> None:
    """Splits and amendments: new ids never collide with existing ones, and may depend on them."""
    team = TEAMS[data.draw(st.sampled_from(sorted(TEAMS)))]
    existing, _ = normalize(data.draw(drafts(team)), team)
    draft = data.draw(drafts(team))
    extra = [t.id for t in existing]
    draft = draft.model_copy(update={"subtasks": [s.model_copy(update={"depends_on": [
        *s.depends_on, *data.draw(st.lists(st.sampled_from(extra), max_size=2))]}) for s in draft.subtasks]})
    prefix = data.draw(st.none() | st.sampled_from(["T1", "T3", "X"]))
    tasks, _ = normalize(draft, team, existing=existing, id_prefix=prefix)
    _check_tasks(tasks, team, existing)
    if prefix:
        assert all(t.id.startswith(f"{prefix}.") for t in tasks)


# the dispatcher, driven step by step: workers and reviewers answer at random

OUTCOMES = ["pass", "pass", "pass", "rework", "fail"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_subtask_is_sent_to_work_before_its_dependencies_are_done(data: st.DataObject) -> None:
    team = TEAMS[data.draw(st.sampled_from(sorted(TEAMS)))]
    tasks, _ = normalize(data.draw(drafts(team)), team)
    plan = Plan(summary="s", tasks=tasks)
    found = HierarchicalSettings(max_workers=data.draw(st.integers(1, 4)), max_replans=data.draw(st.integers(0, 4)),
                                 max_escalations=data.draw(st.integers(0, 1)), stall_steps=data.draw(st.integers(2, 5)))
    board = {t.id: TaskRecord() for t in tasks}
    ledger = Ledger()
    for _step in range(200):
        ledger = ledger.model_copy(deep=True)
        ledger.step += 1
        s = _Step(plan, dict(board), ledger, found, team)
        s.catch_loops_and_stalls()
        s.recover()
        if s.requests:  # a split goes to the planner: here it gives the subtask up instead
            for r in s.requests:
                s.set(r.task_id, status=TaskStatus.FAILED, final=True, reason="split (simulated: given up)")
            board, plan = {**board, **s.changed}, s._plan()
            continue
        s.schedule()
        board, plan = {**board, **s.changed}, s._plan()
        for send in s.sends:
            order = send.arg
            t = order.subtask
            if send.node in ("work", "authorize"):
                undone = [d for d in t.depends_on if board[d].status != TaskStatus.DONE]
                assert not undone, f"{t.id} sent to {send.node} before {undone} were done"
                assert board[t.id].status == TaskStatus.IN_PROGRESS
                if t.depends_on:
                    event("a subtask with dependencies was sent to work")
                outcome = data.draw(st.sampled_from(OUTCOMES))
                if outcome == "fail":
                    board[t.id] = board[t.id].model_copy(update={"status": TaskStatus.FAILED, "reason": "boom"})
                else:
                    board[t.id] = board[t.id].model_copy(update={"status": TaskStatus.IN_REVIEW,
                                                                 "artifact": f"{t.id}.md", "summary": "ok"})
            elif send.node == "review":
                if data.draw(st.sampled_from(OUTCOMES)) == "rework":
                    board[t.id] = board[t.id].model_copy(update={"status": TaskStatus.ASSIGNED,
                                                                 "feedback": [data.draw(st.sampled_from("xy"))]})
                else:
                    board[t.id] = board[t.id].model_copy(update={"status": TaskStatus.DONE})
            elif send.node == "escalate":  # a person skips it
                board[t.id] = board[t.id].model_copy(update={"status": TaskStatus.FAILED, "final": True,
                                                             "reason": "skipped"})
        for t in plan.tasks:  # at every step: done only after every dependency is done
            if board[t.id].status == TaskStatus.DONE:
                assert all(board[d].status == TaskStatus.DONE for d in t.depends_on), t.id
        if not s.sends:
            s.give_up_stuck()
            board = {**board, **s.changed}
            break
    else:
        raise AssertionError("the run did not end in 200 steps")
    assert all(r.status in TERMINAL for r in board.values()), board
    event(f"subtasks done at the end: {'all' if all(r.status == TaskStatus.DONE for r in board.values()) else 'some'}")
    assert {t.id for t in plan.tasks} == set(board)


# --- the protocol ------------------------------------------------------------------------------------------------

MESSAGE_CLASSES: list[type[BaseModel]] = list(get_args(get_args(AnyMessage)[0]))
text = st.text(max_size=20)
numbers = st.floats(allow_nan=False, allow_infinity=False)


def _strategy(annotation: Any) -> st.SearchStrategy[Any]:
    plain = {"str": text, "int": st.integers(), "float": numbers, "bool": st.booleans(),
             "list[str]": st.lists(text, max_size=3), "str | None": st.none() | text}
    return plain[annotation]


def _annotation_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return name or str(annotation).replace("typing.", "").replace("Optional[str]", "str | None")


messages = st.one_of([st.builds(cls, **{name: _strategy(_annotation_name(f.annotation))
                                        for name, f in cls.model_fields.items() if name != "kind"})
                      for cls in MESSAGE_CLASSES])


def test_every_message_kind_has_a_strategy() -> None:
    assert {cls.model_fields["kind"].default for cls in MESSAGE_CLASSES} == set(Kind)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_protocol_messages_round_trip(m: BaseModel) -> None:
    dumped = m.model_dump(mode="json")
    back = parse_message(dumped)
    assert type(back) is type(m)
    assert back == m
    assert parse_message(json.loads(json.dumps(dumped))) == m
    assert parse_message(json.loads(m.model_dump_json())) == m
    assert parse_message(m.model_dump()) == m


@settings(max_examples=100, deadline=None)
@given(messages, st.sampled_from(list(Kind)))
def test_a_message_with_another_kind_is_refused_or_parses_as_that_kind(m: BaseModel, kind: Kind) -> None:
    data = {**m.model_dump(mode="json"), "kind": kind.value}
    assume(kind != m.kind)  # type: ignore[attr-defined]
    try:
        back = parse_message(data)
    except ValueError:
        return
    assert back.kind == kind
