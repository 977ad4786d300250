"""The offline model: role play over JSON briefs, determinism, tools, usage, latency, failures; the model factory."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import ValidationError

from nodes.briefs import prompt
from nodes.models import ModelSpecError, check_spec, get_model
from nodes.offline_model import MODES, InjectedFailure, OfflineChatModel, count_tokens
from nodes.teams import load_team
from state.context import RunContext
from state.plan import AmendDraft, FindingDecision, PlanDraft, SplitDraft
from state.roles import Team
from state.team import ReviewVerdict
from tools.reports import REPORT_TOOLS
from tools.workspace import WORKSPACE_TOOLS, workspace_config

SOFTWARE, CONTENT = load_team("software"), load_team("content")
REST_TASK = "Build a REST API for todo management"
BLOG_TASK = "Write a blog post about solar power"


def planner_brief(task: str, team: Team) -> list[BaseMessage]:
    brief = {"task": task, "roles": [{"name": r.name, "capabilities": r.capabilities} for r in team.roles]}
    return prompt("You are the supervisor.", "Decompose the task below.", brief)


def make_plan(task: str, team: Team, **kw: Any) -> PlanDraft:
    model = OfflineChatModel(role="planner", **kw).with_structured_output(PlanDraft)
    result = model.invoke(planner_brief(task, team))
    assert isinstance(result, PlanDraft)
    return result


def work_brief(subtask: dict[str, Any], path: str, round_: int = 1) -> list[BaseMessage]:
    brief = {"role": "x", "subtask": subtask, "round": round_, "feedback": [], "inputs": [], "path": path}
    return prompt("You are a specialist.", "Do the subtask below.", brief)


WRITE_FILE = WORKSPACE_TOOLS[0]


SUBTASK = {
    "id": "T3",
    "title": "Implement the todo endpoints",
    "description": "Request handlers for every endpoint.",
    "capability": "backend",
    "depends_on": [],
    "acceptance_criteria": ["Implements every endpoint", "Validates request bodies", "Returns the documented codes"],
}


# --- planner -----------------------------------------------------------------------------------------------------


def test_planner_decomposes_a_software_task() -> None:
    plan = make_plan(REST_TASK, SOFTWARE)
    subtasks = plan.subtasks
    assert len(subtasks) >= 4
    capabilities = {s.capability for s in subtasks}
    assert len(capabilities) >= 4
    assert {"design", "backend", "testing"} <= capabilities
    assert any(s.depends_on for s in subtasks)
    assert any(not s.depends_on for s in subtasks)
    ids = [s.id for s in subtasks]
    for s in subtasks:
        assert s.acceptance_criteria and all(c.strip() for c in s.acceptance_criteria)
        assert all(d in ids and ids.index(d) < ids.index(s.id) for d in s.depends_on)
        role = SOFTWARE.for_capability(s.capability)  # raises LookupError if no role can do it
        assert s.capability in role.capabilities
    # two subtasks share a dependency and do not depend on each other: they can run in parallel
    roots = [s for s in subtasks if not s.depends_on]
    parallel = [s for s in subtasks if s.depends_on == [roots[0].id]]
    assert len(parallel) >= 2
    assert "todo management" in " ".join(s.title for s in subtasks)


def test_planner_decomposes_a_content_task() -> None:
    plan = make_plan(BLOG_TASK, CONTENT)
    capabilities = [s.capability for s in plan.subtasks]
    assert capabilities == ["research", "outline", "writing", "editing"]
    for s in plan.subtasks:
        assert CONTENT.for_capability(s.capability).name in {r.name for r in CONTENT.roles}
    assert not {"design", "backend", "persistence", "testing"} & set(capabilities)
    assert any("solar power" in s.title for s in plan.subtasks)
    by_cap = {s.capability: s for s in plan.subtasks}
    assert by_cap["outline"].depends_on == [by_cap["research"].id]
    assert by_cap["writing"].depends_on == [by_cap["outline"].id]


def test_planner_only_uses_capabilities_of_the_team() -> None:
    small = Team(name="small", description="d", roles=[SOFTWARE.role("architect"), SOFTWARE.role("backend")])
    plan = make_plan(REST_TASK, small)  # no storage, testing or documentation specialists
    assert [s.capability for s in plan.subtasks] == ["design", "backend"]
    assert plan.subtasks[1].depends_on == [plan.subtasks[0].id]


# --- determinism -------------------------------------------------------------------------------------------------


def first_drafts(seed: int, flaw_rate: float = 0.4) -> list[AIMessage]:
    plan = make_plan(REST_TASK, SOFTWARE, seed=seed)
    worker = OfflineChatModel(role="worker", seed=seed, draft_flaw_rate=flaw_rate).bind_tools(
        [WRITE_FILE]
    )
    replies = []
    for s in plan.subtasks:
        reply = worker.invoke(work_brief(s.model_dump(), f"{s.id}-{s.capability}.md"))
        assert isinstance(reply, AIMessage)
        replies.append(reply)
    return replies


def flaw_pattern(seed: int, flaw_rate: float = 0.4) -> list[tuple[str, ...]]:
    """Per subtask, the acceptance criteria its first draft leaves out."""
    plan = make_plan(REST_TASK, SOFTWARE, seed=seed)
    pattern = []
    for s, reply in zip(plan.subtasks, first_drafts(seed, flaw_rate), strict=True):
        content = reply.tool_calls[0]["args"]["content"]
        pattern.append(tuple(c for c in s.acceptance_criteria if c not in content))
    return pattern


def test_same_seed_same_outputs() -> None:
    assert make_plan(REST_TASK, SOFTWARE, seed=7) == make_plan(REST_TASK, SOFTWARE, seed=7)
    a, b = first_drafts(7), first_drafts(7)
    assert [m.tool_calls for m in a] == [m.tool_calls for m in b]
    assert [m.usage_metadata for m in a] == [m.usage_metadata for m in b]


def test_draft_flaws_depend_on_the_seed() -> None:
    seven, eight = flaw_pattern(7), flaw_pattern(8)
    assert seven == flaw_pattern(7)
    assert seven != eight
    assert any(seven) and any(eight)  # at default rate these seeds leave something for review
    assert all(len(missing) <= 1 for missing in seven + eight)  # at most one criterion left out


def test_flaw_rate_bounds() -> None:
    assert not any(flaw_pattern(7, flaw_rate=0.0))
    assert all(len(missing) == 1 for missing in flaw_pattern(7, flaw_rate=1.0))


# --- worker ------------------------------------------------------------------------------------------------------


def test_worker_writes_with_the_tool_then_answers_in_text(tmp_path: Path) -> None:
    worker = OfflineChatModel(role="worker").bind_tools([WRITE_FILE])
    messages = work_brief(SUBTASK, "T3-backend.py")

    async def run() -> tuple[AIMessage, AIMessage]:
        first = await worker.ainvoke(messages)
        assert isinstance(first, AIMessage)
        call = first.tool_calls[0]
        done = ToolMessage("wrote it", tool_call_id=call["id"], name="write_file",
                           artifact={"path": "T3-backend.py", "sha256": "0" * 64})
        second = await worker.ainvoke([*messages, first, done])
        assert isinstance(second, AIMessage)
        return first, second

    first, second = asyncio.run(run())
    assert len(first.tool_calls) == 1
    call = first.tool_calls[0]
    assert call["name"] == "write_file"
    assert call["args"]["path"] == "T3-backend.py"
    assert SUBTASK["title"] in call["args"]["content"]
    assert call["id"]
    assert first.content == ""
    assert second.tool_calls == []
    assert isinstance(second.content, str) and "T3-backend.py" in second.content


def test_worker_tool_call_runs_through_the_tool_like_the_worker_node(tmp_path: Path) -> None:
    """nodes/worker.py passes the model's tool call straight to `tool.ainvoke(call)`: it must be a real tool call."""
    worker = OfflineChatModel(role="worker", draft_flaw_rate=0.0).bind_tools([WRITE_FILE])
    messages = work_brief(SUBTASK, "T3-backend.py")

    async def run() -> tuple[Any, AIMessage]:
        first = await worker.ainvoke(messages)
        call = first.tool_calls[0]
        assert call.get("type") == "tool_call", f"tool call lacks type='tool_call': {call}"
        result = await WRITE_FILE.ainvoke(call, workspace_config(tmp_path))
        assert isinstance(result, ToolMessage), f"tool returned {result!r}, not a ToolMessage"
        second = await worker.ainvoke([*messages, first, result])
        return result, second

    result, second = asyncio.run(run())
    written = (tmp_path / "T3-backend.py").read_text(encoding="utf-8")
    assert result.artifact["path"] == "T3-backend.py"
    for criterion in SUBTASK["acceptance_criteria"]:
        assert criterion in written
    assert not second.tool_calls and second.content


