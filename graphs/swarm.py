"""Swarm: peers hand work to each other through hand-off tools; no controller above them.

    START -> enter -> peer --transfer_to_<B> (Command)-----------> peer (B on top)
                       ^ |  --return_to_<caller> (Command)-------> peer (caller on top, with the result)
                       | |  --several transfers (Send each)--> helper ┐ (each does its part, gives it back)
                       | └-> END (answer | circuit breaker)          |
                       └─────────────────────────────────────────────┘ (the join: all results to the caller)

The agent that has the conversation (`active`, persisted by the checkpointer) takes each new turn of a
thread, also when the swarm runs as a subgraph (compile it with `checkpointer=True`, or share the `active`
key with the parent). Each agent's model gets its role's tools plus `transfer_to_<peer>` for every other
peer and, when it was handed work, `return_to_<caller>`. A transfer either hands the conversation over or
asks for the result back (`come_back`); several transfers in one reply run in parallel and all their results
come back to the agent that handed off. Ordinary tool calls in the same reply run first and their outputs are
kept. Hand-off chains are bounded (`max_handoffs`): past it the circuit breaker ends the turn with status
"escalated", the chain in a BLOCKER in the journal. Loop detection trips it early (`stop_on_repeat`, on by
default), with a "loop detected" CHECKPOINT: a pair handing the work back and forth (A -> B -> A -> B), or a
hand-off that repeats one of the turn's earlier ones, the same agent handing the same peers the same request
(A -> B -> C -> A -> B).

Settings (team file `patterns.swarm`, or these keywords): `peers` (roles taking part; default every role),
`entry` (the first turn's agent; default the first peer), `max_handoffs` (8), `stop_on_repeat` (True).
"""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph

from nodes import swarm as swarm_nodes
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.budget import Budget
from state.context import RunContext
from state.roles import Team
from state.swarm import SwarmInput, SwarmOutput, SwarmState


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    node_timeout: float | None = 300.0,
    peers: list[str] | None = None,
    entry: str | None = None,
    max_handoffs: int | None = None,
    stop_on_repeat: bool | None = None,
) -> StateGraph[SwarmState, RunContext, SwarmInput, SwarmOutput]:
    """The uncompiled swarm; compile it with a checkpointer to make runs durable and remember the active agent.

    `team`, `models`, `tools`, `agents` and `node_timeout` are as for `graphs.hierarchical.build`; `peers`,
    `entry`, `max_handoffs` and `stop_on_repeat` override the team file's `patterns.swarm` settings (None: the
    team's, else the default). A bad setting fails here when the team is given.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="swarm", budget=budget)
    settings = {"peers": peers, "entry": entry, "max_handoffs": max_handoffs, "stop_on_repeat": stop_on_repeat}
    if kit.team is not None:
        swarm_nodes.swarm_for(kit, kit.team, settings)
    peer, peer_failed = swarm_nodes.peer(kit, settings, helper="helper", me="peer")
    helper, helper_failed = swarm_nodes.helper(kit, settings, me="peer")
    g = StateGraph(SwarmState, context_schema=RunContext, input_schema=SwarmInput, output_schema=SwarmOutput)
    g.add_node("enter", swarm_nodes.enter(kit, settings))
    g.add_node("peer", peer, retry_policy=MODEL_RETRY, timeout=node_timeout, error_handler=peer_failed,
               destinations=("peer", "helper", END))
    g.add_node("helper", helper, retry_policy=MODEL_RETRY, timeout=node_timeout,
               error_handler=helper_failed)
    g.add_edge(START, "enter")
    g.add_edge("enter", "peer")
    g.add_edge("helper", "peer")
    return g


graph = build().compile(name="swarm")
