"""`langgraph dev` serves every graph of langgraph.json, patterns and recipes, with strict msgpack on.

One server for the module, started as a person would (`langgraph dev`, offline, `LANGGRAPH_STRICT_MSGPACK=true`)
in a temporary working folder: its `.langgraph_api/` and the runs' workspaces land there. It is driven through
the official clients, as Studio and a program would: langgraph-sdk (a thread, a streamed run, each approval
interrupt answered with `Command(resume=...)`, the final state, the state schema) and `RemoteGraph`. No run gets
`context=`, as in Studio: the graphs run on the default settings. The server's log stays clean: it loads from a
checkpoint only the types it knows, and warns about (or, strict, refuses) any other.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from graphs.registry import PATTERNS
from graphs.runtime import recipes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GRAPHS: dict[str, str] = json.loads((ROOT / "langgraph.json").read_text())["graphs"]
TASK = "Build a REST API for todo management"
APPROVE = {"approved": True, "comment": "looks good"}
GATED = ("hierarchical", "teams")
"""Patterns whose runs stop at the approval gate on the default settings."""
TROUBLE = re.compile(r"\[(warning|error|critical)\s*\]|unregistered type|deserializ|traceback", re.IGNORECASE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class DevServer:
    url: str
    log: Path
    started: float
    """Seconds from the command to the first answer of /ok."""

    def trouble(self) -> list[str]:
        """Log lines that warn or fail: a type the server does not load, a blocked deserialization, an error."""
        return [line for line in ANSI.sub("", self.log.read_text()).splitlines() if TROUBLE.search(line)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pattern_of(graph: str) -> str:
    return graph if graph in PATTERNS else str(recipes()[graph].pattern)


def declared_keys(graph: str) -> set[str]:
    """The keys of the state TypedDict the graph is built on."""
    path, _, attr = GRAPHS[graph].partition(":")
    schema = getattr(importlib.import_module(Path(path).with_suffix("").as_posix().lstrip("./").replace("/", ".")),
                     attr).builder.state_schema
    return set(schema.__required_keys__ | schema.__optional_keys__)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("langgraph-dev")
    config = json.loads((ROOT / "langgraph.json").read_text())
    config |= {"dependencies": [str(ROOT)], "graphs": {name: str(ROOT / ref) for name, ref in GRAPHS.items()}}
    (folder / "langgraph.json").write_text(json.dumps(config))
    port, log = free_port(), folder / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_"))}
    env |= {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true",
            "LANGGRAPH_STRICT_MSGPACK": "true", "LANGSMITH_TRACING": "false"}
    command = [str(Path(sys.executable).parent / "langgraph"), "dev", "--no-browser", "--no-reload",
               "--host", "127.0.0.1", "--port", str(port)]
    began = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            assert proc.poll() is None, f"langgraph dev exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.perf_counter() - began < 90, f"no answer on {url}/ok:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert "already in use" not in log.read_text(), "the server moved to another port"
        yield DevServer(url, log, time.perf_counter() - began)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Drive:
    graph: str
    gates: list[str]
    values: dict[str, Any]
    runs: list[str]
    seconds: float


async def drive(client: LangGraphClient, graph: str) -> Drive:
    """One run of `graph` on a new thread, streamed; every interrupt approved, until the run ends."""
    began = time.perf_counter()
    thread = (await client.threads.create())["thread_id"]
    gates: list[str] = []
    start: dict[str, Any] = {"input": {"task": TASK}}
    for _ in range(10):
        interrupts: list[dict[str, Any]] = []
        async for part in client.runs.stream(thread, graph, stream_mode="updates", **start):
            assert part.event != "error", f"{graph}: {part.data}"
            if part.event == "updates":
                interrupts += part.data.get("__interrupt__", [])
        if not interrupts:
            break
        assert len(interrupts) == 1, f"{graph}: people are asked one thing at a time, not {interrupts}"
        gates.append(interrupts[0]["value"]["kind"])
        start = {"command": {"resume": APPROVE}}
    values = (await client.threads.get_state(thread))["values"]
    runs = [r["status"] for r in await client.runs.list(thread)]
    return Drive(graph, gates, values, runs, time.perf_counter() - began)


def test_every_graph_runs_to_its_end_through_the_sdk_with_its_gates_approved(server: DevServer) -> None:
    async def all_graphs() -> list[Drive]:
        client = get_client(url=server.url)
        return list(await asyncio.gather(*(drive(client, graph) for graph in GRAPHS)))

    began = time.perf_counter()
    drives = asyncio.run(all_graphs())
    print(f"\nlanggraph dev answered /ok after {server.started:.1f} s; {len(drives)} graphs at once in "
          f"{time.perf_counter() - began:.1f} s")
    for d in drives:
        print(f"  {d.graph:<16} {d.seconds:4.1f} s  {len(d.runs)} run(s)  gates: {', '.join(d.gates) or '-'}")
        assert d.runs == ["success"] * (len(d.gates) + 1), (d.graph, d.runs)
        assert d.values["status"] == "completed", (d.graph, d.values["status"])
        assert d.values["result"].strip(), d.graph
        if pattern_of(d.graph) in GATED:
            assert d.gates[-1] == "approval", (d.graph, d.gates)
        if pattern_of(d.graph) == "hierarchical":
            assert d.values["decision"]["approved"] and d.values["decision"]["comment"] == APPROVE["comment"]
        if board := d.values.get("board"):
            done = [r for r in board.values() if r["status"] == "done"]
            assert done and all(r["artifact"] for r in done), (d.graph, board)
    assert not server.trouble(), "\n".join(server.trouble())


def test_a_program_drives_the_hierarchical_team_through_remote_graph(server: DevServer) -> None:
    async def run() -> tuple[dict[str, Any], dict[str, Any], Any]:
        remote = RemoteGraph("hierarchical", url=server.url)
        thread = (await get_client(url=server.url).threads.create())["thread_id"]
        config: Any = {"configurable": {"thread_id": thread}}
        stopped = await remote.ainvoke({"task": TASK}, config)
        ended = await remote.ainvoke(Command(resume=APPROVE), config)
        return stopped, ended, await remote.aget_state(config)

    stopped, ended, state = asyncio.run(run())
    assert stopped["__interrupt__"][0]["value"]["kind"] == "approval"
    assert stopped["status"] == "awaiting_approval"
    assert ended["status"] == "completed" and ended["result"].startswith("# ")
    assert state.values["decision"]["approved"] and not state.next
    assert not server.trouble(), "\n".join(server.trouble())


def test_the_state_schema_studio_shows_has_exactly_the_state_keys(server: DevServer) -> None:
    async def schemas() -> dict[str, set[str]]:
        client = get_client(url=server.url)
        shown: dict[str, set[str]] = {}
        for graph in GRAPHS:
            assistant = (await client.assistants.search(graph_id=graph, limit=1))[0]
            shown[graph] = set((await client.assistants.get_schemas(assistant["assistant_id"]))["state_schema"]
                               ["properties"])
        return shown

    shown = asyncio.run(schemas())
    assert {graph: sorted(keys ^ declared_keys(graph)) for graph, keys in shown.items() if keys != declared_keys(graph)
            } == {}, "keys shown that the state does not declare, or declared keys not shown"
    assert not server.trouble(), "\n".join(server.trouble())