def test_worker_without_tools_answers_in_text() -> None:
    reply = OfflineChatModel(role="worker").invoke(work_brief(SUBTASK, "T3-backend.py"))
    assert reply.tool_calls == []
    assert "T3-backend.py" in reply.content


# --- reviewer ----------------------------------------------------------------------------------------------------

CRITERIA = ["Lists every resource with its fields and types", "Defines error responses and status codes",
            "Specifies each endpoint with method, path and payloads"]


def verdict(artifact: str) -> ReviewVerdict:
    brief = {"subtask": "Design the API", "acceptance_criteria": CRITERIA, "path": "T1.md", "round": 1,
             "artifact": artifact}
    result = OfflineChatModel(role="reviewer").with_structured_output(ReviewVerdict).invoke(
        prompt("You are a reviewer.", "Review the artifact below.", brief)
    )
    assert isinstance(result, ReviewVerdict)
    return result


def test_reviewer_flags_exactly_the_missing_criteria() -> None:
    artifact = "# Design\n- [x] Lists every resource with its fields and types: yes\n"
    v = verdict(artifact)
    assert v.approved is False
    assert v.unmet_criteria == CRITERIA[1:]
    assert all(c in v.feedback for c in CRITERIA[1:])


def test_reviewer_approves_a_complete_artifact() -> None:
    artifact = "# Design\n" + "\n".join(f"- [x] {c.upper()}" for c in CRITERIA)  # case does not matter
    v = verdict(artifact)
    assert v.approved is True
    assert v.unmet_criteria == []


