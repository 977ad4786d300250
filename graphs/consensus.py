"""Consensus: N agents answer one question independently; a voting rule that survives faulty agents decides.

              ┌-> vote (architect) ─┐
    convene ──┼-> vote (backend)   ─┼-> tally -> END
     (Send,   └-> vote (...)       ─┘     ^
    one each)      └─ fails/hangs: __error_handler__vote ┘   (a missing vote, not a failed run)

Each voter sees only the question. The tally counts the normalized answers by the rule (majority,
weighted by role, or quorum) and reports an outcome only if it is safe: with at most f faulty
voters (liars, garbage, crashes, hangs) it is the honest voters' majority, which needs n >= 3f + 1;
more coordinated liars than that give "no safe consensus", never their answer. The exact rule is
in `state.consensus`. The result reports the outcome, the tally, the agreement ratio and the
dissenters; every vote, fault and the decision are in the journal.

Loops: none can happen. There is one round (every voter answers once, the tally decides, the run ends) and no
edge leads back, so the pattern has no loop detection and no `stop_on_repeat` setting.
"""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph

from nodes import voter
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.budget import Budget
from state.consensus import ConsensusInput, ConsensusOutput, ConsensusState, Rule
from state.context import RunContext
from state.roles import Team


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    node_timeout: float | None = 300.0,
    voters: int | list[str] | None = None,
    rule: Rule | None = None,
    weights: dict[str, float] | None = None,
    quorum: float | None = None,
    faults: int | None = None,
) -> StateGraph[ConsensusState, RunContext, ConsensusInput, ConsensusOutput]:
    """The uncompiled consensus graph; compile it with a checkpointer to make runs durable.

    `team`, `models`, `tools`, `agents` as for every pattern (voters use no tools). The settings
    default to the team file's `patterns.consensus` section, then: `voters` every role once (an
    int takes the roles in turn, repeats numbered 'qa_2'; a list names roles), `rule` 'majority',
    `weights` 1 per role (rule 'weighted'), `quorum` 2/3 (rule 'quorum'), `faults` (n - 1) // 3.
    Settings that cannot work (n < 3f + 1, a quorum f faults could block, ...) fail the build when
    the team is known, else the run's first step. `node_timeout` caps one attempt of a voter.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="consensus", budget=budget)
    overrides = {"voters": voters, "rule": rule, "weights": weights, "quorum": quorum, "faults": faults}
    if kit.team is not None:
        voter.settings_of(kit, kit.team, overrides)
    g = StateGraph(ConsensusState, context_schema=RunContext, input_schema=ConsensusInput,
                   output_schema=ConsensusOutput)
    g.add_node("convene", voter.convener(kit, overrides, vote="vote"), destinations=("vote",))
    # A voter whose model still fails or hangs after its retries goes to the error handler, which records a
    # missing vote and jumps to the tally (LangGraph draws the handler as a node of its own, without that edge).
    g.add_node("vote", voter.voter(kit), retry_policy=MODEL_RETRY, timeout=node_timeout,
               error_handler=voter.faulty_voter(tally="tally"))
    g.add_node("tally", voter.tally(kit, overrides))
    g.add_edge(START, "convene")
    g.add_edge("vote", "tally")
    g.add_edge("tally", END)
    return g


graph = build().compile(name="consensus")
