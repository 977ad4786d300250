"""Plan repair: a schema-valid but nonsensical draft normalized (and said so), the planner asked again with its
problems, the one-subtask last resort; the report tools a worker tells its supervisor with."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.runtime import ExecutionInfo, Runtime
from pydantic import Field

from nodes.briefs import prompt
from nodes.kit import Kit
from nodes.offline_model import InjectedFailure, OfflineChatModel
from nodes.offline_roles import plan as offline_plan
from nodes.plan_repair import ask_for_draft, closest_capability, fallback_plan, normalize
from nodes.teams import load_team
from state.context import RunContext
from state.plan import PlanDraft, PlannedTask
from state.roles import Role, Team
from tools.reports import REPORT_TOOL_NAMES, REPORT_TOOLS, report_in

SOFTWARE = load_team("software")
TODO = "Build a REST API for todo management"


def sub(id: str, capability: str = "backend", depends_on: list[str] | None = None, title: str = "") -> dict[str, Any]:
    return {"id": id, "title": title or f"Do {id}", "description": "d", "capability": capability,
            "depends_on": depends_on or [], "acceptance_criteria": ["works"]}


def draft(*subtasks: dict[str, Any]) -> PlanDraft:
    return PlanDraft.model_validate({"summary": "s", "subtasks": list(subtasks)})


def deps(tasks: list[PlannedTask]) -> dict[str, list[str]]:
    return {t.id: t.depends_on for t in tasks}


def roles_brief(team: Team) -> list[dict[str, Any]]:
    return [{"name": r.name, "capabilities": r.capabilities} for r in team.roles]


# --- normalize ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("team_name", ["software", "content", "dev-team", "assistant", "investment", "support"])
def test_a_sound_plan_needs_no_fix(team_name: str) -> None:
    team = load_team(team_name)
    for task in (TODO, "Write a blog post about solar power", "Attend a conference in Berlin"):
        honest = PlanDraft.model_validate(offline_plan({"task": task, "roles": roles_brief(team)}))
        tasks, notes = normalize(honest, team)
        assert notes == []
        assert [t.model_dump(exclude={"assignee", "model", "urgent", "split_from"}) for t in tasks] == \
            [s.model_dump() for s in honest.subtasks]
        assert all(t.assignee == team.for_capability(t.capability).name for t in tasks)


def test_repeated_ids_are_renamed_and_dependencies_mean_the_first() -> None:
    tasks, notes = normalize(draft(sub("T1"), sub("T2", depends_on=["T1"]), sub("T2", title="Other", depends_on=["T2"]),
                                   sub("T2", title="Third")), SOFTWARE)
    assert [t.id for t in tasks] == ["T1", "T2", "T2b", "T2c"]
    assert deps(tasks)["T2b"] == ["T2"]
    assert notes == ["T2 is the id of two subtasks: the second ('Other') renamed T2b",
                     "T2 is the id of two subtasks: the second ('Third') renamed T2c"]


def test_missing_ids_get_the_next_free_one() -> None:
    tasks, notes = normalize(draft(sub(" "), sub("T1"), sub("")), SOFTWARE)
    assert [t.id for t in tasks] == ["T2", "T1", "T3"]
    assert notes == ["subtask 1 ('Do  ') has no id: named T2", "subtask 3 ('Do ') has no id: named T3"]


def test_an_id_unsafe_in_a_file_name_is_renamed_and_its_dependents_follow() -> None:
    tasks, notes = normalize(draft(sub("../../etc x"), sub("T2", depends_on=["../../etc x"]), sub("x" * 40)), SOFTWARE)
    assert [t.id for t in tasks] == ["T1", "T2", "T3"] and deps(tasks)["T2"] == ["T1"]
    assert notes[0] == "'../../etc x' is not a usable id (letters, digits, '.', '_', '-'; at most 32): renamed T1"


def test_ids_of_existing_subtasks_are_renamed_and_existing_ids_may_be_depended_on() -> None:
    existing, _ = normalize(draft(sub("T1", "design"), sub("T2", depends_on=["T1"])), SOFTWARE)
    tasks, notes = normalize(draft(sub("T1", title="OAuth"), sub("T5", "testing", depends_on=["T1", "T2"])),
                             SOFTWARE, existing=existing)
    assert [t.id for t in tasks] == ["T3", "T5"]
    assert deps(tasks) == {"T3": [], "T5": ["T3", "T2"]}  # the draft's own T1 first; T2 is an existing subtask
    assert notes == ["T1 ('OAuth') is the id of an existing subtask: renamed T3"]


def test_unknown_and_self_dependencies_are_dropped() -> None:
    tasks, notes = normalize(draft(sub("T1"), sub("T2", depends_on=["T9", "T2", "T1", "T1", "t1"])), SOFTWARE)
    assert deps(tasks) == {"T1": [], "T2": ["T1"]}
    assert notes == ["T2 depends on unknown 'T9': dropped", "T2 depends on itself: dropped",
                     "T2 depends on 't1': read as T1"]


def test_a_dependency_naming_a_role_or_a_capability_is_read_as_its_subtasks() -> None:
    tasks, notes = normalize(draft(sub("T1", "design"), sub("T2", "backend", ["design"]),
                                   sub("T3", "implementation", ["T1"]),
                                   sub("T4", "documentation", ["architect", "backend"]),
                                   sub("T5", "testing", ["db_engineer", "frontend", "T4"])), SOFTWARE)
    # 'backend' is T2's capability and the role of T2 and T3: both are meant
    assert deps(tasks) == {"T1": [], "T2": ["T1"], "T3": ["T1"], "T4": ["T1", "T2", "T3"], "T5": ["T4"]}
    assert notes == [
        "T2 depends on 'design', a capability and not an id: read as T1",
        "T4 depends on 'architect', a role and not an id: read as T1",
        "T4 depends on 'backend', a capability and not an id: read as T2, T3",
        "T5 depends on 'db_engineer', a role and not an id, but no other subtask is of it: dropped",
        "T5 depends on 'frontend', a capability and not an id, but no other subtask is of it: dropped",
    ]


def test_a_name_meaning_different_subtasks_by_capability_and_by_role_is_dropped() -> None:
    team = Team(name="t", description="d", roles=[Role(name="writing", capabilities=["editing"], prompt="p"),
                                                  Role(name="editor", capabilities=["writing"], prompt="p"),
                                                  Role(name="boss", capabilities=["planning"], prompt="p")])
    tasks, notes = normalize(draft(sub("T1", "writing"), sub("T2", "editing"), sub("T3", "planning", ["writing"]),
                                   sub("T4", "planning", ["editor"])), team)
    assert deps(tasks) == {"T1": [], "T2": [], "T3": [], "T4": ["T1"]}
    assert notes == ["T3 depends on 'writing', a capability and not an id, which could mean T1 or T2: dropped",
                     "T4 depends on 'editor', a role and not an id: read as T1"]


def test_a_name_can_mean_existing_subtasks() -> None:
    existing, _ = normalize(draft(sub("T1", "design"), sub("T2", depends_on=["T1"])), SOFTWARE)
    tasks, notes = normalize(draft(sub("A1", "backend", ["design"])), SOFTWARE, existing=existing)
    assert deps(tasks) == {"A1": ["T1"]}
    assert notes == ["A1 depends on 'design', a capability and not an id: read as T1"]


def test_the_edge_that_closes_a_cycle_is_dropped() -> None:
    tasks, notes = normalize(draft(sub("T1", depends_on=["T2"]), sub("T2", depends_on=["T3"]),
                                   sub("T3", depends_on=["T1"])), SOFTWARE)
    assert deps(tasks) == {"T1": ["T2"], "T2": [], "T3": ["T1"]}
    assert notes == ["T2 depends on T3, which closes a cycle (T2 -> T3 -> T1 -> T2): dropped"]
    tasks, notes = normalize(draft(sub("T1", depends_on=["T2"]), sub("T2", depends_on=["T1"])), SOFTWARE)
    assert deps(tasks) == {"T1": [], "T2": ["T1"]}  # the plan's order wins: the dependency on a later subtask goes
    assert notes == ["T1 depends on T2, which closes a cycle (T1 -> T2 -> T1): dropped"]


def test_a_capability_no_role_has_goes_to_the_closest_role() -> None:
    tasks, notes = normalize(draft(sub("T1", "Back-End"), sub("T2", "tech_writer"), sub("T3", "database schema work"),
                                   sub("T4", "cooking"), sub("T5", "fact checking"), sub("T6", "Backend ")), SOFTWARE)
    assert [(t.capability, t.assignee) for t in tasks] == [
        ("backend", "backend"), ("documentation", "tech_writer"), ("database", "db_engineer"), ("design", "architect"),
        ("research", "researcher"), ("backend", "backend")]
    assert notes == [
        "T1: no role has the capability 'Back-End': mapped to 'backend' (backend), the closest spelling ('backend')",
        "T2: no role has the capability 'tech_writer': mapped to 'documentation' (tech_writer), the name of that role",
        "T3: no role has the capability 'database schema work': mapped to 'database' (db_engineer), the role sharing "
        "the most words (database)",
        "T4: no role has the capability 'cooking': mapped to 'design' (architect), no role is close: the first role's",
        "T5: no role has the capability 'fact checking': mapped to 'research' (researcher), the role sharing the most "
        "words (fact)",
    ]  # T6 differs only in case and spaces: no fix to report


def test_closest_capability_reads_words_in_prompts() -> None:
    assert closest_capability("automated test suites", SOFTWARE) == ("testing", "the role sharing the most words "
                                                                     "(test)")
    assert closest_capability("db", SOFTWARE)[0] in ("persistence", "database")


def test_an_id_prefix_numbers_the_parts_of_a_split_subtask() -> None:
    existing, _ = normalize(draft(sub("T1", "design"), sub("T2"), sub("T3", depends_on=["T1"])), SOFTWARE)
    parts = draft(sub("P1"), sub("P2", depends_on=["P1", "T1"]), sub("P1", title="Again", depends_on=["P2"]))
    tasks, notes = normalize(parts, SOFTWARE, existing=existing, id_prefix="T3")
    assert deps(tasks) == {"T3.1": [], "T3.2": ["T3.1", "T1"], "T3.3": ["T3.2"]}
    assert notes == ["P1 is the id of two subtasks: dependencies on P1 mean T3.1, not T3.3 ('Again')"]
    again, _ = normalize(draft(sub("P1"), sub("P2")), SOFTWARE, existing=[*existing, *tasks], id_prefix="T3")
    assert [t.id for t in again] == ["T3.4", "T3.5"]  # ids already taken are skipped


def test_the_offline_planners_lie_is_repaired_and_said_so() -> None:
    brief = {"task": TODO, "roles": roles_brief(SOFTWARE)}
    lie = PlanDraft.model_validate(OfflineChatModel(role="planner", fail="lie").with_structured_output(PlanDraft)
                                   .invoke(prompt("s", "Plan.", brief)))
    tasks, notes = normalize(lie, SOFTWARE)
    assert deps(tasks) == {"T1": [], "T2": ["T1"], "T3": ["T1"], "T4": ["T2", "T3"], "T4b": ["T1", "T3"]}
    assert [t.assignee for t in tasks] == ["architect", "db_engineer", "backend", "qa", "tech_writer"]
    assert notes == [
        "T4 is the id of two subtasks: the second ('Write the README and API reference for todo management') "
        "renamed T4b",
        "T4: no role has the capability 'testing engineering': mapped to 'testing' (qa), the role sharing the most "
        "words (testing, engineering)",
        "T2 depends on unknown 'T99': dropped",
        "T4b depends on 'architect', a role and not an id: read as T1",
        "T4b depends on 'backend', a capability and not an id: read as T3",
        "T1 depends on T2, which closes a cycle (T1 -> T2 -> T1): dropped",
    ]
    assert normalize(lie, SOFTWARE) == (tasks, notes)  # deterministic


# --- fallback plan -----------------------------------------------------------------------------------------------


def test_fallback_plan_is_one_subtask_for_the_best_matching_role() -> None:
    [task] = fallback_plan("Analyse the market research for our new product", SOFTWARE)
    assert (task.id, task.assignee, task.capability, task.depends_on) == ("T1", "researcher", "research", [])
    assert any("Accomplishes the task as stated" in c and "market research" in c for c in task.acceptance_criteria)
    [task] = fallback_plan("Bake a cake", SOFTWARE)
    assert (task.assignee, task.capability) == ("architect", "design")  # nothing matches: the first role
    long = "x " * 100
    assert len(fallback_plan(long, SOFTWARE)[0].title) <= 80


# --- asking again ------------------------------------------------------------------------------------------------


class Recording(OfflineChatModel):
    """The offline planner, keeping every conversation it was asked."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                         **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