# --- usage and tokens --------------------------------------------------------------------------------------------


def test_usage_metadata_counts_tokens() -> None:
    reply = OfflineChatModel(role="worker").bind_tools([WRITE_FILE]).invoke(
        work_brief(SUBTASK, "T3-backend.py")
    )
    plain = OfflineChatModel(role="router").invoke([HumanMessage("route this please")])
    out_tokens = []
    for message in (reply, plain):
        usage = message.usage_metadata
        assert usage is not None
        assert usage["input_tokens"] > 0
        assert usage["output_tokens"] > 0
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        out_tokens.append(usage["output_tokens"])
    assert out_tokens[0] > out_tokens[1]  # the written file's body counts as output


def test_count_tokens_estimate() -> None:
    assert count_tokens("") == 0
    assert count_tokens("a") == 1
    assert count_tokens("abcd") == 1
    assert count_tokens("abcde") == 2
    assert count_tokens("x" * 400) == 100


def test_count_tokens_never_needs_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # any `import tiktoken` now raises ImportError
    with pytest.raises(ImportError):
        import tiktoken  # noqa: F401
    assert count_tokens("hello world, how are you?") == 7
    reply = OfflineChatModel(role="planner").with_structured_output(PlanDraft, include_raw=True).invoke(
        planner_brief(REST_TASK, SOFTWARE)
    )
    assert isinstance(reply, dict)
    assert reply["parsing_error"] is None
    assert isinstance(reply["parsed"], PlanDraft)
    usage = reply["raw"].usage_metadata
    assert usage is not None and usage["total_tokens"] > 0


