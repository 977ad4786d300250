"""Bring your own team: team files, model objects, plain-function tools and existing agents join a run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_openai import ChatOpenAI
from openai_server import OpenAICompatServer
from pydantic import Field

from graphs import hierarchical
from graphs.runtime import Runner
from nodes.offline_model import OfflineChatModel, _brief
from nodes.teams import load_team
from state.context import RunContext
from state.plan import TaskStatus
from state.protocol import Kind
from state.roles import McpServer, Role, Team, TeamError
from state.team import Decision
from tools.workspace import WORKSPACE_TOOLS

DATA_TEAM = """\
name: data
description: "A data team: collect, clean, model and report."
roles:
  - name: collector
    capabilities: [collection]
    prompt: You gather the raw data and say where each part came from.
  - name: cleaner
    capabilities: [cleaning]
    prompt: You fix types, gaps and duplicates, and say what you changed.
  - name: modeller
    capabilities: [modelling]
    prompt: You fit the simplest model that answers the question.
    model_settings: {temperature: 0.2, max_tokens: 800}
  - name: reporter
    capabilities: [reporting]
    prompt: You explain the findings to a busy reader.
patterns:
  sequential: {stages: [collector, cleaner, modeller, reporter]}
"""
DATA_ROLES = ["collector", "cleaner", "modeller", "reporter"]
BLOG_TASK = "Write a blog post about solar power"


def troupe_cli(db: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphs.cli", *args], capture_output=True, text=True,
                          env={**cli_env(db), **env}, stdin=subprocess.DEVNULL, timeout=120)


def run(db: Path, fn: Any, **objects: Any) -> Any:
    async def go() -> Any:
        async with Runner.open(db, **objects) as runner:
            return await fn(runner)

    return asyncio.run(go())


def writers(*, writer_tools: list[str] | None = None, mcp_servers: dict[str, Any] | None = None) -> Team:
    """A two-role content team, built in Python."""
    tools = writer_tools if writer_tools is not None else ["write_file", "read_file"]
    return Team(name="writers", description="Writes and edits.", mcp_servers=mcp_servers or {}, roles=[
        Role(name="researcher", capabilities=["research"], prompt="You research. Name sources."),
        Role(name="writer", capabilities=["writing"], prompt="You write clearly.", tools=tools),
    ])


# --- teams as files ----------------------------------------------------------------------------------------------


def test_a_team_file_with_roles_of_its_own_runs_end_to_end_from_the_cli(tmp_path: Path, db: Path) -> None:
    team_file = tmp_path / "data.yaml"
    team_file.write_text(DATA_TEAM)
    out = troupe_cli(db, "run", "hierarchical", "Analyse churn in the customer data", "--team-file", str(team_file),
                     "--thread", "churn", "--auto-approve", "--latency", "0")
    assert out.returncode == 0, out.stderr
    assert "team: data (collector, cleaner, modeller, reporter)" in out.stdout
    assert "status: completed" in out.stdout

    shown = json.loads(troupe_cli(db, "show", "churn", "--json").stdout)
    assert [t["assignee"] for t in shown["plan"]["tasks"]] == DATA_ROLES
    assert [r["name"] for r in shown["team"]["roles"]] == DATA_ROLES
    assert shown["team"]["patterns"] == {"sequential": {"stages": DATA_ROLES}}
    assert {m["sender"] for m in shown["messages"] if m["kind"] == "ARTIFACT"} == set(DATA_ROLES)

    # The run keeps the team as it started: editing the file afterwards does not change the stored run.
    team_file.write_text(DATA_TEAM.replace("reporter", "presenter"))
    again = json.loads(troupe_cli(db, "show", "churn", "--json").stdout)
    assert [r["name"] for r in again["team"]["roles"]] == DATA_ROLES


def test_user_teams_are_found_by_name_and_listed_with_their_origin(tmp_path: Path, db: Path) -> None:
    config = tmp_path / "config"
    (config / "troupe" / "teams").mkdir(parents=True)
    (config / "troupe" / "teams" / "data.yaml").write_text(DATA_TEAM)
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "content.yaml").write_text((Path(hierarchical.__file__).parents[1] / "nodes" / "teams" /
                                         "content.yaml").read_text().replace("A content pipeline", "Our own pipeline"))
    env = {"XDG_CONFIG_HOME": str(config), "TROUPE_TEAMS": str(extra)}

    listed = troupe_cli(db, "teams", **env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:2] for line in listed.stdout.splitlines() if not line.startswith(" ")]
    assert ["data", "user"] in rows and ["software", "built-in"] in rows
    assert rows.index(["content", "$TROUPE_TEAMS"]) < rows.index(["content", "built-in"])
    assert "Our own pipeline" in listed.stdout and "(shadowed by the one above)" in listed.stdout

    out = troupe_cli(db, "run", "hierarchical", "Analyse churn in the customer data", "--team", "data",
                     "--thread", "byname", "--await-approval", "--latency", "0", **env)
    assert out.returncode == 4, out.stderr
    shown = json.loads(troupe_cli(db, "show", "byname", "--json").stdout)
    assert [t["assignee"] for t in shown["plan"]["tasks"]] == DATA_ROLES

    unknown = troupe_cli(db, "run", "hierarchical", "x", "--team", "marketing", **env)
    assert unknown.returncode == 2
    known = unknown.stderr.split("unknown team 'marketing'; known: ")[1].split(" (or give")[0].split(", ")
    assert {"content", "data", "software"} <= set(known) and known == sorted(known)


BAD_FILES = {
    "yaml-syntax": (DATA_TEAM.replace("capabilities: [cleaning]", "capabilities: [cleaning"),
                    "data.yaml:9: invalid YAML: expected ',' or ']'"),
    "missing-field": (DATA_TEAM.replace("    capabilities: [modelling]\n", ""),
                      "data.yaml:10: roles[2].capabilities: field required"),
    "unknown-field": (DATA_TEAM.replace("    capabilities: [cleaning]", "    capabilites: [cleaning]"),
                      "data.yaml:8: roles[1].capabilites: unknown field 'capabilites'"),
    "duplicate-role": (DATA_TEAM.replace("name: reporter", "name: cleaner"),
                       "data.yaml:14: roles[3].name: duplicate role name 'cleaner' (also roles[1])"),
    "unknown-tool": (DATA_TEAM.replace("capabilities: [cleaning]", "capabilities: [cleaning]\n    tools: [write_file, "
                                       "word_count]"),
                     "data.yaml:9: roles[1].tools[1]: unknown tool 'word_count' in role 'cleaner'"),
    "unknown-provider": (DATA_TEAM.replace("capabilities: [modelling]", "capabilities: [modelling]\n    model: "
                                           "acme:big-1"),
                         "data.yaml:12: roles[2].model: unknown model provider 'acme'"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_team_file_gets_one_line_with_file_line_and_field(tmp_path: Path, db: Path, case: str) -> None:
    text, expected = BAD_FILES[case]
    path = tmp_path / "data.yaml"
    path.write_text(text)
    for args in (["teams", "check", str(path)], ["run", "hierarchical", "Analyse churn", "--team-file", str(path)]):
        out = troupe_cli(db, *args)
        assert out.returncode == 2, out
        assert out.stdout == "" and "Traceback" not in out.stderr
        line = out.stderr.strip()
        assert "\n" not in line, line
        assert line.startswith(f"troupe: error: {tmp_path}/") and expected in line, line
    assert not db.exists(), "a bad team file must not create the database"


def test_teams_check_accepts_a_good_file(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "data.yaml"
    path.write_text(DATA_TEAM)
    out = troupe_cli(db, "teams", "check", str(path))
    assert out.returncode == 0, out.stderr
    assert f"ok: {path}: team 'data' with 4 roles" in out.stdout


# --- model objects -----------------------------------------------------------------------------------------------


class Recording(OfflineChatModel):
    """The offline model, remembering the brief of every call it served."""

    briefs: list[dict[str, Any]] = Field(default_factory=list)

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.briefs.append(_brief(messages))
        return await super()._agenerate(messages, *args, **kwargs)


def test_a_model_object_serves_the_agents_it_was_given_to(db: Path, ctx: RunContext) -> None:
    qa = Recording(role="worker", briefs=[])
    review = Recording(role="reviewer", briefs=[])

    async def go(runner: Runner) -> Any:
        outcome = await runner.start("hierarchical", "Build a REST API for todo management", ctx, team="software",
                                     thread_id="objs")
        return outcome, await runner.journal("objs")

    outcome, messages = run(db, go, models={"qa": qa, "reviewer": review})
    plan = outcome.values["plan"]
    qa_task = next(t.id for t in plan.tasks if t.assignee == "qa")
    assert qa.briefs and {b["role"] for b in qa.briefs} == {"qa"}
    assert {b["subtask"]["id"] for b in qa.briefs} == {qa_task}
    reviews = [m for m in messages if m.kind == Kind.REVIEW_RESULT]
    assert len(review.briefs) == len(reviews) > len(plan.tasks)  # the reviewer object served every review
    assert outcome.status == "awaiting_approval"
    assert outcome.info.objects["models"] == ["qa", "reviewer"]


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as s:
        yield s


def test_a_chat_openai_object_reaches_its_server_with_its_own_settings(
    db: Path, ctx: RunContext, server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    chat = ChatOpenAI(model="gpt-custom", base_url=server.url, api_key="sk-from-the-object",  # type: ignore[arg-type]
                      temperature=0.3, max_retries=0)

    async def go(runner: Runner) -> Any:
        return await runner.start("hierarchical", BLOG_TASK, ctx, team=writers(), thread_id="chat")

    outcome = run(db, go, models=chat)
    assert outcome.status == "awaiting_approval"
    assert all(t.status == TaskStatus.DONE for t in outcome.values["board"].values())
    assert len(server.requests) >= 5  # plan, two workers with two turns each, reviews
    assert {b["model"] for b in server.requests} == {"gpt-custom"}
    assert {b["temperature"] for b in server.requests} == {0.3}
    keys = {v for h in server.headers for k, v in h.items() if k.lower() == "authorization"}
    assert keys == {"Bearer sk-from-the-object"} and len(server.headers) == len(server.requests)


# --- tools -------------------------------------------------------------------------------------------------------


def test_a_plain_function_is_called_by_a_worker_and_its_result_reaches_the_artifact(db: Path, ctx: RunContext) -> None:
    calls: list[str] = []

    def word_count(text: str) -> int:
        """Count the words in a text."""
        calls.append(text)
        return len(text.split())

    async def go(runner: Runner) -> Any:
        return await runner.start("hierarchical", BLOG_TASK, ctx,
                                  team=writers(writer_tools=["write_file", "word_count"]), thread_id="tool")

    outcome = run(db, go, tools=[word_count])
    board, plan = outcome.values["board"], outcome.values["plan"]
    writing = next(t for t in plan.tasks if t.assignee == "writer")
    artifact = (Path(ctx.workspace_root) / "tool" / board[writing.id].artifact).read_text()
    assert calls and calls[0] == writing.description
    assert f"- word_count: {len(calls[0].split())}" in artifact
    assert outcome.info.objects["tools"] == ["word_count"]


def test_an_unknown_tool_name_fails_the_build() -> None:
    with pytest.raises(TeamError, match="unknown tool 'word_count' in role 'writer'"):
        hierarchical.build(team=writers(writer_tools=["write_file", "word_count"]))

    def word_count(text: str) -> int:
        """Count the words in a text."""
        return len(text.split())

    hierarchical.build(team=writers(writer_tools=["write_file", "word_count"]), tools=[word_count])
    with pytest.raises(TeamError, match="no role 'critic'"):
        hierarchical.build(team=writers(), agents={"critic": create_agent(OfflineChatModel(), tools=[])})
    with pytest.raises(TeamError, match="models\\['critic'\\]"):
        hierarchical.build(team=writers(), models={"critic": OfflineChatModel()})


# --- existing agents ---------------------------------------------------------------------------------------------


def test_a_compiled_agent_joins_the_team_and_is_reviewed_like_any_worker(db: Path, ctx: RunContext) -> None:
    fake = GenericFakeChatModel(messages=iter([
        AIMessage("Solar facts. Lists at least five key facts: cost, output, storage, land, jobs."),
        AIMessage("Solar facts. Lists at least five key facts: cost, output, storage, land, jobs. "
                  "Names a source for every fact: IEA 2025, IRENA, NREL, EIA, IEA jobs report."),
    ]))
    researcher = create_agent(fake, tools=[], name="researcher")

    async def go(runner: Runner) -> Any:
        outcome = await runner.start("hierarchical", BLOG_TASK, ctx, team=writers(), thread_id="agent")
        return outcome, await runner.journal("agent")

    outcome, messages = run(db, go, agents=[researcher])
    research = next(t for t in outcome.values["plan"].tasks if t.assignee == "researcher")
    verdicts = [m.approved for m in messages if m.kind == Kind.REVIEW_RESULT and m.correlation_id == research.id]
    assert verdicts == [False, True], "the agent's first answer was sent back, its second approved"
    artifact = Path(ctx.workspace_root) / "agent" / outcome.values["board"][research.id].artifact
    assert artifact.read_text().startswith("Solar facts.") and "IRENA" in artifact.read_text()
    assert outcome.values["board"][research.id].status == TaskStatus.DONE
    assert outcome.info.objects["agents"] == ["researcher"]


def test_an_agent_with_troupes_workspace_tools_writes_its_own_artifact(db: Path, ctx: RunContext) -> None:
    writer = create_agent(OfflineChatModel(role="worker", draft_flaw_rate=0.0), tools=list(WORKSPACE_TOOLS))

    async def go(runner: Runner) -> Any:
        return await runner.start("hierarchical", BLOG_TASK, ctx, team=writers(), thread_id="tools")

    outcome = run(db, go, agents={"writer": writer})
    task = next(t for t in outcome.values["plan"].tasks if t.assignee == "writer")
    record = outcome.values["board"][task.id]
    assert record.status == TaskStatus.DONE and record.artifact == f"{task.id}-writing.md"
    assert (Path(ctx.workspace_root) / "tools" / record.artifact).read_text().startswith(f"# {task.title}")


def test_the_shipped_teams_are_files(tmp_path: Path) -> None:
    content = ["researcher", "outliner", "writer", "fact_checker", "seo", "editor"]
    assert [r.name for r in load_team("content").roles] == content
    assert load_team(Path(hierarchical.__file__).parents[1] / "nodes" / "teams" / "software.yaml").name == "software"


# --- MCP servers -------------------------------------------------------------------------------------------------

NOTES_SERVER = Path(__file__).with_name("mcp_notes_server.py")


def notes_team(log: Path, *, crash: bool = False, command: str = sys.executable) -> Team:
    """The writers, the writer with the notes server's `add_note` tool (started over stdio)."""
    env = {"NOTES_LOG": str(log), "NOTES_CRASH_ON_ADD": "1" if crash else "0"}
    server = McpServer(command=command, args=[str(NOTES_SERVER)], env=env)
    return writers(writer_tools=["write_file", "mcp:notes/add_note"], mcp_servers={"notes": server})


