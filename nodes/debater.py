"""Debaters and the judge: the agents of the debate pattern, and who sits on the panel.

A debater states a `Position` each round from its scoped view (the question, its own latest position and the
others' latest positions; never the transcript). The judge weighs the final positions and returns a `Judgement`;
the node renders the result (decision, final positions, the judge's reasons) and writes it to DEBATE.md.
A debater or judge whose answer is garbage, or whose calls keep failing or hanging, fails its own part (a
BLOCKER in the journal), never the debate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from langgraph.errors import NodeError
from langgraph.runtime import Runtime
from pydantic import BaseModel

from nodes import scope
from nodes.briefs import prompt
from nodes.guard import flag, screen
from nodes.kit import Kit
from nodes.structured import ask
from state.channels import Payload, parse
from state.context import RunContext
from state.debate import (
    BUILT_IN_JUDGE,
    DebateSettings,
    DebateState,
    DebateTurn,
    Judgement,
    JudgementRecord,
    Position,
    PositionRecord,
    stance_key,
    tally,
)
from state.protocol import Blocker, CheckpointMsg, Conflict
from state.roles import Role, Team, TeamError
from state.untrusted import DATA_RULE, fence, neutralize

RESULT_FILE = "DEBATE.md"
S = TypeVar("S", bound=BaseModel)

DEBATER_PROMPT = """You are a debater on a panel answering a question. Take a clear stance, argue it with your \
strongest arguments, and say how confident you are. In later rounds, critique the other positions honestly: keep \
your stance if it still holds, change it when another argument is better."""

OPENING_INSTRUCTIONS = "State your position on the question below."
REBUTTAL_INSTRUCTIONS = """Round {round}: critique the other debaters' latest positions below (name them), then \
state your position again, kept or changed.
""" + DATA_RULE

JUDGE_PROMPT = """You are the judge of a debate. Weigh the debaters' final positions on the merit of their \
arguments, not on how many hold them, decide the question, and give your reasons, including why the dissent lost."""

JUDGE_INSTRUCTIONS = "Decide the question below from the debaters' final positions.\n" + DATA_RULE



@dataclass(frozen=True)
class Panel:
    """Who debates and judges, and when the debate stops (a team's settings, resolved and checked)."""

    debaters: list[str]
    judge: str
    judge_role: Role | None
    max_rounds: int
    converge_at: float
    stop_on_repeat: bool = True


def panel(kit: Kit, team: Team, overrides: Mapping[str, Any]) -> Panel:
    """The settings of `team` (its `patterns.debate` section, then `build()` keywords), checked against its roles."""
    s = kit.settings(team, "debate", DebateSettings, overrides)
    names = [r.name for r in team.roles]

    def error(field: str, message: str) -> TeamError:
        return TeamError(f"{team.where('patterns', 'debate', field)}: {message}")

    if isinstance(s.debaters, int):
        if s.debaters > len(names):
            raise error("debaters", f"{s.debaters} debaters wanted, but team {team.name!r} has {len(names)} roles")
        debaters = names[: s.debaters]
    else:
        debaters = list(s.debaters)
        if unknown := [d for d in debaters if d not in names]:
            raise error("debaters", f"team {team.name!r} has no role {unknown[0]!r}; roles: {', '.join(names)}")
    if s.judge is not None and s.judge not in names:
        raise error("judge", f"team {team.name!r} has no role {s.judge!r}; roles: {', '.join(names)} (leave it "
                    "unset for troupe's own judge)")
    if s.judge in debaters:
        raise error("judge", f"{s.judge!r} also debates; a judge must not judge its own position")
    judge_role = team.role(s.judge) if s.judge else None
    return Panel(debaters, s.judge or BUILT_IN_JUDGE, judge_role, s.max_rounds, s.converge_at, s.stop_on_repeat)


def view(p: PositionRecord) -> dict[str, Any]:
    """A position's stance, claim, arguments and confidence."""
    return {k: p[k] for k in ("stance", "claim", "arguments", "confidence") if k in p}


