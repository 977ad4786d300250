"""A role's MCP tools: one session per server for as long as a worker needs them, and clear errors when a server fails.

`mcp_tools` opens each referenced server once (stdio process or streamable HTTP) and yields the selected
tools as LangChain tools, so all of a worker's calls to a server go to the same session. An MCP server is
external code: whatever goes wrong with it (it cannot be started, does not answer, dies mid-run, breaks
the transport) comes out of this module as a `ToolServerError` naming the server. A tool that reports an
error itself (`isError`) is not a failure of the server: the adapter returns it to the model as an error
ToolMessage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from langchain_core.tools import BaseTool

from state.roles import MCP_PREFIX, McpServer, mcp_server_of

if TYPE_CHECKING:  # the MCP client is imported when a role uses a server (it takes a quarter second to import)
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langchain_mcp_adapters.interceptors import MCPToolCallRequest, MCPToolCallResult
    from langchain_mcp_adapters.sessions import Connection
    from mcp import ClientSession

START_TIMEOUT = 20.0
"""Seconds a server has to start and list its tools."""

PING_EVERY = 2.0
"""Seconds between pings to an HTTP server while a tool call waits for it."""

_LOST = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)
"""What anyio raises, without a message, on a stream to a server that is gone."""

_Handler = Callable[["MCPToolCallRequest"], Awaitable["MCPToolCallResult"]]


class ToolServerError(RuntimeError):
    """An MCP server that failed to start, answer or stay up; the one-line message names the server."""


@asynccontextmanager
async def mcp_tools(
    servers: Mapping[str, McpServer], refs: Sequence[str], *, start_timeout: float = START_TIMEOUT
) -> AsyncIterator[dict[str, BaseTool]]:
    """The tools `refs` select, by name, usable until the context exits.

    'mcp:S' selects every tool of server S, 'mcp:S/T' only T; other entries of `refs` are ignored, so a
    role's whole tool list can be passed. Raises ToolServerError for a server that does not start within
    `start_timeout` seconds, an unknown tool, or one tool name offered by two servers.
    """
    wanted = _selection(refs)
    if not wanted:
        yield {}
        return
    from langchain_mcp_adapters.client import MultiServerMCPClient

    client = MultiServerMCPClient({name: _connection(servers, name) for name in wanted})
    tools: dict[str, BaseTool] = {}
    owner: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        for name, names in wanted.items():
            offered = await stack.enter_async_context(_server_tools(client, name, start_timeout))
            for tool in _pick(name, offered, names):
                if tool.name in owner:
                    raise ToolServerError(f"MCP servers {owner[tool.name]!r} and {name!r} both have tool {tool.name!r}")
                tools[tool.name], owner[tool.name] = tool, name
        yield tools


def _selection(refs: Sequence[str]) -> dict[str, set[str] | None]:
    """{server: the tool names selected, or None for all of them}, in the order the servers first appear."""
    wanted: dict[str, set[str] | None] = {}
    for ref in refs:
        server = mcp_server_of(ref)
        if server is None:
            continue
        _, slash, tool = ref.removeprefix(MCP_PREFIX).partition("/")
        names = wanted.setdefault(server, set())
        if not slash:
            wanted[server] = None
        elif names is not None:
            names.add(tool)
    return wanted


def _connection(servers: Mapping[str, McpServer], name: str) -> Connection:
    """The adapter's connection settings for a declared server."""
    if name not in servers:
        raise ToolServerError(f"MCP server {name!r} is not declared (mcp_servers: {', '.join(servers) or 'none'})")
    s = servers[name]
    if s.url is not None:
        return {"transport": "streamable_http", "url": s.url, "headers": s.headers}
    assert s.command is not None  # McpServer validates: a command or a url
    return {"transport": "stdio", "command": s.command, "args": s.args, "env": s.env, "cwd": s.cwd}


def _pick(server: str, offered: list[BaseTool], names: set[str] | None) -> list[BaseTool]:
    """The offered tools that are selected; an unknown name is an error that lists what the server has."""
    if names is None:
        return offered
    unknown = names - {t.name for t in offered}
    if unknown:
        have = ", ".join(t.name for t in offered) or "none"
        raise ToolServerError(f"MCP server {server!r} has no tool {', '.join(sorted(unknown))} (it has: {have})")
    return [t for t in offered if t.name in names]


@asynccontextmanager
async def _server_tools(client: MultiServerMCPClient, name: str, start_timeout: float) -> AsyncIterator[list[BaseTool]]:
    """All tools of server `name` over one session that stays open for the context."""
    guard = _Guard(name)
    failure: BaseException | None = None
    try:
        async with client.session(name, auto_initialize=False) as session:
            if client.connections[name]["transport"] == "streamable_http":
                guard.pinged = session
            tools = await _start(session, name, guard, start_timeout)
            guard.started = True
            try:
                yield tools
            except BaseException as exc:  # noted, to tell it apart from the server's failures on exit
                guard.body_error = exc
                raise
    except BaseException as exc:  # the boundary: the server's failures become ToolServerError
        failure = guard.outcome(exc)
    if failure is not None:
        raise failure


