"""Hierarchical team: a supervisor plans, specialists work in parallel, a reviewer checks, a person approves,
and the supervisor adapts the plan when reality changes.

    plan -> [plan_gate] -> dispatch -> work (Send, one per ready subtask, at most max_workers) ┐
                             ^      -> review (Send, one per artifact)                      ├-> dispatch ...
                             |      -> authorize / escalate (interrupts: one at a time)      ┘
                             └── replan <- dispatch (reports, failures to split, scope changes) -> [plan_gate]
            dispatch -> check -> approve (interrupt) -> synthesize -> END  (rejected: END; scope change: replan)
                          └-> dispatch (fix-up rounds: naming drift, ruff, the team's failing tests)

Dispatch runs after every super-step (`nodes.dispatcher`): it recovers failed subtasks (another role,
the fallback model, a split, a person), catches loops and stalls, preempts for critical findings and
starts what is ready. `replan` (`nodes.replanner`) changes the plan: scope changes (`troupe amend`),
splits, side findings, and settles conflicts (`nodes.conflicts`: overlapping file edits, work off a contract).
Workers see the shared context that touches their subtask (`nodes.shared_context`); `check` (`nodes.checks`)
verifies the assembled result before a person approves it. The supervisor's ledgers are in the checkpoint;
the growing record of a run is in the journal. Settings: the team file's `patterns.hierarchical` section or
`build()` keywords (`nodes.supervisor.HierarchicalSettings`).
"""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph

from nodes import approval, checks, dispatcher, replanner, reviewer, supervisor, synthesizer, worker
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.budget import Budget
from state.context import RunContext
from state.roles import Team
from state.team import TeamInput, TeamOutput, TeamState


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    node_timeout: float | None = 300.0,
    approve_plan: bool | None = None,
    max_workers: int | None = None,
    fallback_model: str | None = None,
) -> StateGraph[TeamState, RunContext, TeamInput, TeamOutput]:
    """The uncompiled hierarchical team; compile it with a checkpointer to make runs durable.

    `team` is a `Team`, a team file's path or a team's name (None: the run's context names it);
    `models` one chat model for every agent or a mapping by agent name or model role; `tools`
    LangChain tools or plain functions the roles name; `agents` compiled graphs that serve the roles of
    their names. Everything is checked here: an unknown tool, model or agent name fails the build.
    `node_timeout` caps one attempt of a model-calling node, in seconds. `approve_plan`, `max_workers` and
    `fallback_model` override the team file's `patterns.hierarchical` settings (None: the file's, else defaults).
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="hierarchical", budget=budget)
    overrides = {"approve_plan": approve_plan, "max_workers": max_workers, "fallback_model": fallback_model}
    # Bad settings fail the build (a team file's, with its line); a team's own reviewer gets the review requests.
    found = supervisor.check_settings(kit, kit.team, overrides) if kit.team is not None else None
    g = StateGraph(TeamState, context_schema=RunContext, input_schema=TeamInput, output_schema=TeamOutput)
    g.add_node("plan", supervisor.planner(kit, overrides), retry_policy=MODEL_RETRY, timeout=node_timeout,
               destinations=("plan_gate", "dispatch"))
    g.add_node("plan_gate", supervisor.plan_gate(kit, overrides), destinations=("dispatch", "replan", END))
    g.add_node("dispatch", dispatcher.dispatcher(kit, overrides),
               destinations=("work", "review", "authorize", "escalate", "replan", "check"))
    g.add_node("replan", replanner.replanner(kit, overrides), retry_policy=MODEL_RETRY, timeout=node_timeout,
               destinations=("plan_gate", "dispatch"))
    g.add_node("authorize", supervisor.authorizer(work="work", back="dispatch"), destinations=("work", "dispatch"))
    g.add_node("escalate", supervisor.escalator(kit), destinations=("dispatch",))
    g.add_node("work", worker.worker(kit, reviewer=found.reviewer if found and found.reviewer else reviewer.NAME,
                                     reports=True, shared=True),
               retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_node("review", reviewer.reviewer(kit, by=supervisor.review_role(kit), flags=True),
               retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_node("check", checks.checker(kit, overrides), destinations=("dispatch", "approve"))
    g.add_node("approve", approval.approval_gate(approved="synthesize", reopen=supervisor.reopener),
               destinations=("synthesize", "replan", END))
    g.add_node("synthesize", synthesizer.synthesizer(kit), retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_edge(START, "plan")
    g.add_edge("work", "dispatch")
    g.add_edge("review", "dispatch")
    g.add_edge("synthesize", END)
    return g


graph = build().compile(name="hierarchical")