# --- latency -----------------------------------------------------------------------------------------------------


def test_latency_delays_a_call() -> None:
    model = OfflineChatModel(role="router", latency=0.2)
    start = time.perf_counter()
    asyncio.run(model.ainvoke([HumanMessage("hi")]))
    assert time.perf_counter() - start >= 0.19


def test_concurrent_calls_overlap() -> None:
    model = OfflineChatModel(role="router", latency=0.2)

    async def five() -> list[Any]:
        return await asyncio.gather(*(model.ainvoke([HumanMessage(f"hi {i}")]) for i in range(5)))

    start = time.perf_counter()
    replies = asyncio.run(five())
    elapsed = time.perf_counter() - start
    assert len(replies) == 5
    assert elapsed >= 0.19
    assert elapsed < 0.6, f"5 calls of 0.2 s took {elapsed:.2f} s: _agenerate does not run concurrently"


# --- failure injection -------------------------------------------------------------------------------------------


def test_fail_raise() -> None:
    assert issubclass(InjectedFailure, ConnectionError)
    model = OfflineChatModel(role="worker", fail="raise")
    with pytest.raises(InjectedFailure):
        model.invoke([HumanMessage("hi")])
    with pytest.raises(ConnectionError):
        asyncio.run(model.ainvoke([HumanMessage("hi")]))


def test_fail_raise_only_for_the_first_attempts() -> None:
    with pytest.raises(InjectedFailure, match="attempt 1"):
        OfflineChatModel(role="router", fail="raise:1", attempt=1).invoke([HumanMessage("hi")])
    ok = OfflineChatModel(role="router", fail="raise:1", attempt=2).invoke([HumanMessage("hi")])
    assert isinstance(ok, AIMessage) and ok.content
    with pytest.raises(InjectedFailure):
        OfflineChatModel(role="router", fail="raise:2", attempt=2).invoke([HumanMessage("hi")])
    assert OfflineChatModel(role="router", fail="raise:2", attempt=3).invoke([HumanMessage("hi")]).content


def test_fail_malformed_breaks_structured_output() -> None:
    model = OfflineChatModel(role="planner", fail="malformed")
    with pytest.raises((ValidationError, OutputParserException)):
        model.with_structured_output(PlanDraft).invoke(planner_brief(REST_TASK, SOFTWARE))
    with pytest.raises((ValidationError, OutputParserException)):
        asyncio.run(model.with_structured_output(PlanDraft).ainvoke(planner_brief(REST_TASK, SOFTWARE)))
    recovered = OfflineChatModel(role="planner", fail="malformed:1", attempt=2).with_structured_output(PlanDraft)
    assert isinstance(recovered.invoke(planner_brief(REST_TASK, SOFTWARE)), PlanDraft)


def test_fail_timeout_hangs_until_cancelled() -> None:
    model = OfflineChatModel(role="router", fail="timeout")

    async def call() -> None:
        await asyncio.wait_for(model.ainvoke([HumanMessage("hi")]), 0.2)

    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        asyncio.run(call())
    assert time.perf_counter() - start < 5


# --- model factory -----------------------------------------------------------------------------------------------


def test_get_model_offline_default() -> None:
    model = get_model("planner", RunContext(), agent="supervisor")
    assert isinstance(model, OfflineChatModel)
    assert model.role == "planner"
    assert model.seed == RunContext().seed
    assert model.fail is None


