"""Voters and the tally: independent answers to one question, counted by a rule that survives faulty voters.

`convener` sends the bare question to every voter (`Send`, one each: no voter sees another's answer);
`voter` asks one agent for a `Ballot`; `faulty_voter` is the vote node's error handler: a voter whose
model kept failing or hanging is counted as a missing vote, not a failed run; `tally` applies the
rule (`state.consensus.decide`), journals the count and the decision and writes the result. No agent reads
another's ballot (the tally is not a model), so no ballot needs a fence; one that reads like orders to agents is
journaled by the guard (`nodes.guard`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import Runnable
from langgraph.errors import NodeError
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import ValidationError

from nodes import scope
from nodes.briefs import prompt, request
from nodes.guard import flag, screen
from nodes.kit import Kit
from nodes.models import is_transient
from state.channels import Payload, parse
from state.consensus import (
    Ballot,
    ConsensusSettings,
    ConsensusState,
    Electorate,
    Verdict,
    Vote,
    VoteOrder,
    decide,
    electorate,
)
from state.context import RunContext
from state.protocol import Blocker, CheckpointMsg, Conflict, Progress, TaskAssign
from state.roles import Role, Team

CONVENER, TALLY, TOPIC = "convener", "tally", "consensus"
"""Senders of the convener's and the tally's messages, and the correlation id of every message of a run."""

VOTER_PROMPT = """You are one of several voters who answer the same question independently; you do not see the \
others' answers. Answer on your own judgement: the answer alone, as short as possible, how sure you are, and why \
in one sentence."""

VOTE_INSTRUCTIONS = "Answer the question below."

AGENT_INSTRUCTIONS = """Answer the question below on your own. Put the answer alone, as short as possible, on the \
first line of your final message; a one-sentence reason may follow on the next line."""


def normalize(answer: str) -> str:
    """The form answers are compared in: '**2 ^ 10.**' and '2^10' are the same vote."""
    text = unicodedata.normalize("NFKC", answer).casefold().strip().strip("\"'`*_.!;: \t\n")
    text = re.sub(r"\s*([^\w\s])\s*", r"\1", text)
    return re.sub(r"\s+", " ", text)[:200]


def settings_of(kit: Kit, team: Team, overrides: Mapping[str, Any]) -> Electorate:
    """The electorate from the team file's `patterns.consensus` section and `build()`'s keywords (checked).

    An error names the setting where it was given: the team file's line, or the build() keyword.
    """
    given = {k for k, v in overrides.items() if v is not None}

    def where(name: str) -> str:
        return f"consensus.build({name}={overrides[name]!r})" if name in given else \
            team.where("patterns", "consensus", name)

    return electorate(team, kit.settings(team, "consensus", ConsensusSettings, overrides), where)


def convener(kit: Kit, overrides: Mapping[str, Any], *, vote: str) -> Callable[..., Awaitable[Command]]:
    """The convene node: checks the question and the settings, then sends the question to every voter."""

    async def convene(state: ConsensusState, runtime: Runtime[RunContext]) -> Command:
        question = (state.get("task") or "").strip()
        if not question:
            raise ValueError("the question is empty: say what the voters should answer")
        e = settings_of(kit, await kit.team_for(runtime), overrides)
        await scope.journal(runtime).post(*(
            TaskAssign(sender=CONVENER, recipient=agent, correlation_id=TOPIC, title=question, round=1,
                       reason=f"one of the {len(e.voters)} voters, answering alone")
            for agent in e.voters))
        orders = [VoteOrder(voter=agent, role=role, question=question) for agent, role in e.voters.items()]
        return Command(update={"status": "voting"}, goto=[Send(vote, order) for order in orders])

    return convene


def voter(kit: Kit) -> Callable[..., Awaitable[dict]]:
    """The vote node: one agent answers the bare question; garbage is a missing vote with its reason."""

    async def vote(state: Payload, runtime: Runtime[RunContext]) -> dict:
        order = parse(VoteOrder, state)
        agent, role = order["voter"], (await kit.team_for(runtime)).role(order["role"])
        brief = {"question": order["question"], "voter": agent}
        try:
            if role.name in kit.agents:
                ballot = await _ask_agent(kit.agents[role.name], role, brief)
            else:
                who = role.name if role.name in kit.models else agent  # 'qa_2' shares the model object of 'qa'
                chat = await kit.model(role.model_role, runtime, agent=who, role=role, attempt=scope.attempt(runtime))
                answer = await chat.with_structured_output(Ballot).ainvoke(
                    prompt(f"{role.prompt}\n\n{VOTER_PROMPT}", VOTE_INSTRUCTIONS, brief))
                ballot = Ballot.model_validate(answer)
        except (ValidationError, OutputParserException) as exc:
            return await _no_vote(runtime, agent, f"malformed ballot: {str(exc).splitlines()[0]}")
        if not normalize(ballot.answer):
            return await _no_vote(runtime, agent, "an empty answer")
        said = " ".join(ballot.answer.split())[:200]
        messages: list[Any] = [Progress(sender=agent, recipient=TALLY, correlation_id=TOPIC,
                                        note=f"vote: {said} (confidence {ballot.confidence:.2f}) - {ballot.rationale}")]
        if flagged := screen({"answer": ballot.answer, "reason": ballot.rationale}, f"{agent}'s"):
            messages.append(flag(flagged, recipient=TALLY, correlation_id=TOPIC))
        await scope.journal(runtime).post(*messages)
        return {"votes": {agent: Vote(answer=normalize(said), said=said, confidence=ballot.confidence, fault=None)}}

    return vote