def test_a_worker_calls_a_real_mcp_server_over_stdio(db: Path, ctx: RunContext, tmp_path: Path) -> None:
    log = tmp_path / "notes.jsonl"

    async def go(runner: Runner) -> Any:
        return await runner.start("hierarchical", BLOG_TASK, ctx, team=notes_team(log), thread_id="mcp")

    outcome = run(db, go)
    writing = next(t for t in outcome.values["plan"].tasks if t.assignee == "writer")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    record = outcome.values["board"][writing.id]
    assert record.status == TaskStatus.DONE
    assert len(calls) == record.round, "one call to the server per work round"
    assert {c["tool"] for c in calls} == {"add_note"} and {c["text"] for c in calls} == {writing.description}
    saved = f"- add_note: note {len(calls)} saved ({len(writing.description.split())} words)"
    assert saved in (Path(ctx.workspace_root) / "mcp" / record.artifact).read_text()


@pytest.mark.parametrize("failure", ["dies mid-run", "does not start"])
def test_an_mcp_server_that_fails_fails_only_that_task(db: Path, ctx: RunContext, tmp_path: Path,
                                                       failure: str) -> None:
    """The writing subtask fails with the server's error (not the run); the supervisor splits it (no other role
    can write), its parts fail the same way and go to a person, who skips them; the research finishes."""
    log = tmp_path / "notes.jsonl"
    team = notes_team(log, crash=True) if failure == "dies mid-run" else notes_team(log, command="no-such-server")
    why = ("MCP server 'notes' failed during 'add_note'" if failure == "dies mid-run"
           else "MCP server 'notes' did not start: FileNotFoundError")

    async def go(runner: Runner) -> Any:
        outcome = escalated = await runner.start("hierarchical", BLOG_TASK, ctx, team=team, thread_id="dies")
        skipped: list[str] = []
        while outcome.gate == "escalation" and len(skipped) < 10:
            skipped += [t["id"] for t in outcome.interrupt["tasks"]]
            outcome = await runner.approve("dies", Decision(approved=False, comment="no notes server"))
        return escalated, outcome, skipped, await runner.journal("dies")

    escalated, outcome, skipped, messages = run(db, go)
    assert escalated.gate == "escalation" and why in escalated.interrupt["details"], escalated.error
    assert outcome.status == "awaiting_approval" and outcome.gate == "approval", "the run goes on to the gate"
    board, plan = outcome.values["board"], outcome.values["plan"]
    writing = next(t for t in plan.tasks if t.assignee == "writer" and t.split_from is None)
    research = next(t for t in plan.tasks if t.assignee == "researcher")
    parts = [t.id for t in plan.tasks if t.split_from == writing.id]
    assert board[research.id].status == TaskStatus.DONE
    assert board[writing.id].status == TaskStatus.SPLIT and why in board[writing.id].history[0]
    assert parts and skipped == parts
    for p in parts:
        assert board[p].status == TaskStatus.FAILED and board[p].final and why in board[p].history[0]
    [decided, _] = [m for m in messages if m.kind == Kind.REPLAN and m.action == "split"]
    assert decided.correlation_id == writing.id and why in decided.reason
    if failure == "dies mid-run":  # one server process per attempt, each dying at its first call
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        assert [c["tool"] for c in calls] == ["add_note"] * (1 + len(parts))
        assert len({c["pid"] for c in calls}) == len(calls)
    else:
        assert not log.exists()
    failed = [m for m in messages if m.kind == Kind.PROGRESS and m.note.startswith("failed:")]
    assert failed[0].correlation_id == writing.id  # then its parts, in parallel: each attempt once, no other task
    assert sorted(m.correlation_id for m in failed[1:]) == parts
    assert all(why in m.note for m in failed)