def test_get_model_passes_run_settings() -> None:
    ctx = RunContext(seed=42, latency=0.5, draft_flaw_rate=0.9, fail={"reviewer": "raise:2", "qa": "malformed"})
    reviewer = get_model("reviewer", ctx, agent="reviewer", attempt=3)
    assert isinstance(reviewer, OfflineChatModel)
    assert (reviewer.role, reviewer.seed, reviewer.latency, reviewer.draft_flaw_rate) == ("reviewer", 42, 0.5, 0.9)
    assert (reviewer.fail, reviewer.attempt) == ("raise:2", 3)
    worker = get_model("worker", ctx, agent="backend")
    assert isinstance(worker, OfflineChatModel) and worker.fail is None
    qa = get_model("worker", ctx, agent="qa")
    assert isinstance(qa, OfflineChatModel) and qa.fail == "malformed"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-4", "use 'offline', 'openai:NAME' or 'PROVIDER:NAME'"),
        ("foo:bar", "unknown model provider 'foo'"),
        ("openai:", "unknown model 'openai:'"),
        ("anthropic:claude-x", "pip install langchain-anthropic"),
    ],
    ids=["no-provider", "unknown-provider", "no-name", "package-missing"],
)
def test_check_spec_rejects(spec: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=re.escape(message)):
        check_spec(spec)
    assert issubclass(ModelSpecError, ValueError)


def test_check_spec_accepts_valid_specs() -> None:
    for spec in ("offline", "openai:gpt-4o-mini", "azure_openai:gpt-4o"):  # azure's package is langchain-openai
        check_spec(spec)


def test_get_model_openai_is_constructed_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import ChatOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    base_url = "http://127.0.0.1:9/v1"
    ctx = RunContext(model="openai:gpt-4o-mini", base_url=base_url)
    model = get_model("worker", ctx, agent="backend")
    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "gpt-4o-mini"
    assert model.openai_api_base == base_url


def test_get_model_per_role_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import ChatOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    ctx = RunContext(models={"planner": "openai:gpt-4o-mini"}, base_url="http://127.0.0.1:9/v1")
    assert isinstance(get_model("planner", ctx, agent="supervisor"), ChatOpenAI)
    assert isinstance(get_model("worker", ctx, agent="backend"), OfflineChatModel)
    with pytest.raises(ModelSpecError):
        get_model("worker", RunContext(model="foo"), agent="backend")


def test_a_team_without_any_fitting_skill_still_gets_a_plan_from_its_own_roles() -> None:
    from nodes.offline_roles import plan

    roles = [{"name": "chef", "capabilities": ["cooking"]}, {"name": "waiter", "capabilities": ["serving"]}]
    subtasks = plan({"task": "Build a REST API for todo management", "roles": roles})["subtasks"]
    assert [s["capability"] for s in subtasks] == ["cooking", "serving"]
    assert subtasks[1]["depends_on"] == ["T1"]
    assert PlanDraft.model_validate({"summary": "s", "subtasks": subtasks})


def test_design_backend_and_docs_artifacts_share_one_api_contract() -> None:
    import re

    from nodes.offline_roles import draft, plan

    subtasks = {s["capability"]: s for s in plan({"task": "Build a REST API for todo management"})["subtasks"]}

    def written(capability: str, path: str) -> str:
        return draft({"subtask": subtasks[capability], "round": 2, "path": path}, seed=7, flaw_rate=0.0)[0]

    design = set(re.findall(r"\| (GET|POST|PATCH|DELETE) \| (\S+) \|", written("design", "T1.md")))
    code = written("backend", "T3.py")
    routes = set(re.findall(r"\('(GET|POST|PATCH|DELETE)', '(\S+)'\)", code))
    docs = set(re.findall(r"- `(GET|POST|PATCH|DELETE) (\S+)`", written("documentation", "T5.md")))
    assert len(design) == 5 and design == routes == docs
    compile(code, "T3.py", "exec")  # the backend artifact is valid Python


def test_a_non_api_task_gets_no_api_boilerplate() -> None:
    from nodes.offline_roles import draft, plan, subject_of

    assert subject_of("Plan a team offsite in Lisbon") == "team offsite in Lisbon"
    for sub in plan({"task": "Plan a team offsite in Lisbon"})["subtasks"]:
        body = draft({"subtask": sub, "round": 2, "path": f"{sub['id']}.py"}, seed=7, flaw_rate=0.0)[0]
        assert "ROUTES" not in body and "/team" not in body
        compile(body, "x.py", "exec")