def shown(name: str, p: PositionRecord) -> dict[str, Any]:
    """What another agent sees of `name`'s position: its claim and arguments fenced as data; its stance a bare
    label (at most 60 characters, to be reused exactly), without control characters or marker runs."""
    source = f"{name}, round {p.get('round', 1)}"
    return {"stance": neutralize(p["stance"]), "claim": fence(p.get("claim", ""), source),
            "arguments": [fence(a, source) for a in p.get("arguments", [])], "confidence": p.get("confidence", 0.0)}


def debater(kit: Kit) -> Callable[..., Awaitable[dict]]:
    """The argue node: one debater's turn in one round, from its `DebateTurn`."""

    async def argue(state: Payload, runtime: Runtime[RunContext]) -> dict:
        turn = parse(DebateTurn, state)
        name, rnd = turn["debater"], turn["round"]
        team = await kit.team_for(runtime)
        role = team.role(name)
        brief = {"question": turn["question"], "round": rnd, "you": name,
                 "your_position": view(turn["own"]) if turn["own"] else None,
                 "others": {n: shown(n, p) for n, p in turn["others"].items() if p.get("stance")}}
        instructions = OPENING_INSTRUCTIONS if rnd == 1 else REBUTTAL_INSTRUCTIONS.format(round=rnd)
        system = f"{role.prompt}\n\n{DEBATER_PROMPT}"
        try:
            position = await ask(kit, runtime, Position, name, role, prompt(system, instructions, brief))
        except ValueError as exc:  # a ValidationError or OutputParserException: the answer was garbage
            return await sat_out(runtime, turn, f"its answer was malformed: {_first_line(exc)}")
        return await _stated(runtime, turn, position)

    return argue


async def _stated(runtime: Runtime[RunContext], turn: DebateTurn, position: Position) -> dict:
    name, rnd = turn["debater"], turn["round"]
    before = (turn["own"] or {}).get("stance")
    moved = f"; moved from '{before}'" if before and stance_key(before) != stance_key(position.stance) else ""
    messages: list[Any] = [CheckpointMsg(
        sender=name, recipient="moderator", correlation_id=f"round-{rnd}", label=f"position: {position.stance}",
        note=f"{position.claim} (confidence {position.confidence:.2f}{moved}) Arguments: "
             + " | ".join(position.arguments))]
    flagged = screen({"stance": position.stance, "claim": position.claim, "arguments": "\n".join(position.arguments),
                      "critique": position.critique}, f"{name}'s")
    if flagged:
        messages.append(flag(flagged, recipient="moderator", correlation_id=f"round-{rnd}", rnd=rnd))
    if position.critique.strip():
        messages.append(Conflict(sender=name, recipient="debaters", correlation_id=f"round-{rnd}",
                                 topic=f"critique by {name}", description=position.critique.strip()))
    await scope.journal(runtime).post(*messages)
    record = PositionRecord(stance=position.stance, claim=position.claim, arguments=position.arguments,
                            confidence=position.confidence, round=rnd)
    return {"positions": {name: record}}


async def sat_out(runtime: Runtime[RunContext], turn: DebateTurn, reason: str) -> dict:
    """A debater's failed turn: the reason in the journal; its earlier position (if any) stands."""
    await scope.journal(runtime).post(Blocker(sender=turn["debater"], recipient="moderator",
                                              correlation_id=f"round-{turn['round']}", reason=reason))
    record: PositionRecord = {**(turn["own"] or {}), "failed": reason}
    return {"positions": {turn["debater"]: record}}


async def debater_failed(state: Payload, error: NodeError, runtime: Runtime[RunContext]) -> dict:
    """The argue node's error handler: a turn that still fails after its retries (or hangs) fails that debater."""
    return await sat_out(runtime, parse(DebateTurn, state), _why(error))