async def _start(session: ClientSession, name: str, guard: _Guard, timeout: float) -> list[BaseTool]:
    """Initialize the session and list the server's tools, within `timeout` seconds."""
    from langchain_mcp_adapters.tools import load_mcp_tools

    try:
        with anyio.fail_after(timeout):
            await session.initialize()
            return await load_mcp_tools(session, server_name=name, tool_interceptors=[guard])
    except TimeoutError as exc:
        raise ToolServerError(f"MCP server {name!r} did not start: no answer within {timeout:g} s") from exc
    except Exception as exc:
        raise ToolServerError(f"MCP server {name!r} did not start: {_describe(exc)}") from exc


class _Guard:
    """Watches one server's session: turns failed tool calls and failures on exit into ToolServerError.

    It is the adapter's tool-call interceptor, so it sees the session call itself; a tool's own error
    result (`isError`) is turned into a ToolException after it and never reaches it.
    """

    def __init__(self, server: str) -> None:
        self.server = server
        self.started = False
        self.pinged: ClientSession | None = None  # an HTTP session, pinged while a call waits
        self.body_error: BaseException | None = None
        self.in_flight: list[str] = []  # calls interrupted by a cancellation stay here

    async def __call__(self, request: MCPToolCallRequest, handler: _Handler) -> MCPToolCallResult:
        self.in_flight.append(request.name)
        try:
            result = await self._watched(request, handler)
        except Exception as exc:  # McpError 'Connection closed', anyio Closed/BrokenResourceError, httpx errors
            self.in_flight.remove(request.name)
            raise ToolServerError(
                f"MCP server {self.server!r} failed during {request.name!r}: {_describe(exc)}"
            ) from exc
        self.in_flight.remove(request.name)
        return result

    async def _watched(self, request: MCPToolCallRequest, handler: _Handler) -> MCPToolCallResult:
        """The call; over HTTP with the server pinged meanwhile.

        A stdio server that dies closes its pipe, which fails the call. An HTTP server that dies during a
        call ends the response stream, which the SDK ignores (the call would wait forever); a ping to a
        dead server fails to connect, and that failure cancels the call.
        """
        if self.pinged is None:
            return await handler(request)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_keep_pinging, self.pinged)
            result = await handler(request)
            tg.cancel_scope.cancel()
        return result

    def outcome(self, exc: BaseException) -> BaseException:
        """What to raise for `exc`, raised when the session was left (possibly a group wrapping the body's error)."""
        body = self.body_error
        leaves = _leaves(exc, keep=body)
        if body is not None and any(leaf is body for leaf in leaves):
            for other in (leaf for leaf in leaves if leaf is not body):
                body.add_note(f"MCP server {self.server!r} also failed while closing: {_describe(other)}")
            return body
        ours = [leaf for leaf in leaves if isinstance(leaf, ToolServerError)]
        if ours:
            return ours[0]
        if not all(isinstance(leaf, Exception) for leaf in leaves):
            return exc  # a cancellation from outside, KeyboardInterrupt, ...: not the server's doing
        # The server broke the transport; its task group cancelled the body (`body`, absorbed) or failed on close.
        calls = ", ".join(repr(c) for c in self.in_flight)
        phase = "did not start" if not self.started else f"failed during {calls}" if calls else "failed"
        error = ToolServerError(f"MCP server {self.server!r} {phase}: {_describe(exc)}")
        error.__cause__ = exc
        return error


async def _keep_pinging(session: ClientSession) -> None:
    """Ping every PING_EVERY seconds, each ping waiting at most that long (a busy server may answer late)."""
    while True:
        await anyio.sleep(PING_EVERY)
        with anyio.move_on_after(PING_EVERY):
            await session.send_ping()


def _leaves(exc: BaseException, keep: BaseException | None = None) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, not looking into `keep`; `exc` itself if it is not a group."""
    if isinstance(exc, BaseExceptionGroup) and exc is not keep:
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub, keep)]
    return [exc]


def _describe(exc: BaseException) -> str:
    """'McpError: Connection closed', for each exception inside a group; just the type when there is no message."""
    described = []
    for leaf in _leaves(exc):
        text = str(leaf).strip().splitlines()
        hint = text[0] if text else "connection lost" if isinstance(leaf, _LOST) else ""
        described.append(f"{type(leaf).__name__}: {hint}" if hint else type(leaf).__name__)
    return "; ".join(described)