def faulty_voter(*, tally: str) -> Callable[..., Awaitable[Command]]:
    """The vote node's error handler: a model that kept failing or hanging costs its vote, not the run.

    Any other error (a bad key, a bug) is not a voter's fault and still fails the run.
    """

    async def no_vote(state: Payload, runtime: Runtime[RunContext], error: NodeError) -> Command:
        order = parse(VoteOrder, state)
        if not (isinstance(error.error, Exception) and is_transient(error.error)):
            raise error.error
        why = str(error.error).splitlines()[0] if str(error.error) else ""
        update = await _no_vote(runtime, order["voter"], f"{type(error.error).__name__} after retries: {why}")
        return Command(update=update, goto=tally)

    return no_vote


def tally(kit: Kit, overrides: Mapping[str, Any]) -> Callable[..., Awaitable[dict]]:
    """The tally node: counts the votes by the rule, journals the count and the decision, writes the result."""

    async def count(state: ConsensusState, runtime: Runtime[RunContext]) -> dict:
        e = settings_of(kit, await kit.team_for(runtime), overrides)
        votes = state.get("votes") or {}
        v = decide(e, votes)
        counted = "; ".join(f"{a}: {votes[a]['said'] if a not in v['faulty'] else 'no vote'}" for a in e.voters)
        messages: list[Any] = [CheckpointMsg(sender=TALLY, recipient="team", correlation_id=TOPIC,
                                             label="votes counted", note=counted)]
        if v["dissenters"]:
            against = ", ".join(f"{a} ({ans})" for a, ans in v["dissenters"].items())
            messages.append(Conflict(sender=TALLY, recipient="team", correlation_id=TOPIC, topic="dissent",
                                     description=f"against {v['leading']}: {against}"))
        label = f"consensus: {v['outcome']}" if v["outcome"] is not None else "no safe consensus"
        messages.append(CheckpointMsg(sender=TALLY, recipient="team", correlation_id=TOPIC, label=label,
                                      note=_summary(v)))
        await scope.journal(runtime).post(*messages)
        return {"verdict": v, "result": report(state.get("task", ""), v, votes, e), "status": "completed"}

    return count


def _summary(v: Verdict) -> str:
    tally = ", ".join(f"{a}: {n}" for a, n in v["tally"].items()) or "no votes"
    return (f"tally {tally}; agreement {v['agreement']:.0%}; dissenters: {', '.join(v['dissenters']) or 'none'}; "
            f"faulty: {', '.join(v['faulty']) or 'none'}; rule {v['rule']}, f={v['faults']} of n={v['voters']}: "
            f"needs {v['needed']}; {v['reason']}")


def report(question: str, v: Verdict, votes: Mapping[str, Vote], e: Electorate) -> str:
    """The result as Markdown: the outcome or 'no safe consensus', the tally, agreement, dissenters, faulty voters."""
    support = v["tally"].get(v["leading"] or "", 0)
    lines = [f"# Consensus: {question}", ""]
    if v["outcome"] is not None:
        lines.append(f"**Outcome: {v['outcome']}** ({support} of {v['voters']} votes: {v['reason']})")
    elif v["leading"] is not None:
        lines.append(f"**No safe consensus.** The leading answer, {v['leading']}, is not safe: {v['reason']}.")
    else:
        lines.append(f"**No safe consensus:** {v['reason']}.")
    weighted = v["rule"] == "weighted"
    lines += ["", f"Rule: {v['rule']}, tolerating f = {v['faults']} faulty of n = {v['voters']} voters; "
                  f"an outcome needs {v['needed']}.", "",
              "| answer | votes |" + (" weight |" if weighted else "") + " voters |",
              "|---|---|" + ("---|" if weighted else "") + "---|"]
    for answer, n in v["tally"].items():
        backers = [a for a in e.voters if a in votes and votes[a]["answer"] == normalize(answer)]
        weight = f" {v['weight'][answer]:g} |" if weighted else ""
        lines.append(f"| {answer} | {n} |{weight} {', '.join(backers)} |")
    lines += ["", f"Agreement: {v['agreement']:.0%} ({support} of {v['voters']})",
              "Dissenters: " + (", ".join(f"{a} ({ans})" for a, ans in v["dissenters"].items()) or "none"),
              "Faulty (no vote): " + (", ".join(f"{a} ({why})" for a, why in v["faulty"].items()) or "none")]
    return "\n".join(lines) + "\n"


async def _no_vote(runtime: Runtime[RunContext], agent: str, reason: str) -> dict:
    await scope.journal(runtime).post(Blocker(sender=agent, recipient=TALLY, correlation_id=TOPIC,
                                              reason=f"no vote: {reason}"))
    return {"votes": {agent: Vote(answer=None, said="", confidence=0.0, fault=reason)}}


async def _ask_agent(agent: Runnable[Any, Any], role: Role, brief: dict[str, Any]) -> Ballot:
    """A caller's agent votes with its final message: the first line is its answer, the rest its reason."""
    result = await agent.ainvoke({"messages": [HumanMessage(f"{role.prompt}\n\n{request(AGENT_INSTRUCTIONS, brief)}")]})
    messages = result.get("messages", []) if isinstance(result, dict) else []
    final = next((m.text.strip() for m in reversed(messages) if isinstance(m, AIMessage) and not m.tool_calls), "")
    first, _, rest = final.partition("\n")
    return Ballot(answer=first.strip(), confidence=0.5, rationale=rest.strip() or "(no reason given)")
