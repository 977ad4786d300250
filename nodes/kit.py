"""What every node of a pattern closes over: the team and the objects its caller brought.

`Kit.create(team=..., models=..., tools=..., agents=...)` checks everything once, when the graph is
built: tool names every role uses must exist, model specs must be servable, `models=` keys and
`agents=` names must be agents of the team. Objects stay here, never in the checkpointed state or
the stored run settings; a resumed run gets them again from its caller.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.runtime import Runtime
from pydantic import BaseModel, ValidationError

from nodes import scope, spending
from nodes.metering import instrument
from nodes.models import EVERY_AGENT, Models, check_spec, get_model, model_label, model_objects, spec_for
from nodes.teams import load_team
from state.budget import Budget, Call
from state.context import RunContext
from state.roles import MODEL_ROLES, ModelRole, Role, Team, TeamError, mcp_server_of
from state.urls import refuse_credential
from tools.a2a_client import a2a_missing
from tools.mcp import mcp_tools
from tools.usage import Meter
from tools.workspace import WORKSPACE_TOOLS

S = TypeVar("S", bound=BaseModel)

BUILT_IN_AGENTS: dict[str, ModelRole] = {
    "supervisor": "planner", "reviewer": "reviewer", "synthesizer": "synthesizer", "judge": "reviewer",
    "router": "router", "escalation": "router",
}
"""troupe's own agents and the model role each asks for (keys a caller may use in `models=`)."""

Tools = Sequence[BaseTool | Callable[..., Any]] | None
"""What callers pass as `tools=`: LangChain tools or plain functions (their docstring tells the model what they do)."""

Agents = Mapping[str, Runnable[Any, Any]] | Sequence[Runnable[Any, Any]] | None
"""What callers pass as `agents=`: compiled graphs (or any runnable taking {'messages': [...]}) by role name, or a
list of compiled graphs whose names (`create_agent(..., name='researcher')`) are role names."""


NOT_WORKERS = ("swarm", "debate", "consensus", "event_driven")
"""Patterns whose roles are not workers (their own nodes play them), so a role there cannot be a remote agent."""


