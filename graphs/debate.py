"""Debate: N debaters take positions, critique each other over rounds, and a judge decides.

    open -> argue (Send, one per debater) -> tally -> argue ...   (another round: not enough agreement yet)
                                               └--> judge -> END (converged, or the round limit)

Round 1: every debater states a position (stance, claim, arguments, confidence) without seeing the others.
Each later round: every debater sees the others' latest positions (only those, never the transcript), critiques
them and states its position again, kept or changed. After each round `tally` measures agreement (the share of
debaters holding the leading stance) and stops at `converge_at` or after `max_rounds`; the judge then decides from
the final positions. Loop detection (`stop_on_repeat`, on by default): round 1 is stated blind, so round 2 (the
first answer to the others) is never a repeat; from round 3 on, a round whose stances are those of an earlier
rebuttal round (nobody moved after the critiques, or they flip back and forth) stops the debate as a "stalemate",
with a "loop detected" CHECKPOINT, since another round would only repeat it. The checkpointed state holds each
debater's latest position only (and a short signature per rebuttal round); every position, critique and decision
is a protocol message in the journal.

Settings (team file `patterns.debate`, or `build()` keywords): `debaters` (N, the team's first N roles, or role
names; 3), `max_rounds` (3), `converge_at` (1.0: all agree), `judge` (a role; None: troupe's own judge, served by
the 'reviewer' model role), `stop_on_repeat` (True).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from nodes import debater, scope
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.budget import Budget
from state.context import RunContext
from state.debate import DebateInput, DebateOutput, DebateState, DebateTurn, PositionRecord, stance_key, tally
from state.loops import earlier, loop_detected, signature
from state.protocol import AnyMessage, CheckpointMsg, TaskAssign
from state.roles import Team

MODERATOR = "moderator"


class DebateError(ValueError):
    """A debate that cannot start (an empty question)."""


def turns(question: str, debaters: list[str], rnd: int, positions: Mapping[str, PositionRecord]) -> list[Send]:
    """One `Send` per debater: the question, its own latest position and the others' (scoped: positions only)."""
    return [Send("argue", DebateTurn(debater=d, round=rnd, question=question, own=positions.get(d),
                                     others={o: positions[o] for o in debaters if o != d and o in positions}))
            for d in debaters]


def assignments(question: str, debaters: list[str], rnd: int) -> list[AnyMessage]:
    return [TaskAssign(sender=MODERATOR, recipient=d, correlation_id=f"round-{rnd}", title=question, round=rnd,
                       reason=f"one of the {len(debaters)} debaters, round {rnd}") for d in debaters]


def opener(kit: Kit, overrides: Mapping[str, Any]) -> Callable[..., Awaitable[Command]]:
    """The open node: checks the question and the panel, then sends every debater to round 1."""

    async def open_debate(state: DebateState, runtime: Runtime[RunContext]) -> Command:
        question = (state.get("task") or "").strip()
        if not question:
            raise DebateError("the question is empty: say what the debaters should decide")
        p = debater.panel(kit, await kit.team_for(runtime), overrides)
        note = (f"debaters: {', '.join(p.debaters)}; judge: {p.judge}; up to {p.max_rounds} round(s); "
                f"stops early at {p.converge_at:.0%} agreement")
        await scope.journal(runtime).post(
            CheckpointMsg(sender=MODERATOR, recipient="debaters", correlation_id="debate", label="debate opened",
                          note=note), *assignments(question, p.debaters, 1))
        return Command(goto=turns(question, p.debaters, 1, {}), update={"round": 1, "status": "debating"})

    return open_debate