# --- adaptive planning: planner lies, workers report, reviewers flag ------------------------------------------------

SOFTWARE_ROLES = [{"name": r.name, "capabilities": r.capabilities} for r in SOFTWARE.roles]


def test_new_modes_are_known() -> None:
    assert {"complex", "finding", "critical"} <= set(MODES)
    for mode in ("complex", "finding", "critical"):
        assert OfflineChatModel(role="router", fail=mode).invoke([HumanMessage("hi")]).content
    with pytest.raises(ValueError, match="unknown offline failure mode"):
        OfflineChatModel(role="router", fail="sulk").invoke([HumanMessage("hi")])


def test_a_lying_planner_answers_schema_valid_nonsense() -> None:
    lie = make_plan(REST_TASK, SOFTWARE, fail="lie")
    ids = [s.id for s in lie.subtasks]
    roles, skills = {r.name for r in SOFTWARE.roles}, set(SOFTWARE.capabilities())
    deps = [d for s in lie.subtasks for d in s.depends_on]
    assert len(ids) != len(set(ids)), "a repeated id"
    assert any(d not in ids and d not in roles and d not in skills for d in deps), "a dependency on no id"
    assert any(d in roles for d in deps) and any(d in skills for d in deps), "dependencies naming a role, a skill"
    assert any(s.capability not in skills for s in lie.subtasks), "a capability no role has"
    by_id = {s.id: s for s in lie.subtasks}
    assert any(a in by_id[b].depends_on for a in ids for b in by_id[a].depends_on if b in by_id), "a cycle"
    assert make_plan(REST_TASK, SOFTWARE, fail="lie") == lie  # deterministic
    honest = make_plan(REST_TASK, SOFTWARE, fail="lie:1", attempt=2)
    assert honest == make_plan(REST_TASK, SOFTWARE)
    one = Team(name="one", description="d", roles=[SOFTWARE.role("backend")])
    assert len(make_plan(REST_TASK, one, fail="lie").subtasks) == 2  # even a one-subtask plan gets its nonsense


def run_worker(mode: str | None, subtask: dict[str, Any], *, round_: int = 1, reports: bool = True,
               path: str = "T3-backend.py") -> list[AIMessage]:
    """Play a worker's turns like nodes/worker.py's tool loop; every tool answers 'ok'."""
    tools = [*WORKSPACE_TOOLS, *(REPORT_TOOLS if reports else [])]
    model = OfflineChatModel(role="worker", fail=mode, draft_flaw_rate=0.0).bind_tools(tools)
    messages = work_brief(subtask, path, round_)
    replies: list[AIMessage] = []
    for _ in range(4):
        reply = model.invoke(messages)
        assert isinstance(reply, AIMessage)
        replies.append(reply)
        messages.append(reply)
        if not reply.tool_calls:
            break
        messages += [ToolMessage("ok", tool_call_id=c["id"], name=c["name"]) for c in reply.tool_calls]
    return replies


def called(replies: list[AIMessage]) -> list[str]:
    return [c["name"] for r in replies for c in r.tool_calls]


def test_a_worker_never_reports_unless_told() -> None:
    replies = run_worker(None, SUBTASK)
    assert called(replies) == ["write_file"]
    assert replies[-1].content


def test_a_complex_worker_reports_and_writes_nothing() -> None:
    replies = run_worker("complex", SUBTASK)
    assert called(replies) == ["report_complexity"]
    args = replies[0].tool_calls[0]["args"]
    assert args["reason"] and "bigger than planned" in args["reason"]
    assert args["parts"] == ["Implement every endpoint", "Validate request bodies", "Return the documented codes"]
    assert "split" in replies[-1].content and not replies[-1].tool_calls
    two = run_worker("complex", {**SUBTASK, "acceptance_criteria": ["Works"]})[0].tool_calls[0]["args"]["parts"]
    assert len(two) == 2


