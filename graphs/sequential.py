"""Sequential pipeline: stages in a fixed order, each stage's artifact the next stage's input.

    plan -> advance -> work  (Send: the next stage's WorkOrder) ──┐
              ^     -> check (Send: a checking stage's verdict) ──┤
              └───────────────────────────────────────────────────┘
            advance -> finish -> END

    stages:  researcher -> strategist -> writer -> editor
                                           ^         │ check fails: back to the writer with the findings,
                                           └─────────┘ then the stages after it run again

Each stage is the shared worker on a scoped work order: the task, the hand-offs of the earlier
stages it needs, and its feedback. A checking stage, after its own work, judges an earlier stage
(`StageCheck`); a failing verdict sends that stage back with the findings, at most `max_rounds`
verdicts per check. The last verdict is final: the run goes on and the result lists what is still
flagged. Loop detection (`stop_on_repeat`, on by default): a check that fails with the same findings as its
previous verdict is final at once, since another fix round would only repeat it (a "loop detected" CHECKPOINT
says so). The checkpointed state holds the stages as the plan's tasks, the board, a count per check and the
signature of each check's latest failing verdict.
"""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph

from nodes import worker
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from nodes.stages import Stages
from state.budget import Budget
from state.context import RunContext
from state.roles import Team
from state.sequential import SequentialState
from state.team import TeamInput, TeamOutput


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    node_timeout: float | None = 300.0,
    stages: list[str] | None = None,
    checks: dict[str, str] | None = None,
    needs: dict[str, list[str]] | None = None,
    criteria: dict[str, list[str]] | None = None,
    max_rounds: int | None = None,
    stop_on_repeat: bool | None = None,
) -> StateGraph[SequentialState, RunContext, TeamInput, TeamOutput]:
    """The uncompiled pipeline; compile it with a checkpointer to make runs durable.

    `team`, `models`, `tools`, `agents` and `node_timeout` are as for `graphs.hierarchical.build`. The
    pipeline's settings override the team file's `patterns.sequential` section (None: unset):
    `stages` role names in order (default: every role), `checks` {checking stage: earlier stage it can
    send back to} (default: the last stage checks the one before it; {} for none), `needs` {stage: earlier
    stages whose hand-offs it reads} (default: the stage before it), `criteria` {stage: acceptance
    criteria} (default: derived from the role), `max_rounds` verdicts per check (default 2), `stop_on_repeat` a
    failing verdict that repeats the check's previous one is final at once (default True).
    Unknown stages and checks or needs that do not point back fail here when the team is known.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="sequential", budget=budget)
    nodes = Stages(kit, {"stages": stages, "checks": checks, "needs": needs, "criteria": criteria,
                         "max_rounds": max_rounds, "stop_on_repeat": stop_on_repeat})
    if kit.team is not None:
        nodes.pipeline(kit.team)
    g = StateGraph(SequentialState, context_schema=RunContext, input_schema=TeamInput, output_schema=TeamOutput)
    g.add_node("plan", nodes.plan)
    g.add_node("advance", nodes.advance, destinations=("work", "check", "finish"))
    g.add_node("work", worker.worker(kit, lead="pipeline", reviewer=None), retry_policy=MODEL_RETRY,
               timeout=node_timeout)
    g.add_node("check", nodes.check, retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_node("finish", nodes.finish, retry_policy=MODEL_RETRY, timeout=node_timeout)
    g.add_edge(START, "plan")
    g.add_edge("plan", "advance")
    g.add_edge("work", "advance")
    g.add_edge("check", "advance")
    g.add_edge("finish", END)
    return g


graph = build().compile(name="sequential")
