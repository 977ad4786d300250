"""Router: a cheap model sends each request to one specialist; a second opinion or a person when unsure.

    START -> route --Send--> specialist (one; two when confidence < threshold) --> route
               |             (route again: hand the request on to another route, at most max_hops rounds)
               ├-> merge (two or more answers) -> escalate
               └-------------------------------> escalate -> finish -> END
                                                         └-> handover (interrupt: a person) -> finish | END

The router (model role `router`) picks a route (a team role) with a confidence and a reason; below
`threshold` the runner-up answers too and the answers are merged. After each round the router checks
whether another route must take the request on (a round whose specialists all failed goes to the next
best route by keywords). The escalation agent decides whether a person takes over: the run stops at
an `interrupt`; their reply (`troupe approve THREAD --comment "..."`) is the result, approving without
a comment sends the team's answer, rejecting closes the request. Specialists are the shared worker: an
answer is an artifact in the run's workspace. Every decision is journaled with its reason and
confidence, so "why B and not A" is answered by `troupe show THREAD`.

Routing cannot loop: the request goes on only to routes not asked yet, at most `max_hops` rounds. A router that
names an asked route again would ask the same specialist the same question: the routing ends there instead, with a
"loop detected" CHECKPOINT saying so (built in, so there is no `stop_on_repeat` setting to turn off).

Settings (team file `patterns.router`, or these keywords): `routes` {role: [keywords]} (default:
every role, its capabilities), `threshold` (0.6), `max_hops` (2), `escalate_on` (words that go
straight to a person), `escalation_policy` (what the escalation agent follows).
"""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph

from nodes import approval, worker
from nodes import router as desk
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.budget import Budget
from state.context import RunContext
from state.roles import Team
from state.router import RouterInput, RouterOutput, RouterState


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    node_timeout: float | None = 300.0,
    routes: dict[str, list[str]] | None = None,
    threshold: float | None = None,
    max_hops: int | None = None,
    escalate_on: list[str] | None = None,
    escalation_policy: str | None = None,
) -> StateGraph[RouterState, RunContext, RouterInput, RouterOutput]:
    """The uncompiled router; compile it with a checkpointer to make runs durable.

    `team`, `models`, `tools`, `agents` and `node_timeout` are as for `graphs.hierarchical.build`; the
    other keywords override the team file's `patterns.router` settings (None: the team's, else the default).
    A bad setting (an unknown route, a threshold outside 0..1) fails here when the team is given.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="router", budget=budget)
    settings = {"routes": routes, "threshold": threshold, "max_hops": max_hops, "escalate_on": escalate_on,
                "escalation_policy": escalation_policy}
    if kit.team is not None:
        desk.desk_for(kit, kit.team, settings)
    route, route_failed = desk.router(kit, settings, specialist="specialist", merge="merge", escalate="escalate")
    merge, merge_failed = desk.merger(kit, escalate="escalate")
    escalate, escalate_failed = desk.escalation(kit, settings, human="handover", done="finish")
    g = StateGraph(RouterState, context_schema=RunContext, input_schema=RouterInput, output_schema=RouterOutput)
    g.add_node("route", route, retry_policy=MODEL_RETRY, timeout=node_timeout, error_handler=route_failed,
               destinations=("specialist", "merge", "escalate"))
    g.add_node("specialist", worker.worker(kit, lead="router", reviewer=None),
               retry_policy=MODEL_RETRY, timeout=node_timeout, error_handler=desk.specialist_failed("route"))
    g.add_node("merge", merge, retry_policy=MODEL_RETRY, timeout=node_timeout, error_handler=merge_failed)
    g.add_node("escalate", escalate, retry_policy=MODEL_RETRY, timeout=node_timeout, error_handler=escalate_failed,
               destinations=("handover", "finish"))
    g.add_node("handover", approval.approval_gate(approved="finish", request=desk.handover_request),
               destinations=("finish", END))
    g.add_node("finish", desk.finish)
    g.add_edge(START, "route")
    g.add_edge("specialist", "route")
    g.add_edge("merge", "escalate")
    g.add_edge("finish", END)
    return g


graph = build().compile(name="router")