@pytest.mark.parametrize(("change", "round_", "reports"), [({"split_from": "T3"}, 1, True), ({}, 2, True),
                                                             ({}, 1, False)],
                         ids=["a-part-of-a-split", "second-round", "no-report-tool"])
def test_a_complex_worker_works_normally_otherwise(change: dict[str, Any], round_: int, reports: bool) -> None:
    replies = run_worker("complex", {**SUBTASK, **change}, round_=round_, reports=reports)
    assert called(replies) == ["write_file"]


def test_a_worker_with_a_finding_reports_it_once_and_works_on() -> None:
    replies = run_worker("finding", SUBTASK)
    assert called(replies) == ["report_finding", "write_file"]
    finding = replies[0].tool_calls[0]["args"]["finding"]
    assert "password" in finding.lower() and "plain text" in finding
    docs = run_worker("finding", {**SUBTASK, "capability": "documentation"}, path="T5-documentation.md")
    assert "later" in docs[0].tool_calls[0]["args"]["finding"]
    assert called(run_worker("finding", SUBTASK, round_=2)) == ["write_file"]
    assert called(run_worker("finding", SUBTASK, reports=False)) == ["write_file"]


def test_a_worker_with_a_finding_still_uses_its_own_tools_first() -> None:
    from langchain_core.tools import tool

    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        return "found"

    model = OfflineChatModel(role="worker", fail="finding").bind_tools([*WORKSPACE_TOOLS, *REPORT_TOOLS, lookup])
    first = model.invoke(work_brief(SUBTASK, "T3-backend.py"))
    assert [c["name"] for c in first.tool_calls] == ["report_finding", "lookup"]


def review_of(mode: str | None, path: str, round_: int, artifact: str | None = None) -> ReviewVerdict:
    brief = {"subtask": "Design the API", "acceptance_criteria": CRITERIA, "path": path, "round": round_,
             "artifact": artifact if artifact is not None else "\n".join(f"- [x] {c}" for c in CRITERIA)}
    result = OfflineChatModel(role="reviewer", fail=mode).with_structured_output(ReviewVerdict).invoke(
        prompt("You are a reviewer.", "Review the artifact below.", brief))
    assert isinstance(result, ReviewVerdict)
    return result


def test_a_critical_reviewer_flags_a_security_problem_in_t1s_first_artifact() -> None:
    flagged = review_of("critical", "T1-design.md", 1)
    assert flagged.approved is False
    assert "security" in flagged.critical.lower() and "password" in flagged.critical.lower()
    for path, round_ in (("T1-design.md", 2), ("T2-persistence.py", 1), ("T1.1-design.md", 1)):
        v = review_of("critical", path, round_)
        assert v.approved is True and v.critical == ""
    assert review_of(None, "T1-design.md", 1).critical == ""


def test_a_disagreeing_reviewer_never_approves_and_repeats_itself() -> None:
    verdicts = [review_of("disagree", "T1-design.md", r) for r in (1, 2, 3)]
    assert not any(v.approved for v in verdicts)
    assert verdicts[0].unmet_criteria == verdicts[1].unmet_criteria == verdicts[2].unmet_criteria == [CRITERIA[0]]
    assert verdicts[0].feedback == verdicts[2].feedback


def structured(schema: type[Any], brief: dict[str, Any], mode: str | None = None) -> Any:
    result = OfflineChatModel(role="planner", fail=mode).with_structured_output(schema).invoke(
        prompt("You are the supervisor.", "Answer.", brief))
    assert isinstance(result, schema)
    return result