# --- durable with objects ----------------------------------------------------------------------------------------

SCRIPT = '''
import asyncio, sys
from pathlib import Path

from graphs.runtime import Runner
from nodes.offline_model import OfflineChatModel
from nodes.teams import load_team
from state.context import RunContext
from state.roles import Team
from state.team import Decision


def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


async def main(db: str, workspaces: str, command: str) -> None:
    team = load_team("software").model_dump()
    for role in team["roles"]:
        if role["name"] == "backend":
            role["tools"] = ["write_file", "read_file", "word_count"]
    slow = OfflineChatModel(role="worker", latency=0.3)  # the object every worker gets
    async with Runner.open(Path(db), models={"worker": slow}, tools=[word_count]) as runner:
        if command == "start":
            run = await runner.start("hierarchical", "Build a REST API for todo management",
                                     RunContext(workspace_root=workspaces), team=Team.model_validate(team),
                                     thread_id="objects")
        else:
            run = await runner.resume("objects")
            run = await runner.approve("objects", Decision(approved=True))
        print(run.status)


asyncio.run(main(*sys.argv[1:]))
'''


def test_a_run_with_objects_is_killed_and_resumed_in_a_new_process(db: Path, tmp_path: Path) -> None:
    import os
    import signal
    import time
    from collections import Counter

    script, workspaces = tmp_path / "team_run.py", tmp_path / "ws"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(workspaces), "start"], env=cli_env(db),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any((workspaces / "objects" / name).exists() for name in ("t2_persistence.py", "t3_backend.py")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached its parallel wave"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    before = json.loads(troupe_cli(db, "show", "objects", "--json").stdout)
    assert before["status"] == "stopped"
    assert before["objects"] == {"models": ["worker"], "tools": ["word_count"], "agents": []}
    finished = {m["correlation_id"] for m in before["messages"] if m["kind"] == "REVIEW_RESULT" and m["approved"]}
    assert finished, "nothing had finished before the kill"

    without = troupe_cli(db, "resume", "objects")  # the CLI cannot supply Python objects
    assert without.returncode == 2
    assert "started with objects this runner lacks (models=['worker']; tools=['word_count'])" in without.stderr

    resumed = subprocess.run([sys.executable, str(script), str(db), str(workspaces), "resume"], env=cli_env(db),
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == ["completed"]
    after = json.loads(troupe_cli(db, "show", "objects", "--json").stdout)
    started = Counter(m["correlation_id"] for m in after["messages"]
                      if m["kind"] == "PROGRESS" and m["note"].startswith("started round 1"))
    assert all(started[t] == 1 for t in finished), f"finished work was redone: {started}"
    backend = next(t["id"] for t in after["plan"]["tasks"] if t["assignee"] == "backend")
    assert "- word_count: " in (workspaces / "objects" / after["board"][backend]["artifact"]).read_text()


# --- specs and settings ------------------------------------------------------------------------------------------


def test_role_models_and_their_settings_come_from_the_team_file(tmp_path: Path, db: Path,
                                                               server: OpenAICompatServer) -> None:
    team = DATA_TEAM.replace("    model_settings: {temperature: 0.2, max_tokens: 800}", f"""\
    model: openai:gpt-modeller
    model_settings: {{temperature: 0.7, max_tokens: 321, timeout: 30, base_url: "{server.url}", \
api_key_env: MODELLER_KEY}}""")
    (tmp_path / "data.yaml").write_text(team)
    out = troupe_cli(db, "run", "hierarchical", "Analyse churn in the customer data", "--team-file",
                     str(tmp_path / "data.yaml"), "--model", "reporter=openai:gpt-reporter", "--base-url", server.url,
                     "--thread", "specs", "--latency", "0", MODELLER_KEY="sk-modeller", OPENAI_API_KEY="sk-default")
    assert out.returncode == 0, out.stderr
    assert "models: offline model (deterministic stand-in, no LLM); modeller: openai:gpt-modeller; " \
           "reporter: openai:gpt-reporter" in out.stdout
    by_model: dict[str, list[int]] = {}
    for i, body in enumerate(server.requests):
        by_model.setdefault(body["model"], []).append(i)
    assert set(by_model) == {"gpt-modeller", "gpt-reporter"}, "every other agent stayed on the offline model"
    modeller = [server.requests[i] for i in by_model["gpt-modeller"]]
    assert {b["temperature"] for b in modeller} == {0.7}
    assert {b.get("max_completion_tokens", b.get("max_tokens")) for b in modeller} == {321}
    keys = {v for i in by_model["gpt-modeller"] for k, v in server.headers[i].items() if k.lower() == "authorization"}
    assert keys == {"Bearer sk-modeller"}
    assert all("temperature" not in server.requests[i] for i in by_model["gpt-reporter"])


def test_any_provider_init_chat_model_knows_is_built_with_the_role_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import AzureChatOpenAI

    from nodes.models import get_model
    from state.roles import ModelSettings

    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "sk-azure")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    role = Role(name="writer", capabilities=["writing"], prompt="p", model="azure_openai:gpt-4o",
                model_settings=ModelSettings(temperature=0.4, max_tokens=99))
    model = get_model("worker", RunContext(), agent="writer", role=role)
    assert isinstance(model, AzureChatOpenAI)
    assert (model.deployment_name or model.model_name, model.temperature, model.max_tokens) == ("gpt-4o", 0.4, 99)
