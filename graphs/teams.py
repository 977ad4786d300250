"""Teams of teams: an orchestrator delegates to sub-teams, each a hierarchical team or a team of teams.

    delegate -> dispatch -> team (Send, one per sub-team; each a subgraph) ┐
                  ^                                                       │
                  └───────────────────────────────────────────────────────┘
                dispatch -> [approve (interrupt)] -> synthesize -> END

      top orchestrator
      ├── team A: hierarchical (plan -> work/review -> approve -> synthesize)
      └── team B: teams of teams (delegate -> team ... ) up to max_depth levels

A sub-team with `patterns.teams.subteams` in its team file nests further; others run the
hierarchical pattern. Each sub-team runs as a subgraph invoked from the `team` node, so LangGraph
checkpoints it in its own namespace: an approval interrupt deep inside reaches the top run and is
answered there (`troupe approve THREAD`), and a killed run resumes inside the sub-team it was in.
Each sub-team's SUMMARY.md is its hand-off; the top's synthesizer rolls them up.

Loops: none can happen at this level. The delegation names each sub-team at most once, each runs once, and the
tree is checked when the graph is built (a team that contains itself, or a branch deeper than `max_depth`, fails
the build), so there is no `stop_on_repeat` setting here. A hierarchical sub-team detects its own stalls and
repeats in its supervisor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs import hierarchical
from nodes import approval, orchestrator, synthesizer
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.budget import Budget
from state.context import RunContext
from state.roles import Team
from state.team import TeamInput, TeamOutput
from state.teams import TeamsSettings, TeamsState


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    node_timeout: float | None = 300.0,
    subteams: dict[str, str] | None = None,
    max_depth: int | None = None,
    max_parallel: int | None = None,
    approve: bool | None = None,
    path: tuple[str, ...] = (),
    lineage: tuple[str, ...] = (),
) -> StateGraph[TeamsState, RunContext, TeamInput, TeamOutput]:
    """The uncompiled team of teams; compile it with a checkpointer to make runs (and sub-team runs) durable.

    `team`, `models`, `tools`, `agents`, `node_timeout` as for `hierarchical.build` (every sub-team gets the same
    objects). `subteams` (name -> team name or file), `max_depth`, `max_parallel` and `approve` override the team
    file's `patterns.teams`. `path` (sub-team names from the top) and `lineage` (team names from the top) are set
    by a parent when it nests this graph. The whole tree is checked here: an unknown sub-team, a cycle or a branch
    deeper than max_depth fails the build.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="teams", budget=budget)
    overrides: dict[str, Any] = {"subteams": subteams, "max_parallel": max_parallel, "approve": approve}
    limit = max_depth
    if kit.team is not None:
        settings = kit.settings(kit.team, "teams", TeamsSettings, {**overrides, "max_depth": max_depth})
        limit = max_depth or settings.max_depth
        orchestrator.check_tree(kit, kit.team, overrides, lineage, limit)
    depth = limit or TeamsSettings().max_depth

    def subgraph(sub: Team, name: str) -> CompiledStateGraph[Any, Any, Any, Any]:
        if sub.patterns.get("teams", {}).get("subteams"):
            nested = build(team=sub, models=models, tools=tools, agents=agents, budget=budget,
                           node_timeout=node_timeout, max_depth=depth, path=(*path, name),
                           lineage=(*lineage, kit.team.name if kit.team else ""))
            return nested.compile(name=name)
        return hierarchical.build(team=sub, models=models, tools=tools, agents=agents, budget=budget,
                                  node_timeout=node_timeout).compile(name=name)

    g = StateGraph(TeamsState, context_schema=RunContext, input_schema=TeamInput, output_schema=TeamOutput)
    g.add_node("delegate", orchestrator.delegator(kit, overrides, path), retry_policy=MODEL_RETRY,
               timeout=node_timeout)
    g.add_node("dispatch", orchestrator.dispatcher(kit, overrides, path),
               destinations=("team", "approve", "synthesize"))
    g.add_node("team", orchestrator.team_runner(kit, subgraph, overrides, path))
    g.add_node("approve", approval.approval_gate(approved="synthesize"), destinations=("synthesize", END))
    g.add_node("synthesize", synthesizer.synthesizer(kit), retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_edge(START, "delegate")
    g.add_edge("delegate", "dispatch")
    g.add_edge("team", "dispatch")
    g.add_edge("synthesize", END)
    return g


graph = build().compile(name="teams")