def test_a_split_uses_the_workers_parts_and_shares_the_criteria() -> None:
    parts = ["Implement every endpoint", "Validate request bodies", "Return the documented codes"]
    brief = {"task": REST_TASK, "subtask": SUBTASK, "reason": "too big", "parts": parts, "roles": SOFTWARE_ROLES}
    split = structured(SplitDraft, brief)
    assert [s.id for s in split.subtasks] == ["P1", "P2", "P3"]
    assert [s.title for s in split.subtasks] == parts
    assert all(s.capability == "backend" and s.depends_on == [] for s in split.subtasks)
    assert sorted(c for s in split.subtasks for c in s.acceptance_criteria) == sorted(SUBTASK["acceptance_criteria"])
    assert "T3" in split.summary
    unasked = structured(SplitDraft, {**brief, "parts": []})
    assert 2 <= len(unasked.subtasks) <= 3
    many = structured(SplitDraft, {**brief, "parts": ["a", "b", "c", "d"]})
    assert [s.title for s in many.subtasks] == ["a", "b", "c; d"]
    small = structured(SplitDraft, {**brief, "subtask": {**SUBTASK, "acceptance_criteria": ["Works"]}, "parts": []})
    assert len(small.subtasks) == 2 and all(s.acceptance_criteria for s in small.subtasks)
    lie = structured(SplitDraft, brief, "lie")
    assert len({s.id for s in lie.subtasks}) < len(lie.subtasks) and lie.subtasks[0].depends_on == ["P9"]


EXISTING = [{"id": "T1", "title": "Design", "capability": "design", "status": "done"},
            {"id": "T2", "title": "Storage", "capability": "persistence", "status": "in_progress"},
            {"id": "T3", "title": "Endpoints", "capability": "backend", "status": "pending"}]


def test_an_amendment_becomes_new_subtasks_wired_into_the_plan() -> None:
    brief = {"task": REST_TASK, "amendment": "Also add OAuth login", "existing": EXISTING, "roles": SOFTWARE_ROLES}
    amend = structured(AmendDraft, brief)
    assert [(s.id, s.capability, s.depends_on) for s in amend.subtasks] == [("T4", "backend", ["T1"]),
                                                                            ("T5", "testing", ["T4"])]
    assert amend.subtasks[0].title == "Add OAuth login"
    screen = structured(AmendDraft, {**brief, "amendment": "Add a settings screen"})
    assert screen.subtasks[0].capability == "frontend"
    docs = structured(AmendDraft, {**brief, "amendment": "Document the API in the README"})
    assert docs.subtasks[0].capability == "documentation"
    no_design = structured(AmendDraft, {**brief, "existing": EXISTING[1:]})
    assert no_design.subtasks[0].depends_on == []
    cooks = [{"name": "chef", "capabilities": ["cooking"]}]
    only = structured(AmendDraft, {**brief, "roles": cooks})
    assert [s.capability for s in only.subtasks] == ["cooking"]
    lie = structured(AmendDraft, brief, "lie")
    assert lie.subtasks[0].depends_on == ["design", "T99"]


@pytest.mark.parametrize(("finding", "action"), [
    ("Security: user passwords are stored in plain text", "fix_now"),
    ("The importer crashes on an empty file", "fix_now"),
    ("Nice to have: responses could be cached later", "log"),
    ("The logo is blue", "ignore"),
])
def test_a_finding_is_fixed_now_logged_or_ignored(finding: str, action: str) -> None:
    brief = {"task": REST_TASK, "finding": finding, "reported_by": "backend",
             "subtask": {"id": "T3", "title": "Implement the endpoints"}, "roles": SOFTWARE_ROLES}
    decision = structured(FindingDecision, brief)
    assert decision.action == action and decision.reason
    if action == "fix_now":
        assert decision.subtask is not None
        assert decision.subtask.capability == "backend" and decision.subtask.depends_on == ["T3"]
        assert finding in decision.subtask.acceptance_criteria[0]
    else:
        assert decision.subtask is None


def test_a_later_message_without_a_brief_keeps_the_brief() -> None:
    messages = [*planner_brief(REST_TASK, SOFTWARE), HumanMessage("Your answer had problems; answer again.")]
    again = OfflineChatModel(role="planner").with_structured_output(PlanDraft).invoke(messages)
    assert again == make_plan(REST_TASK, SOFTWARE)
