"""MCP tools against a real server (tests/mcp_notes_server.py): loading, selecting, and every way a server can fail."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

import tools.mcp as mcp_module
from state.roles import McpServer
from tools.mcp import ToolServerError, mcp_tools

NOTES_SERVER = Path(__file__).resolve().with_name("mcp_notes_server.py")


def notes(log: Path, **env: str) -> McpServer:
    """The notes server over stdio, logging its calls to `log`."""
    return McpServer(command=sys.executable, args=[str(NOTES_SERVER)],
                     env={"NOTES_LOG": str(log), "PATH": os.environ["PATH"], **env})


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def call(tool: BaseTool, **args: Any) -> ToolMessage:
    """Invoke `tool` the way an agent does: with a ToolCall, getting a ToolMessage."""
    message = await tool.ainvoke({"name": tool.name, "args": args, "id": "call-1", "type": "tool_call"})
    assert isinstance(message, ToolMessage)
    return message


def use(servers: dict[str, McpServer], refs: Sequence[str], body: Callable[[dict[str, BaseTool]], Awaitable[Any]],
        **options: Any) -> Any:
    """Open the tools `refs` select, await `body(tools)`, close them."""

    async def go() -> Any:
        async with mcp_tools(servers, refs, **options) as tools:
            return await body(tools)

    return asyncio.run(go())


async def nothing(tools: dict[str, BaseTool]) -> None:
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_tools_load_as_langchain_tools_and_calls_reach_one_server_process(tmp_path: Path) -> None:
    log = tmp_path / "notes.jsonl"

    async def body(tools: dict[str, BaseTool]) -> list[ToolMessage]:
        assert sorted(tools) == ["add_note", "crash"]
        assert convert_to_openai_tool(tools["add_note"])["function"]["parameters"]["required"] == ["text"]
        add = tools["add_note"]
        return [await call(add, text="buy more milk"), await call(add), await call(add, text="call Bo")]

    first, refused, second = use({"notes": notes(log)}, ["mcp:notes"], body)
    assert "note 1 saved (3 words)" in first.text and "note 2 saved (2 words)" in second.text
    assert first.status == "success" and first.tool_call_id == "call-1"
    assert refused.status == "error" and "Field required" in refused.text  # the tool's own error, for the model
    logged = calls(log)
    assert [(c["tool"], c["text"]) for c in logged] == [("add_note", "buy more milk"), ("add_note", "call Bo")]
    assert logged[0]["pid"] == logged[1]["pid"]


def test_a_ref_can_select_one_tool(tmp_path: Path) -> None:
    async def names(tools: dict[str, BaseTool]) -> list[str]:
        return list(tools)

    assert use({"notes": notes(tmp_path / "log")}, ["mcp:notes/add_note", "write_file"], names) == ["add_note"]


def test_an_unknown_tool_names_the_tools_the_server_has(tmp_path: Path) -> None:
    with pytest.raises(ToolServerError, match=r"'notes' has no tool nope \(it has: add_note, crash\)"):
        use({"notes": notes(tmp_path / "log")}, ["mcp:notes/nope"], nothing)


def test_one_tool_name_from_two_servers_is_refused(tmp_path: Path) -> None:
    servers = {"a": notes(tmp_path / "a"), "b": notes(tmp_path / "b")}
    with pytest.raises(ToolServerError, match="MCP servers 'a' and 'b' both have tool 'add_note'"):
        use(servers, ["mcp:a", "mcp:b/add_note"], nothing)


@pytest.mark.parametrize(("server", "why"), [
    (McpServer(command="/no/such/mcp-server"), "FileNotFoundError"),
    (McpServer(command=sys.executable, args=["-c", "raise SystemExit(3)"]), "Connection closed"),
    (McpServer(command=sys.executable, args=["-c", "import sys; sys.stdin.read()"]), "no answer within 0.5 s"),
    (McpServer(url=f"http://127.0.0.1:{free_port()}/mcp"), "ConnectError"),
], ids=["no-such-command", "exits-at-once", "never-answers", "http-not-listening"])
def test_a_server_that_does_not_start_is_a_tool_server_error_soon(server: McpServer, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(ToolServerError, match=f"MCP server 'broken' did not start: .*{why}"):
        use({"broken": server}, ["mcp:broken"], nothing, start_timeout=0.5)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("tool", "args", "env"), [
    ("crash", {"reason": "test"}, {}),
    ("add_note", {"text": "last words"}, {"NOTES_CRASH_ON_ADD": "1"}),
])
def test_a_server_dying_during_a_call_fails_that_call_and_later_ones(tmp_path: Path, tool: str, args: dict[str, str],
                                                                      env: dict[str, str]) -> None:
    log = tmp_path / "notes.jsonl"
    errors: list[str] = []

    async def body(tools: dict[str, BaseTool]) -> None:
        for name, arguments in ((tool, args), ("add_note", {"text": "anyone there?"})):
            with pytest.raises(ToolServerError) as failed:
                await call(tools[name], **arguments)
            errors.append(str(failed.value))

    use({"notes": notes(log, **env)}, ["mcp:notes"], body)  # and the context exits cleanly
    assert errors == [f"MCP server 'notes' failed during {tool!r}: McpError: Connection closed",
                      "MCP server 'notes' failed during 'add_note': ClosedResourceError: connection lost"]
    assert [c["tool"] for c in calls(log)] == [tool]


def test_the_error_of_the_dying_call_is_what_leaves_the_context(tmp_path: Path) -> None:
    async def body(tools: dict[str, BaseTool]) -> None:
        await call(tools["crash"], reason="boom")

    with pytest.raises(ToolServerError, match=r"^MCP server 'notes' failed during 'crash'"):
        use({"notes": notes(tmp_path / "log")}, ["mcp:notes"], body)


def test_an_error_of_the_body_leaves_the_context_unwrapped(tmp_path: Path) -> None:
    async def body(tools: dict[str, BaseTool]) -> None:
        raise KeyError("the worker's own bug")

    with pytest.raises(KeyError, match="the worker's own bug"):
        use({"notes": notes(tmp_path / "log")}, ["mcp:notes"], body)


@pytest.fixture
def http_notes(tmp_path: Path) -> Iterator[tuple[McpServer, Path]]:
    """The notes server over streamable HTTP on a free local port, and its log."""
    port = free_port()
    log = tmp_path / "notes.jsonl"
    env = {**os.environ, "NOTES_LOG": str(log)}
    process = subprocess.Popen([sys.executable, str(NOTES_SERVER), str(port)], env=env)
    try:
        deadline = time.monotonic() + 10
        while not listening(port):
            assert time.monotonic() < deadline and process.poll() is None, "the HTTP notes server did not come up"
            time.sleep(0.05)
        yield McpServer(url=f"http://127.0.0.1:{port}/mcp"), log
    finally:
        process.kill()
        process.wait()


def test_an_http_server_dying_during_a_call_is_a_tool_server_error(http_notes: tuple[McpServer, Path],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_module, "PING_EVERY", 0.2)
    server, log = http_notes

    async def body(tools: dict[str, BaseTool]) -> None:
        assert "note 1 saved" in (await call(tools["add_note"], text="over http")).text
        await call(tools["crash"], reason="gone")

    started = time.monotonic()
    with pytest.raises(ToolServerError, match=r"^MCP server 'web' failed during 'crash': ConnectError"):
        use({"web": server}, ["mcp:web"], body)
    assert time.monotonic() - started < 5
    assert [c["tool"] for c in calls(log)] == ["add_note", "crash"]