def planner_messages() -> list[BaseMessage]:
    brief = {"task": TODO, "roles": roles_brief(SOFTWARE)}
    return prompt("You are the supervisor.", "Decompose the task below.", brief)


def ask(ctx: RunContext, *, attempts: int = 3, kit: Kit | None = None, node_attempt: int = 1, **kw: Any
        ) -> tuple[PlanDraft | None, list[str]]:
    info = ExecutionInfo(checkpoint_id="c", checkpoint_ns="", task_id="t", node_attempt=node_attempt)
    runtime = Runtime(context=ctx, execution_info=info)
    return asyncio.run(ask_for_draft(kit or Kit(), runtime, PlanDraft, planner_messages(), "a valid plan",
                                     attempts=attempts, **kw))


def test_a_malformed_answer_is_asked_again_with_a_higher_attempt() -> None:
    found, problems = ask(RunContext(fail={"planner": "malformed:1"}))
    assert isinstance(found, PlanDraft) and len(found.subtasks) >= 4
    assert problems and all(p.startswith("answer 1: ") for p in problems)
    found, problems = ask(RunContext(fail={"planner": "malformed:2"}), node_attempt=2)  # the node's own retry counts
    assert found is not None and all(p.startswith("answer 1: ") for p in problems)


def test_every_ask_failing_gives_none_and_every_problem() -> None:
    found, problems = ask(RunContext(fail={"planner": "malformed"}), attempts=3)
    assert found is None
    assert {p.split(":")[0] for p in problems} == {"answer 1", "answer 2", "answer 3"}