def tallier(kit: Kit, overrides: Mapping[str, Any]) -> Callable[..., Awaitable[Command]]:
    """The tally node: after each round, another round or the judge (converged, the round limit, or a stalemate)."""

    async def tally_round(state: DebateState, runtime: Runtime[RunContext]) -> Command:
        p = debater.panel(kit, await kit.team_for(runtime), overrides)
        rnd, positions = state["round"], state.get("positions", {})
        t = tally({d: positions[d] for d in p.debaters if d in positions})
        converged = t.voters >= 2 and t.ratio >= p.converge_at
        note = f"{t.holders} of {t.voters} hold '{t.stance}' ({t.ratio:.0%}; early stop at {p.converge_at:.0%})"
        journal = scope.journal(runtime)
        if converged or rnd >= p.max_rounds:
            stop = "converged" if converged else "round limit"
            await journal.post(CheckpointMsg(sender=MODERATOR, recipient=p.judge, correlation_id=f"round-{rnd}",
                                             label=stop, note=note))
            return Command(goto="judge", update={"stop": stop, "status": "judging"})
        stances = {d: positions[d]["stance"] for d in p.debaters if positions.get(d, {}).get("stance")}
        sig, seen = signature(sorted((d, stance_key(s)) for d, s in stances.items())), state.get("seen") or []
        before = earlier(sig, seen) if p.stop_on_repeat and rnd >= 3 else None
        if before is not None:  # seen[i] is round i + 2's
            held = ", ".join(f"{d} '{s}'" for d, s in stances.items())
            how = "nobody moved after the critiques" if before + 2 == rnd - 1 else "the stances go round in a circle"
            await journal.post(loop_detected(
                sender=MODERATOR, recipient=p.judge, correlation_id=f"round-{rnd}", reason=(
                    f"stalemate: round {rnd}'s stances are round {before + 2}'s again ({held}); {how}, so another "
                    f"round (of at most {p.max_rounds}) would repeat it. {note}")))
            return Command(goto="judge", update={"stop": "stalemate", "status": "judging"})
        await journal.post(CheckpointMsg(sender=MODERATOR, recipient="debaters", correlation_id=f"round-{rnd}",
                                         label="another round", note=note),
                           *assignments(state["task"], p.debaters, rnd + 1))
        update: dict[str, Any] = {"round": rnd + 1}
        if p.stop_on_repeat and rnd >= 2:
            update["seen"] = [*seen, sig]
        return Command(goto=turns(state["task"], p.debaters, rnd + 1, positions), update=update)

    return tally_round


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    node_timeout: float | None = 300.0,
    debaters: int | list[str] | None = None,
    max_rounds: int | None = None,
    converge_at: float | None = None,
    judge: str | None = None,
    stop_on_repeat: bool | None = None,
) -> StateGraph[DebateState, RunContext, DebateInput, DebateOutput]:
    """The uncompiled debate; compile it with a checkpointer to make runs durable.

    `team`, `models`, `tools`, `agents` and `node_timeout` as for `graphs.hierarchical.build`. The settings
    keywords override the team file's `patterns.debate` section (None: the team's value, else the default);
    a bad setting fails here when the team is known, naming the file and line.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="debate", budget=budget)
    overrides = {"debaters": debaters, "max_rounds": max_rounds, "converge_at": converge_at, "judge": judge,
                 "stop_on_repeat": stop_on_repeat}
    if kit.team is not None:
        debater.panel(kit, kit.team, overrides)
    g = StateGraph(DebateState, context_schema=RunContext, input_schema=DebateInput, output_schema=DebateOutput)
    g.add_node("open", opener(kit, overrides), destinations=("argue",))
    g.add_node("argue", debater.debater(kit), retry_policy=MODEL_RETRY,
               timeout=node_timeout, error_handler=debater.debater_failed)
    g.add_node("tally", tallier(kit, overrides), destinations=("argue", "judge"))
    g.add_node("judge", debater.judge(kit, overrides), retry_policy=MODEL_RETRY, timeout=node_timeout,
               error_handler=debater.judge_failed(kit, overrides))
    g.add_edge(START, "open")
    g.add_edge("argue", "tally")
    g.add_edge("judge", END)
    return g


graph = build().compile(name="debate")
