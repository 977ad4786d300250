"""Parallel: the planner splits a task into independent parts, agents solve them at once, a synthesizer combines.

    split -> dispatch -> work   (Send per part: <= max_concurrency a wave, agent_timeout each) ┐
               ^     -> review (Send, when review is on)                                      ├-> dispatch ...
               |        a branch that raises or times out: its error_handler marks it FAILED  ┘
               └────────────────────────────────────────────────────────────────────────────┘
             dispatch -> synthesize -> END   (the report lists the missing parts and why)

"Compare Notion, Asana and Trello for a 10-person team" becomes one analyst per product (roles
sharing the capability take the parts in turn; a capability no role lists goes to the roles in turn).
Each branch runs under `agent_timeout` (LangGraph's node timeout, set on its `Send`) and the retry
policy (up to 3 attempts; a time-out counts as transient). A branch that still raises or times out
is caught by its node's `error_handler`, which marks the part FAILED with the reason: the other
branches go on, and the synthesis lists what is missing and why. Waves: the dispatcher sends at most
`max_concurrency` agents (reviewers included), and the rest when that wave's super-step ends.

Loops: without review this is one fan-out, and nothing can repeat. With review, a part the reviewer sends back
works again (at most `max_review_rounds` rounds); if the reviewer then sends it back with the same unmet criteria
as the round before, the part fails at once with that reason and a "loop detected" CHECKPOINT, instead of spinning
to the bound (`stop_on_repeat`, on by default).
"""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph

from nodes import fanout, reviewer, synthesizer, worker
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.budget import Budget
from state.context import RunContext
from state.parallel import ParallelState
from state.roles import Team
from state.team import TeamInput, TeamOutput

ATTEMPTS = MODEL_RETRY.max_attempts


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    max_concurrency: int | None = None,
    agent_timeout: float | None = None,
    review: bool | None = None,
    stop_on_repeat: bool | None = None,
    node_timeout: float | None = 300.0,
) -> StateGraph[ParallelState, RunContext, TeamInput, TeamOutput]:
    """The uncompiled parallel team; compile it with a checkpointer to make runs durable.

    `team`, `models`, `tools` and `agents` as for `graphs.hierarchical.build`. The pattern's settings
    come from the team file's `patterns: {parallel: {...}}`, overridden by these keywords (None: unset):
    `max_concurrency` agents at a time (default 4), `agent_timeout` seconds per attempt of one agent
    (default 120), `review` each artifact before synthesis (default False), `stop_on_repeat` a part the
    reviewer sends back with the same unmet criteria twice in a row fails at once (default True).
    `node_timeout` caps one attempt of the split and synthesis nodes, in seconds.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="parallel", budget=budget)
    overrides = {"max_concurrency": max_concurrency, "agent_timeout": agent_timeout, "review": review,
                 "stop_on_repeat": stop_on_repeat}
    fanout.settings(kit, kit.team, overrides)  # bad settings fail the build (a team file's, with its line)
    g = StateGraph(ParallelState, context_schema=RunContext, input_schema=TeamInput, output_schema=TeamOutput)
    g.add_node("split", fanout.splitter(kit), retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_node("dispatch", fanout.dispatcher(kit, overrides, work="work", review="review", finish="synthesize"),
               destinations=("work", "review", "synthesize"))
    g.add_node("work", worker.worker(kit), retry_policy=MODEL_RETRY,
               error_handler=fanout.branch_failed(agent=None, attempts=ATTEMPTS, then="dispatch"))
    g.add_node("review", reviewer.reviewer(kit), retry_policy=MODEL_RETRY,
               error_handler=fanout.branch_failed(agent=reviewer.NAME, attempts=ATTEMPTS, then="dispatch"))
    g.add_node("synthesize", synthesizer.synthesizer(kit), retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_edge(START, "split")
    g.add_edge("split", "dispatch")
    g.add_edge("work", "dispatch")
    g.add_edge("review", "dispatch")
    g.add_edge("synthesize", END)
    return g


graph = build().compile(name="parallel")
