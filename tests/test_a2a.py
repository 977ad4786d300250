"""A2A: `troupe serve` as an agent other frameworks call (the a2a-sdk client here), and a remote A2A agent as a role
of a troupe team. Real processes, real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, get_data_parts, get_message_text, new_data_part
from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest, StreamResponse, Task, TaskState
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from conftest import TODO_TASK, cli_env

from nodes.teams import load_team
from state.roles import TeamError
from state.team_file import parse_team


@dataclass
class Served:
    """A `troupe serve` process: its agent's URL, its database, its log."""

    url: str
    db: Path
    log: Path

    def errors(self) -> str:
        return self.log.read_text()


@dataclass
class Exchange:
    """What one message's stream brought back: the states in order, each status text, the artifacts' text."""

    task_id: str
    context_id: str
    states: list[str]
    texts: list[str]
    artifacts: dict[str, str]
    last: StreamResponse


def troupe(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphs.cli", *args], capture_output=True, text=True,
                          env=cli_env(db), stdin=subprocess.DEVNULL, timeout=120)


def shown(db: Path, thread: str) -> dict[str, Any]:
    """`troupe show THREAD --json`, read by another process."""
    done = troupe(db, "show", thread, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The software team served by hierarchical runs whose gates ask the client (one server for the module)."""
    with serving(tmp_path_factory.mktemp("gated"), "hierarchical", "--team", "software") as served:
        yield served


@contextmanager
def serving(folder: Path, *args: str) -> Iterator[Served]:
    """`troupe serve ARGS` on a free port (it prints its URL), stopped when the block ends."""
    db, log = folder / "served.sqlite", folder / "serve.log"
    with log.open("w") as err:
        process = subprocess.Popen([sys.executable, "-m", "graphs.cli", "serve", *args, "--port", "0", "--latency",
                                    "0"], stdout=subprocess.PIPE, stderr=err, text=True, env=cli_env(db),
                                   stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    try:
        first = process.stdout.readline()
        found = re.search(r"as an A2A agent at (http://127\.0\.0\.1:\d+/)", first)
        assert found, f"troupe serve did not start: {first!r} {log.read_text()}"
        yield Served(found[1], db, log)
    finally:
        process.terminate()
        process.wait(timeout=20)


def card_of(url: str) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as http:
            return await A2ACardResolver(http, url).get_agent_card()

    return asyncio.run(go())


def send(url: str, *parts: Part, task: Exchange | None = None) -> Exchange:
    """One message (to `task`, else a new task) through the a2a-sdk client, its stream followed to the end."""

    async def go() -> Exchange:
        async with httpx.AsyncClient(timeout=60) as http:
            client = ClientFactory(ClientConfig(httpx_client=http)).create(await A2ACardResolver(http, url)
                                                                               .get_agent_card())
            message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=list(parts),
                              task_id=task.task_id if task else None, context_id=task.context_id if task else None)
            seen = Exchange(task.task_id if task else "", task.context_id if task else "", [], [], {},
                            StreamResponse())
            async for event in client.send_message(SendMessageRequest(message=message)):
                seen.last = event
                if event.HasField("task"):
                    seen.task_id, seen.context_id = event.task.id, event.task.context_id
                    seen.states.append(TaskState.Name(event.task.status.state))
                elif event.HasField("status_update"):
                    seen.states.append(TaskState.Name(event.status_update.status.state))
                    seen.texts.append(get_message_text(event.status_update.status.message))
                elif event.HasField("artifact_update"):
                    artifact = event.artifact_update.artifact
                    seen.artifacts[artifact.name] = get_artifact_text(artifact)
            return seen

    return asyncio.run(go())


def task_of(url: str, task_id: str) -> Task:
    async def go() -> Task:
        async with httpx.AsyncClient() as http:
            client = ClientFactory(ClientConfig(httpx_client=http)).create(await A2ACardResolver(http, url)
                                                                               .get_agent_card())
            return await client.get_task(GetTaskRequest(id=task_id))

    return asyncio.run(go())


def at_the_gate(url: str) -> Exchange:
    started = send(url, Part(text=TODO_TASK))
    assert started.states[0] == "TASK_STATE_SUBMITTED" and started.states[-1] == "TASK_STATE_INPUT_REQUIRED"
    return started


# --- the served side ---------------------------------------------------------------------------------------------


def test_the_card_lists_the_teams_skills(gated: Served) -> None:
    card = card_of(gated.url)
    team = load_team("software")
    assert card.name == "software" and "hierarchical" in card.description
    assert [s.id for s in card.skills] == [r.name for r in team.roles]
    assert [list(s.tags) for s in card.skills] == [r.capabilities for r in team.roles]
    assert all(s.description for s in card.skills) and card.capabilities.streaming
    interface = card.supported_interfaces[0]
    assert (interface.url, interface.protocol_binding, interface.protocol_version) == (gated.url, "JSONRPC", "1.0")
    raw = httpx.get(gated.url + ".well-known/agent-card.json").json()
    assert raw["supportedInterfaces"][0]["url"] == gated.url and raw["skills"][0]["tags"] == ["design", "architecture"]


@pytest.mark.slow
def test_a_task_streams_its_run_asks_at_the_gate_and_ends_with_the_result(gated: Served) -> None:
    started = at_the_gate(gated.url)
    assert set(started.states[1:-1]) == {"TASK_STATE_WORKING"}
    assert started.texts[0] == f"team software (hierarchical) starts run {started.task_id}"
    assert any(t.startswith("plan: T1 architect: ") for t in started.texts)
    assert any("TASK_ASSIGN T1" in t for t in started.texts) and any("REVIEW_RESULT T5" in t for t in started.texts)
    question = started.last.status_update.status.message
    assert get_message_text(question).startswith("Approve the team's work for final assembly?")
    [request] = get_data_parts(question.parts)
    assert request["gate"] == "approval" and len(request["request"]["tasks"]) == 5

    answered = send(gated.url, Part(text="approve: ship it"), task=started)
    assert answered.texts[0] == "answer taken: approved (ship it)"
    assert answered.states[-1] == "TASK_STATE_COMPLETED" and not started.artifacts
    result = answered.artifacts["result"]
    assert result.startswith(f"# {TODO_TASK}") and "Approver's note: ship it" in result

    task = task_of(gated.url, started.task_id)  # what the server keeps of the task
    assert TaskState.Name(task.status.state) == "TASK_STATE_COMPLETED"
    assert [get_artifact_text(a) for a in task.artifacts] == [result]
    assert [get_message_text(m) for m in task.history if m.role == Role.ROLE_USER] == [TODO_TASK, "approve: ship it"]
    run = shown(gated.db, started.task_id)  # the run, durable in the server's database: the task id is its thread
    assert (run["status"], run["task"], run["result"]) == ("completed", TODO_TASK, result)


@pytest.mark.slow
def test_a_rejection_ends_the_task_rejected_and_a_bad_answer_changes_nothing(gated: Served) -> None:
    started = at_the_gate(gated.url)
    with pytest.raises(InvalidParamsError, match=r"unusable answer 'maybe': answer 'approve' or 'reject: REASON'"):
        send(gated.url, Part(text="maybe"), task=started)
    with pytest.raises(InvalidParamsError, match="waits at its approval gate, which takes no edit"):
        send(gated.url, new_data_part({"approved": True, "edit": {"summary": "x"}}), task=started)
    with pytest.raises(InvalidParamsError, match=r"unusable decision \(approved: Input should be a valid boolean"):
        send(gated.url, new_data_part({"approved": "perhaps"}), task=started)
    assert TaskState.Name(task_of(gated.url, started.task_id).status.state) == "TASK_STATE_INPUT_REQUIRED"

    rejected = send(gated.url, new_data_part({"approved": False, "comment": "not what we need"}), task=started)
    assert rejected.texts[0] == "answer taken: rejected (not what we need)"
    assert rejected.states[-1] == "TASK_STATE_REJECTED" and not rejected.artifacts
    assert rejected.texts[-1] == f"rejected at the gate: not what we need (run {started.task_id})"
    assert shown(gated.db, started.task_id)["status"] == "rejected"
    with pytest.raises(InvalidParamsError, match=f"task {started.task_id} waits for no input: its run is rejected"):
        send(gated.url, Part(text="approve"), task=started)


def test_bad_messages_get_clear_errors_and_no_traceback(gated: Served) -> None:
    with pytest.raises(InvalidParamsError, match="the task is empty: say what the team should do"):
        send(gated.url, Part(text="   "))
    with pytest.raises(InvalidParamsError, match="the task is 20001 characters; the limit is 20000"):
        send(gated.url, Part(text="x" * 20_001))
    unknown = Exchange("no-such-task", "", [], [], {}, StreamResponse())
    with pytest.raises(TaskNotFoundError, match="Task no-such-task not found"):
        send(gated.url, Part(text="approve"), task=unknown)
    garbled = httpx.post(gated.url, content=b"{not json", headers={"A2A-Version": "1.0"})
    assert garbled.json()["error"]["code"] == -32700
    assert "Traceback" not in gated.errors()


@pytest.mark.slow
def test_a_run_that_fails_ends_its_task_failed_saying_how_to_resume_it(tmp_path: Path) -> None:
    with serving(tmp_path, "hierarchical", "--fail", "supervisor=raise") as served:
        failed = send(served.url, Part(text=TODO_TASK))
        assert "Traceback" not in served.errors()
    assert failed.states[-1] == "TASK_STATE_FAILED"
    assert failed.texts[-1] == ("run stopped: InjectedFailure: offline model told to fail for 'supervisor' (attempt "
                                f"3); it is saved: fix the cause, then `troupe resume {failed.task_id}`")
    assert shown(served.db, failed.task_id)["status"] == "failed"


def test_serve_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    unknown = troupe(db, "serve", "nosuch", "--port", "0")
    assert unknown.returncode == 2 and unknown.stderr.startswith("troupe: error: unknown pattern or recipe 'nosuch'")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = troupe(db, "serve", "hierarchical", "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 2 and re.fullmatch(r"troupe: error: cannot listen on 127\.0\.0\.1:\d+ \(Address already "
                                                 r"in use\): pick another --port or --host\n", busy.stderr)


def test_without_the_a2a_extra_serve_and_remote_roles_say_what_to_install(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "a2a"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('a2a-sdk is not installed')\n")
    team = tmp_path / "team.yaml"
    team.write_text(PARTNERED.format(url="http://127.0.0.1:9/"))
    env = {**cli_env(tmp_path / "t.sqlite"), "PYTHONPATH": str(shim.parent)}
    for args in (["serve", "hierarchical"], ["run", "hierarchical", TODO_TASK, "--team-file", str(team)]):
        done = subprocess.run([sys.executable, "-m", "graphs.cli", *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "pip install 'troupe[a2a]'" in done.stderr and "Traceback" not in done.stderr


# --- a remote agent as a role ------------------------------------------------------------------------------------

PARTNERED = """\
name: partnered
description: Designs and builds here; a partner organization's agent writes the tests, over A2A.
roles:
  - name: architect
    capabilities: [design]
    prompt: You design the data model and the API contract.
  - name: backend
    capabilities: [backend]
    prompt: You implement the endpoints.
  - name: partner_qa
    capabilities: [testing]
    prompt: You are the partner's QA team. Write the automated tests.
    a2a: {url}
"""


def test_a_team_file_names_a_remote_agent_by_url() -> None:
    team = parse_team(PARTNERED.format(url="http://127.0.0.1:8100/"), "team.yaml")
    assert team.role("partner_qa").a2a == "http://127.0.0.1:8100/" and team.role("backend").a2a is None
    with pytest.raises(TeamError, match=r"^team\.yaml:13: roles\[2\]\.a2a: 'ftp://partner' is not the http\(s\) URL "
                                        r"of an A2A agent, e\.g\. http://127\.0\.0\.1:8100/$"):
        parse_team(PARTNERED.format(url="ftp://partner"), "team.yaml")
    with pytest.raises(TeamError, match=r"^team\.yaml:13: roles\[2\]\.a2a: the URL http://\*\*\*@partner/ carries a "
                                        r"credential \(a user name and password\)"):
        parse_team(PARTNERED.format(url="http://me:secret@partner/"), "team.yaml")


@pytest.mark.parametrize("pattern", ["swarm", "debate", "consensus", "event_driven"])
def test_a_pattern_whose_roles_are_not_workers_refuses_a_remote_role(pattern: str) -> None:
    from graphs.registry import builder

    team = parse_team(PARTNERED.format(url="http://127.0.0.1:8100/"), "team.yaml")
    with pytest.raises(TeamError, match=rf"^team\.yaml:13: roles\[2\]\.a2a: role 'partner_qa' is a remote A2A agent, "
                                        rf"but {pattern} roles are not workers"):
        builder(pattern)(team=team)


def call(tmp_path: Path, url: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """A hierarchical run of the partnered team whose tester is the agent at `url`; the run as `troupe show` has it."""
    team, db = tmp_path / "partnered.yaml", tmp_path / "caller.sqlite"
    team.write_text(PARTNERED.format(url=url))
    done = troupe(db, "run", "hierarchical", TODO_TASK, "--team-file", str(team), "--latency", "0", "--auto-approve",
                  "--thread", "caller", "--quiet")
    return done, shown(db, "caller")


@pytest.mark.slow
def test_a_remote_troupe_does_a_subtask_of_a_hierarchical_run(tmp_path: Path) -> None:
    with serving(tmp_path, "hierarchical", "--team", "software", "--auto-approve") as remote:
        done, run = call(tmp_path, remote.url)
        assert "Traceback" not in remote.errors()
    assert done.returncode == 0 and run["status"] == "completed" and run["shortfall"] is None, done.stderr
    [(tested, tester)] = [(t["id"], t["assignee"]) for t in run["plan"]["tasks"] if t["capability"] == "testing"]
    remote_notes = [m for m in run["messages"] if "A2A agent" in m.get("note", "")]
    assert [(m["sender"], m["correlation_id"]) for m in remote_notes] == [(tester, tested)] and tester == "partner_qa"
    found = re.fullmatch(rf"done by the A2A agent at {re.escape(remote.url)}: remote task ([0-9a-f-]{{36}}), \d+ "
                         r"status updates, \d+ characters", remote_notes[0]["note"])
    assert found, remote_notes[0]["note"]
    record = run["board"][tested]
    assert record["status"] == "done" and record["summary"] == f"Delivered by the A2A agent at {remote.url}"
    artifact = (Path(run["workspace"]) / record["artifact"]).read_text()
    theirs = shown(remote.db, found[1])  # the remote run: the A2A task id is its thread in the server's database
    assert theirs["status"] == "completed" and artifact == theirs["result"].strip() + "\n"
    assert theirs["task"].startswith("Write automated tests for todo management\n")
    kinds = [m["kind"] for m in run["messages"] if m["correlation_id"] == tested and m["sender"] != "supervisor"]
    assert kinds[-3:] == ["ARTIFACT", "REVIEW_REQUEST", "REVIEW_RESULT"]  # journaled and reviewed like any work


@pytest.mark.slow
@pytest.mark.parametrize("remote", ["unreachable", "asks for input"])
def test_a_remote_agent_that_cannot_do_it_fails_the_subtask_in_one_line(tmp_path: Path, gated: Served,
                                                                        remote: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    url = dead if remote == "unreachable" else gated.url
    done, run = call(tmp_path, url)
    assert done.returncode == 3 and "Traceback" not in done.stderr + done.stdout, done.stderr
    failures = [m["note"] for m in run["messages"] if m["sender"] == "partner_qa" and m["note"].startswith("failed")]
    expected = (rf"failed: cannot reach the A2A agent at {re.escape(url)}: .+" if remote == "unreachable" else
                rf"failed: the A2A agent at {re.escape(url)} asks for input \(task [0-9a-f-]{{36}}: Approve the "
                r"team's work for final assembly\?\); no one here can answer it: .+")
    assert failures and all(re.fullmatch(expected, f) and "\n" not in f for f in failures), failures
    assert run["board"]["T1"]["status"] == "done" and "subtasks not done" in (run["shortfall"] or "")
