"""Hierarchical team: a supervisor plans, specialists work in parallel, a reviewer checks, a person approves.

    plan -> dispatch -> work (Send, one per ready subtask) ┐
              ^     -> review (Send, one per artifact)    ├-> dispatch ...
              └───────────────────────────────────────────┘
            dispatch -> approve (interrupt) -> synthesize -> END   (rejected: approve -> END)
            dispatch -> authorize (interrupt, `approve_before` roles) -> work | dispatch (rejected: BLOCKED)

Dispatch runs after every super-step: subtasks whose dependencies are done start together, and
review requests changes by sending a subtask back for another round (bounded by
`RunContext.max_review_rounds`). Growing records go to the journal in the store; the
checkpointed state holds only the plan, the task board and the result. The team file's
`patterns.hierarchical` section may name a team role as the `reviewer` and roles whose subtasks
need a person's approval before they start (`approve_before`): see `nodes.supervisor`.
"""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph

from nodes import approval, reviewer, supervisor, synthesizer, worker
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.context import RunContext
from state.roles import Team
from state.team import ReviewOrder, TeamInput, TeamOutput, TeamState, WorkOrder


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    node_timeout: float | None = 300.0,
) -> StateGraph[TeamState, RunContext, TeamInput, TeamOutput]:
    """The uncompiled hierarchical team; compile it with a checkpointer to make runs durable.

    `team` is a `Team`, a team file's path or a team's name (None: the run's context names it);
    `models` one chat model for every agent or a mapping by agent name or model role; `tools`
    LangChain tools or plain functions the roles name; `agents` compiled graphs that serve the roles of
    their names. Everything is checked here: an unknown tool, model or agent name fails the build.
    `node_timeout` caps one attempt of a model-calling node, in seconds.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents)
    g = StateGraph(TeamState, context_schema=RunContext, input_schema=TeamInput, output_schema=TeamOutput)
    g.add_node("plan", supervisor.planner(kit), retry_policy=MODEL_RETRY, timeout=node_timeout)
    # Bad settings fail the build (a team file's, with its line); a team's own reviewer gets the review requests.
    review_by = supervisor.settings(kit, kit.team).reviewer if kit.team is not None else None
    g.add_node("dispatch", supervisor.dispatcher(work="work", review="review", finish="approve", kit=kit,
                                                 authorize="authorize"),
               destinations=("work", "review", "approve", "authorize"))
    g.add_node("authorize", supervisor.authorizer(work="work", back="dispatch"), input_schema=WorkOrder,
               destinations=("work", "dispatch"))
    g.add_node("work", worker.worker(kit, reviewer=review_by or reviewer.NAME), input_schema=WorkOrder,
               retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_node("review", reviewer.reviewer(kit, by=supervisor.review_role(kit)), input_schema=ReviewOrder,
               retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_node("approve", approval.approval_gate(approved="synthesize"), destinations=("synthesize", END))
    g.add_node("synthesize", synthesizer.synthesizer(kit), retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_edge(START, "plan")
    g.add_edge("plan", "dispatch")
    g.add_edge("work", "dispatch")
    g.add_edge("review", "dispatch")
    g.add_edge("synthesize", END)
    return g


graph = build().compile(name="hierarchical")
