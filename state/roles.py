"""Teams as data: roles (who can do what, on which model, with which tools), MCP servers, pattern settings.

A team comes from a YAML file (`state.team_file`), from Python, or from the files shipped with
troupe. Everything here is plain, validated data; model objects, tools and agents are passed to a
pattern's `build()` and matched to these records by name.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from state.budget import Budget
from state.context import MODEL_ROLES as MODEL_ROLES  # re-exported: a role names its model role
from state.context import ModelRole, ToolCalling
from state.records import AnyRecord
from state.urls import credential, redact, refuse_credential

WORKSPACE_TOOL_NAMES: tuple[str, ...] = ("write_file", "read_file")
"""Tools every run has: files in the run's workspace."""

MCP_PREFIX = "mcp:"
"""A role's tool named 'mcp:SERVER' takes every tool of that server; 'mcp:SERVER/TOOL' one of them."""

NAME = r"^[a-z][a-z0-9_]*$"
_NON_WORD = re.compile(r"\W+")
_RESOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,99}")


class TeamError(ValueError):
    """A team that cannot run as declared; the message names the file, line and field when it has them."""


class ModelSettings(BaseModel):
    """How a model built from a spec is configured for one role (objects passed from Python bring their own)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0, description="Seconds before one model call gives up.")
    base_url: str | None = Field(default=None, description="Endpoint of an OpenAI-compatible or provider server.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the key (never the key).")
    tool_calling: ToolCalling | None = Field(default=None, description="'native', 'json' (for a model without tool "
                                             "calling) or 'auto'; unset: the run's setting.")

    @field_validator("base_url")
    @classmethod
    def _no_credential(cls, url: str | None) -> str | None:
        """A team is stored with each run and shown: a key in its URL would be too (`state.urls`)."""
        if url is not None:
            refuse_credential(url)
        return url

    def options(self) -> dict[str, Any]:
        """The settings that are set, as keyword arguments for a chat model (the key read from its variable)."""
        return self.model_dump(exclude_none=True, exclude={"api_key_env", "tool_calling"})


class Role(BaseModel):
    """A specialist the supervisor can assign subtasks to."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="Unique agent name, e.g. 'backend'.")
    capabilities: list[str] = Field(min_length=1, description="Skills this role covers; the first is its main one.")
    prompt: str = Field(min_length=1, description="The role's system prompt.")
    model_role: ModelRole = Field(default="worker", description="Which model serves this agent, by model role.")
    model: str | None = Field(default=None, description="A model spec for this agent alone, e.g. 'openai:gpt-4o'.")
    model_settings: ModelSettings = Field(default_factory=ModelSettings)
    tools: list[str] = Field(default_factory=lambda: list(WORKSPACE_TOOL_NAMES), description="Names of its tools.")
    artifact_suffix: str = Field(default=".md", pattern=r"^\.[A-Za-z0-9]+$", description="File type it writes.")
    memory: Literal["ephemeral", "persistent"] = Field(
        default="ephemeral", description="persistent: it keeps what it learns across runs (`troupe memory ROLE`).")
    resources: list[str] = Field(default_factory=list, description="Exclusive resources it holds while it works "
                                 "(e.g. 'test-suite'): one holder at a time, queued in order.")
    a2a: str | None = Field(default=None, description="The URL of a remote A2A agent that does this role's "
                            "subtasks (another framework's or organization's; its card is read from there): it gets "
                            "the role's prompt and the work order as a message, and its answer is the artifact. The "
                            "role's model and tools are then unused.")

    @field_validator("resources")
    @classmethod
    def _resource_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _RESOURCE.fullmatch(name):
                raise ValueError(f"resource name {name[:40]!r}: use 1-100 letters, digits, spaces or ._:/- "
                                 "(e.g. 'test-suite')")
        return names

    @field_validator("a2a")
    @classmethod
    def _agent_url(cls, url: str | None) -> str | None:
        """An http(s) URL with a host and no credential (a team is stored with each run and shown)."""
        if url is None:
            return url
        try:
            parts = urlsplit(url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is no number, an unclosed '[' of an IPv6 host
            usable = False
        if not usable:
            raise ValueError(f"{url[:80]!r} is not the http(s) URL of an A2A agent, e.g. http://127.0.0.1:8100/")
        if (what := credential(url)) is not None:
            raise ValueError(f"the URL {redact(url)} carries a credential ({what}): give the agent's address only")
        return url

    def artifact_path(self, task_id: str, capability: str) -> str:
        """Where its deliverable for a subtask goes; Python files get names they can be imported by."""
        if self.artifact_suffix == ".py":
            return f"{task_id.lower()}_{_NON_WORD.sub('_', capability.lower()).strip('_')}.py"
        return f"{task_id}-{capability}{self.artifact_suffix}"


class McpServer(BaseModel):
    """An MCP server whose tools roles can use: a command started over stdio, or a streamable HTTP URL."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (stdio) or 'url' (streamable HTTP)")
        return self


class Team(BaseModel):
    """A named set of roles, the MCP servers they use, and settings the patterns read."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str
    pattern: str | None = Field(default=None, description="The pattern it runs by default: a recipe.")
    roles: list[Role] = Field(min_length=1)
    mcp_servers: dict[str, McpServer] = Field(default_factory=dict)
    patterns: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Settings per pattern name, read by that pattern (open schema)."
    )
    budget: Budget | None = Field(default=None, description="What its runs may spend (`state.budget.Budget`).")
    context: list[AnyRecord] = Field(default_factory=list, description="Records every run starts with in its shared "
                                     "context store: decisions, interface contracts, constraints (`state.records`).")

    _source: str | None = PrivateAttr(default=None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Team:
        seen: dict[str, int] = {}
        for i, role in enumerate(self.roles):
            if role.name in seen:
                first = seen[role.name]
                raise _located(("roles", i, "name"), f"duplicate role name {role.name!r} (also roles[{first}])")
            seen[role.name] = i
            for j, tool in enumerate(role.tools):
                server = mcp_server_of(tool)
                if server is not None and server not in self.mcp_servers:
                    known = ", ".join(self.mcp_servers) or "none declared"
                    raise _located(("roles", i, "tools", j), f"unknown MCP server {server!r} (mcp_servers: {known})")
        return self

    def role(self, name: str) -> Role:
        for r in self.roles:
            if r.name == name:
                return r
        raise KeyError(f"team {self.name!r} has no role {name!r}")

    def for_capability(self, capability: str) -> Role:
        """The role whose main skill is `capability`, else the first that lists it."""
        cap = capability.strip().lower()
        ranked = sorted(self.roles, key=lambda r: r.capabilities[0] != cap)
        for r in ranked:
            if cap in r.capabilities:
                return r
        raise LookupError(f"no role in team {self.name!r} can do {capability!r}")

    def capabilities(self) -> list[str]:
        return sorted({c for r in self.roles for c in r.capabilities})

    def where(self, *loc: str | int) -> str:
        """'team.yaml:14: roles[2].tools[1]' for a field of a team read from a file, else just the field."""
        field = dotted(loc)
        if self._source is None:
            return f"team {self.name!r}: {field}"
        line = next((self._lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in self._lines), None)
        return f"{self._source}:{line}: {field}" if line else f"{self._source}: {field}"

    def located_at(self, source: str, lines: dict[tuple[str | int, ...], int]) -> Team:
        """Remember the file and the line of every field, so later errors can point into the file."""
        self._source, self._lines = source, lines
        return self


def mcp_server_of(tool: str) -> str | None:
    """'mcp:notes/add' -> 'notes'; None for a tool that is not an MCP reference."""
    if not tool.startswith(MCP_PREFIX):
        return None
    return tool.removeprefix(MCP_PREFIX).partition("/")[0]


def dotted(loc: tuple[str | int, ...]) -> str:
    """('roles', 2, 'tools') -> 'roles[2].tools'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _located(loc: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """A validation error that carries the field it is about (the file reader turns it into a line)."""
    return PydanticCustomError("team", "{field}: {message}", {"loc": loc, "field": dotted(loc), "message": message})