def test_problems_found_by_the_check_go_back_to_the_model() -> None:
    model = Recording(role="planner")
    checked: list[PlanDraft] = []

    def check(d: PlanDraft) -> list[str]:
        checked.append(d)
        return ["T9 is not an id of the plan", "no subtask tests anything"] if len(checked) == 1 else []

    found, problems = ask(RunContext(), kit=Kit(models={"planner": model}), check=check)
    assert found is checked[1]
    assert problems == ["answer 1: T9 is not an id of the plan", "answer 1: no subtask tests anything"]
    assert len(model.seen) == 2
    again = model.seen[1][-1]
    assert isinstance(again, HumanMessage)
    assert "not a valid plan" in again.text and "- T9 is not an id of the plan" in again.text
    assert "answer again" in again.text.lower()
    assert model.seen[1][:-1] == planner_messages()


def test_a_lying_planner_told_its_problems_answers_honestly_the_next_time() -> None:
    found, problems = ask(RunContext(fail={"planner": "lie:1"}), check=lambda d: normalize(d, SOFTWARE)[1])
    assert found is not None and normalize(found, SOFTWARE)[1] == []
    assert any("closes a cycle" in p for p in problems) and all(p.startswith("answer 1: ") for p in problems)


def test_model_errors_propagate() -> None:
    with pytest.raises(InjectedFailure):
        ask(RunContext(fail={"planner": "raise"}))