@dataclass(frozen=True)
class Kit:
    """The team (None: named by the run's context at run time) and the caller's models, tools and agents."""

    team: Team | None = None
    models: Mapping[str, BaseChatModel] = field(default_factory=dict)
    tools: Mapping[str, BaseTool] = field(default_factory=dict)
    agents: Mapping[str, Runnable[Any, Any]] = field(default_factory=dict)
    pattern: str | None = None
    """The pattern whose nodes close over this kit (a tag on every traced model call)."""
    budget: Budget | None = None
    """The `build(budget=...)` keyword: over the team file's `budget:` section, under the run's settings."""
    json_tools: set[str] = field(default_factory=set, compare=False)
    """Agents whose model wrote a tool call as text (in this process): their later turns ask for JSON at once."""
    _settings: dict[str, tuple[Team, Any]] = field(default_factory=dict, compare=False, repr=False)
    """Pattern settings validated once per team (every review and dispatch of a big fan-out reads them)."""

    @classmethod
    def create(cls, *, team: Team | str | Path | None = None, models: Models = None, tools: Tools = None,
               agents: Agents = None, pattern: str | None = None, budget: Budget | None = None) -> Kit:
        kit = cls(team=load_team(team) if team is not None else None, models=model_objects(models),
                  tools=_tools_by_name(tools or ()), agents=_agents_by_name(agents or {}), pattern=pattern,
                  budget=budget)
        if kit.team is not None:
            kit.check(kit.team, RunContext())
        return kit

    def check(self, team: Team, ctx: RunContext) -> None:
        """Every name the team and the run use resolves: tools, model keys, agents, model specs; the run's base URL
        carries no credential."""
        for i, role in enumerate(team.roles):
            for j, name in enumerate(role.tools):
                if mcp_server_of(name) is None and name not in self._tool_names():
                    known = ", ".join(sorted(self._tool_names()))
                    raise TeamError(f"{team.where('roles', i, 'tools', j)}: unknown tool {name!r} in role "
                                    f"{role.name!r}; known: {known} (pass your own with tools=)")
            if role.model:
                _check(role.model, team.where("roles", i, "model"))
            if role.a2a and (missing := a2a_missing()):
                raise TeamError(f"{team.where('roles', i, 'a2a')}: role {role.name!r} is a remote A2A agent: {missing}")
            if role.a2a and self.pattern in NOT_WORKERS:
                raise TeamError(f"{team.where('roles', i, 'a2a')}: role {role.name!r} is a remote A2A agent, but "
                                f"{self.pattern} roles are not workers: remote roles work in hierarchical, teams, "
                                "parallel, sequential and router runs")
            if role.a2a and role.name in self.agents:
                raise TeamError(f"agents[{role.name!r}]: role {role.name!r} is the A2A agent at its a2a URL; give it "
                                "an agent or a URL, not both")
        agent_names = {r.name for r in team.roles} | set(BUILT_IN_AGENTS)
        for key in self.models:
            if key not in {*MODEL_ROLES, *agent_names, "*"}:
                raise TeamError(f"models[{key!r}]: neither a model role ({', '.join(MODEL_ROLES)}) nor an agent of "
                                f"team {team.name!r} ({', '.join(sorted(agent_names))})")
        for name in self.agents:
            if name not in {r.name for r in team.roles}:
                raise TeamError(f"agents[{name!r}]: team {team.name!r} has no role {name!r} for it; add a role with "
                                "that name and its capabilities")
        for key, spec in {"model": ctx.model, **ctx.models}.items():
            if key != "model" and key not in {*MODEL_ROLES, *agent_names}:
                raise TeamError(f"model setting {key!r}: neither a model role ({', '.join(MODEL_ROLES)}) nor an agent "
                                f"of team {team.name!r}")
            _check(spec, f"model {key}" if key != "model" else "model")
        try:
            refuse_credential(ctx.base_url or "")
        except ValueError as exc:  # stored with the run and shown by `troupe show`
            raise TeamError(f"base_url (--base-url or $OPENAI_BASE_URL): {exc}") from None
        self._check_budget(team, ctx)

    def _check_budget(self, team: Team, ctx: RunContext) -> None:
        """A budget's agents are the team's, its cheap model servable, and a dollar cap has a price for every
        model a spec names (a model object's price is looked up when it answers)."""
        budget = (team.budget or Budget()).over(self.budget).for_run(ctx)
        agent_names = {r.name for r in team.roles} | set(BUILT_IN_AGENTS)
        for name in budget.agents:
            if name not in agent_names:
                raise TeamError(f"{team.where('budget', 'agents', name)}: no agent {name!r} in team {team.name!r} "
                                f"({', '.join(sorted(agent_names))})")
        if budget.cheap_model:
            _check(budget.cheap_model, team.where("budget", "cheap_model"))
        if not budget.usd and not any(a.usd for a in budget.agents.values()):
            return
        specs = {ctx.model, *ctx.models.values(), *(r.model for r in team.roles if r.model), budget.cheap_model}
        for spec in sorted(s for s in specs if s):
            if budget.price(model_label(None, spec)) is None:
                raise TeamError(f"a dollar budget needs the price of {spec!r}, which troupe does not know: give it "
                                f"with --price {model_label(None, spec)}=IN/OUT (dollars per million tokens) or the "
                                "team file's budget.prices")

    async def team_for(self, runtime: Runtime[RunContext]) -> Team:
        """The built-in team, else the one the run's context names (read off the event loop, then checked)."""
        if self.team is not None:
            return self.team
        team = await asyncio.to_thread(load_team, scope.settings(runtime).team)
        self.check(team, scope.settings(runtime))
        return team

    async def model(self, model_role: ModelRole, runtime: Runtime[RunContext], *, agent: str, role: Role | None = None,
                    attempt: int = 1, task: str | None = None) -> BaseChatModel:
        """The chat model for one agent (see `nodes.models` for the order models are chosen in), metered, cached
        and labelled (`nodes.metering`), under the run's budget (`nodes.spending`): a spent run budget stops the
        run here (resumably), a spent agent budget fails this agent's work, and near the end routine roles get
        the budget's cheap model."""
        budget = await self.budget_for(runtime)
        meter = Meter.of(runtime.store, scope.thread_of(runtime))
        cheap = await spending.admit(runtime, meter, budget, agent=agent, model_role=model_role)
        ctx = scope.settings(runtime)
        ctx = ctx if cheap is None else replace(ctx, models={**ctx.models, agent: cheap})
        objects = {} if cheap else self.models
        chat = get_model(model_role, ctx, agent=agent, role=role, objects=objects, attempt=attempt)
        key = next((k for k in (agent, model_role, EVERY_AGENT) if k in objects), None)
        spec = spec_for(model_role, ctx, agent=agent, role=role) if key is None else \
            f"object:{key}:{type(chat).__name__}:{model_label(chat)}"
        call = Call(agent=agent, model=model_label(chat, None if key else spec), model_role=model_role, task=task,
                    node=scope.node_of(), degraded=cheap is not None)
        return instrument(chat, runtime, meter, budget, call=call, spec=f"{spec}@{ctx.base_url or ''}",
                          pattern=self.pattern)

    async def budget_for(self, runtime: Runtime[RunContext]) -> Budget:
        """The run's budget: the team file's, then `build(budget=...)`, then the run's settings."""
        team = await self.team_for(runtime)
        return (team.budget or Budget()).over(self.budget).for_run(scope.settings(runtime))

    @asynccontextmanager
    async def role_tools(self, team: Team, role: Role) -> AsyncIterator[dict[str, BaseTool]]:
        """The role's tools by name; its MCP servers are connected for as long as the block runs."""
        refs = [t for t in role.tools if mcp_server_of(t) is not None]
        own = {t.name: t for t in WORKSPACE_TOOLS} | dict(self.tools)
        async with mcp_tools(team.mcp_servers, refs) as remote:
            yield {name: own[name] for name in role.tools if name in own} | remote

    def settings(self, team: Team, pattern: str, schema: type[S], overrides: Mapping[str, Any]) -> S:
        """A pattern's settings: the team's `patterns.<pattern>` section, then `build()` keywords (None: unset)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        key = f"{pattern}:{schema.__qualname__}:{sorted(given.items())!r}:{id(team)}"
        if (found := self._settings.get(key)) is not None and found[0] is team:
            return found[1]
        try:
            settled = schema.model_validate({**team.patterns.get(pattern, {}), **given})
            if len(self._settings) >= 256:  # teams named by the run's context are read anew by every node
                self._settings.clear()
            self._settings[key] = (team, settled)
            return settled
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = first["loc"]
            where = (f"{pattern}.build({loc[0]}={given[loc[0]]!r})" if loc and loc[0] in given
                     else team.where("patterns", pattern, *loc))
            raise TeamError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None

    def _tool_names(self) -> set[str]:
        return {t.name for t in WORKSPACE_TOOLS} | set(self.tools)


def _tools_by_name(tools: Sequence[BaseTool | Callable[..., Any]]) -> dict[str, BaseTool]:
    by_name: dict[str, BaseTool] = {}
    for t in tools:
        made = t if isinstance(t, BaseTool) else _from_function(t)
        if made.name in by_name or made.name in {w.name for w in WORKSPACE_TOOLS}:
            raise TeamError(f"tools=: two tools are named {made.name!r}; tool names must be unique")
        by_name[made.name] = made
    return by_name


def _agents_by_name(agents: Mapping[str, Runnable[Any, Any]] | Sequence[Runnable[Any, Any]]) -> dict[str, Any]:
    if isinstance(agents, Mapping):
        return dict(agents)
    by_name: dict[str, Runnable[Any, Any]] = {}
    for agent in agents:
        name = getattr(agent, "name", None)
        if not name or name in by_name or name == "LangGraph":  # LangGraph's default name: none was given
            raise TeamError(f"agents=: cannot tell which role {agent!r:.60} serves; name it after its role "
                            "(create_agent(..., name='researcher')) or pass agents={'researcher': agent}")
        by_name[name] = agent
    return by_name


def _from_function(fn: Callable[..., Any]) -> BaseTool:
    if not callable(fn):
        raise TeamError(f"tools=: {fn!r} is neither a LangChain tool nor a function")
    try:
        is_async = inspect.iscoroutinefunction(fn)  # given as `func`, an async function's result is never awaited
        return StructuredTool.from_function(None if is_async else fn, fn if is_async else None,
                                            handle_tool_error=True, handle_validation_error=True)
    except ValueError as exc:  # e.g. no docstring to tell the model what it does
        raise TeamError(f"tools=: cannot make a tool of {getattr(fn, '__name__', fn)!r}: {exc}") from None


def _check(spec: str, where: str) -> None:
    try:
        check_spec(spec)
    except ValueError as exc:
        raise TeamError(f"{where}: {exc}") from None