def judge(kit: Kit, overrides: Mapping[str, Any]) -> Callable[..., Awaitable[dict]]:
    """The judge node: decides from the final positions; writes the result."""

    async def decide(state: DebateState, runtime: Runtime[RunContext]) -> dict:
        p = panel(kit, await kit.team_for(runtime), overrides)
        held = {n: view(pos) for n, pos in state.get("positions", {}).items() if pos.get("stance")}
        if not held:
            return await conclude(runtime, state, p.judge, None, "no debater stated a position")
        brief = {"question": state["task"], "rounds": state.get("round", 1), "stopped": state.get("stop", ""),
                 "positions": {n: shown(n, pos) for n, pos in state.get("positions", {}).items() if pos.get("stance")}}
        role = p.judge_role
        system = f"{role.prompt}\n\n{JUDGE_PROMPT}" if role else JUDGE_PROMPT
        try:
            verdict = await ask(kit, runtime, Judgement, p.judge, role, prompt(system, JUDGE_INSTRUCTIONS, brief))
        except ValueError as exc:
            why = f"its answer was malformed: {_first_line(exc)}"
            return await conclude(runtime, state, p.judge, None, why)
        if stance_key(verdict.winning_stance) not in {stance_key(h["stance"]) for h in held.values()}:
            return await conclude(runtime, state, p.judge, None,
                                  f"it named a winning stance no debater holds: {verdict.winning_stance!r}")
        return await conclude(runtime, state, p.judge, verdict)

    return decide


def judge_failed(kit: Kit, overrides: Mapping[str, Any]) -> Callable[..., Awaitable[dict]]:
    """The judge node's error handler: a judge that still fails after its retries leaves the question undecided."""

    async def failed(state: DebateState, error: NodeError, runtime: Runtime[RunContext]) -> dict:
        name = panel(kit, await kit.team_for(runtime), overrides).judge
        return await conclude(runtime, state, name, None, _why(error))

    return failed


async def conclude(runtime: Runtime[RunContext], state: DebateState, judge_name: str, verdict: Judgement | None,
                   failure: str = "") -> dict:
    """Journal the decision (or why there is none), write the result, end the run."""
    record = JudgementRecord(decision=verdict.decision, reasons=verdict.reasons,
                             winning_stance=verdict.winning_stance, by=judge_name) if verdict else None
    if record:
        message: Any = CheckpointMsg(sender=judge_name, recipient="user", correlation_id="decision",
                                     label=f"decision: {record['winning_stance']}",
                                     note=f"{record['decision']} Reasons: " + " | ".join(record["reasons"]))
    else:
        message = Blocker(sender=judge_name, recipient="user", correlation_id="decision",
                          reason=f"no decision: {failure}")
    result = render(state, record, failure)
    await scope.write_text(runtime, RESULT_FILE, result)
    await scope.journal(runtime).post(message)
    return {"judgement": record, "result": result, "status": "completed"}


def render(state: DebateState, judgement: JudgementRecord | None, failure: str = "") -> str:
    """The result in Markdown: the decision, the final positions, the judge's reasons."""
    positions = state.get("positions", {})
    lead = tally(positions)
    lines = [f"# Debate: {state['task']}", ""]
    if judgement:
        lines += [f"**Decision ({judgement['winning_stance']}):** {judgement['decision']}", ""]
    else:
        lines += [f"**No decision:** the judge failed ({failure}).", ""]
    lines += [f"{state.get('round', 1)} round(s); stopped: {state.get('stop', 'unknown')}; "
              f"{lead.holders} of {lead.voters} debaters held '{lead.stance}' at the end"
              + (f"; judge: {judgement['by']}." if judgement else "."), "",
              "## Final positions", "", "| debater | stance | confidence | claim |", "|---|---|---|---|"]
    for name, p in positions.items():
        failed = f" (its last turn failed: {p['failed']})" if p.get("failed") else ""
        lines.append(f"| {name} | {_cell(p.get('stance', '-'))} | {p.get('confidence', 0.0):.2f} | "
                     f"{_cell(p.get('claim', '-') + failed)} |")
    lines += ["", "## Judge's reasons", ""]
    lines += [f"- {r}" for r in judgement["reasons"]] if judgement else [f"- none: {failure}"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _why(error: NodeError) -> str:
    return f"failed after its retries: {type(error.error).__name__}: {_first_line(error.error)}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or ["(no message)"])[0][:200]