# --- report tools ------------------------------------------------------------------------------------------------


def test_report_tools_carry_the_report_as_their_artifact() -> None:
    tools = {t.name: t for t in REPORT_TOOLS}
    assert set(tools) == set(REPORT_TOOL_NAMES) == {"report_complexity", "report_finding"}
    call = {"type": "tool_call", "id": "c1", "name": "report_complexity",
            "args": {"reason": "Three endpoints and a migration", "parts": ["Endpoints", " ", "Migration"]}}
    message = tools["report_complexity"].invoke(call)
    assert isinstance(message, ToolMessage)
    assert "stop here" in message.text and "split" in message.text
    assert message.artifact == {"report": {"kind": "complexity", "text": "Three endpoints and a migration",
                                           "parts": ["Endpoints", "Migration"]}}
    assert report_in(message.artifact) == message.artifact["report"]
    message = tools["report_finding"].invoke({"type": "tool_call", "id": "c2", "name": "report_finding",
                                              "args": {"finding": "Passwords are stored in plain text"}})
    assert message.text == "reported; carry on with your subtask"
    assert message.artifact == {"report": {"kind": "finding", "text": "Passwords are stored in plain text",
                                           "parts": []}}
    assert report_in({"path": "x", "sha256": "0"}) is None and report_in(None) is None


def test_report_tools_tell_a_model_when_to_use_them() -> None:
    tools = {t.name: t for t in REPORT_TOOLS}
    assert "bigger than planned" in tools["report_complexity"].description
    assert "stop" in tools["report_complexity"].description.lower()
    assert "carry on" in tools["report_finding"].description
    schema = convert_to_openai_tool(tools["report_complexity"])["function"]["parameters"]  # what a model reads
    assert set(schema["required"]) == {"reason", "parts"}
    assert all(p.get("description") for p in schema["properties"].values())
    bad = tools["report_complexity"].invoke({"type": "tool_call", "id": "c3", "name": "report_complexity",
                                             "args": {"reason": "r"}})
    assert bad.status == "error"  # a model that forgets the parts is told so, the run goes on


def test_a_team_capability_spelled_with_capitals_still_gets_its_role() -> None:
    team = Team(name="t", description="d", roles=[Role(name="a", capabilities=["design"], prompt="p"),
                                                  Role(name="b", capabilities=["Backend"], prompt="p")])
    tasks, notes = normalize(draft(sub("T1", "backend"), sub("T2", "back end")), team)
    assert [(t.capability, t.assignee) for t in tasks] == [("Backend", "b"), ("Backend", "b")]
    assert notes == ["T2: no role has the capability 'back end': mapped to 'Backend' (b), the closest spelling "
                     "('backend')"]
