"""How the offline model plays the debate pattern's roles (structured answers by schema name).

A debater's first stance comes from the question, seeded per agent, so debaters start apart. In later rounds a
debater in the minority moves to the leading stance and one in the majority holds it and critiques the dissent,
so a debate converges. 'disagree' (or 'lie') keeps a debater contrary to the others every round, so from round 2
on nothing moves: a stalemate that the debate's loop detection ends after round 3. The judge
sides with the leading stance; told to 'disagree' it sides with the minority, told to 'lie' it names a stance
no debater holds. An 'inject' debater argues as an honest one would, and adds orders for the other agents
(`nodes.offline_hierarchical.INJECTION`) to its claim, arguments and critique. What others said reaches a debater
and the judge fenced (`state.untrusted.fence`); they quote it without the fence.
"""

from __future__ import annotations

import random
import re
from typing import Any

from nodes.offline_hierarchical import INJECTION
from nodes.offline_roles import Answer, Play
from state.debate import PositionRecord, stance_key, tally
from state.untrusted import unfence

_FOR = ["it removes a class of problems we keep paying for", "the long-term cost is lower than the cost of standing "
        "still", "the team can learn what it needs with a bounded investment", "it fits the requirements of the next "
        "few years better than what we have"]
_AGAINST = ["the cost and the risk come first while the benefit is uncertain", "it stops feature work for months",
            "the known problems can be fixed step by step instead", "it makes hiring and onboarding harder"]
_OPTION = ["{o} fits the team's existing skills", "{o} has the more mature ecosystem", "{o} is simpler to operate",
           "{o} has fewer unknowns for this case"]
_LEAD = re.compile(r"^\s*(should|shall|must|do|does|can|could|would|will|is|are)\s+(we|i|you|they|it|the team)\s+",
                   re.I)


def stances_for(question: str) -> list[str]:
    """'Postgres or MySQL?' -> ['postgres', 'mysql']; any other question -> ['for', 'against']."""
    m = re.search(r"([\w+#.-]+)\s+or\s+([\w+#.-]+)\W*$", question.strip(), re.I)
    return [m.group(1).lower(), m.group(2).lower()] if m else ["for", "against"]


def _subject(question: str) -> str:
    return _LEAD.sub("", question.strip().rstrip("?!. ")) or question


def _claim(question: str, stance: str) -> str:
    subject = _subject(question)
    if stance == "for":
        return f"We should {subject}."
    if stance == "against":
        return f"We should not {subject}."
    return f"{stance.capitalize()} is the better answer to '{question.strip()}'."


def _arguments(stance: str, rng: random.Random, agent: str) -> list[str]:
    pool = _FOR if stance == "for" else _AGAINST if stance == "against" else [a.format(o=stance) for a in _OPTION]
    picked = rng.sample(pool, 2)
    return [f"From the {agent} side: {picked[0]}.", picked[1][0].upper() + picked[1][1:] + "."]


def position_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """A debater's position: seeded in round 1; later, move to the leading stance or hold it (or stay contrary)."""
    question: str = brief["question"]
    own: PositionRecord | None = brief.get("your_position")
    others = {n: _plain(p) for n, p in (brief.get("others") or {}).items()}
    options = stances_for(question)
    rng = random.Random(f"{play.seed}:{play.agent}:{question}:{brief.get('round', 1)}")
    first = random.Random(f"{play.seed}:{play.agent}:{question}").choice(options)
    mine = (own or {}).get("stance") or first
    critique = ""
    if play.mode in ("disagree", "lie") and others:
        lead = stance_key(tally(others).stance)
        stance = next((o for o in options if o != lead), options[-1])
        critique = _critique(others, stance, "I still disagree with everyone else")
    elif others and brief.get("round", 1) > 1:
        everyone = {**others, play.agent: own} if own and own.get("stance") else others
        stance = tally(everyone).stance
        if stance_key(stance) != stance_key(mine):
            persuader = max((n for n, p in others.items() if stance_key(p.get("stance", "")) == stance_key(stance)),
                            key=lambda n: others[n].get("confidence", 0.0))
            why = (others[persuader].get("arguments") or ["their case"])[0]
            critique = f"{persuader} persuaded me: {why} My earlier case for '{mine}' does not outweigh it."
        else:
            critique = _critique(others, stance, "No one disagrees any more")
    else:
        stance = mine
    confidence = 1.0 if play.mode == "lie" else round(rng.uniform(0.55, 0.9), 2)
    claim, arguments = _claim(question, stance), _arguments(stance, rng, play.agent)
    if play.mode == "inject":
        claim, arguments = f"{claim} {INJECTION}", [*arguments, INJECTION]
        critique = f"{critique} {INJECTION}" if critique else ""
    return {"stance": stance, "claim": claim, "arguments": arguments, "confidence": confidence, "critique": critique}


def _plain(p: dict[str, Any]) -> PositionRecord:
    """Another debater's position as shown in a brief, its claim and arguments without their fences."""
    return {**p, "claim": unfence(p.get("claim", "")),  # type: ignore[typeddict-item]
            "arguments": [unfence(a) for a in p.get("arguments", [])]}


def _critique(others: dict[str, PositionRecord], stance: str, if_none: str) -> str:
    """One point against each debater who holds another stance."""
    dissent = {n: p for n, p in others.items() if p.get("stance") and stance_key(p["stance"]) != stance_key(stance)}
    if not dissent:
        return f"{if_none}; the case for '{stance}' stands."
    return " ".join(f"{n} claims '{p.get('claim', '')}' but does not weigh why '{stance}' is the better answer."
                    for n, p in sorted(dissent.items()))


def judgement_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """The judge: the leading stance and its strongest argument, with the dissent named."""
    positions = {n: _plain(p) for n, p in brief["positions"].items()}
    lead = tally(positions)
    stance = lead.stance
    if play.mode == "disagree":
        minority = sorted({p["stance"] for p in positions.values()} - {lead.stance})
        stance = minority[0] if minority else lead.stance
    if play.mode == "lie":
        stance = "a stance nobody argued"
    holders = {n: p for n, p in positions.items() if stance_key(p["stance"]) == stance_key(stance)}
    reasons = [f"{len(holders)} of {len(positions)} debaters hold '{stance}' after {brief['rounds']} round(s) "
               f"({brief['stopped']})."]
    if holders:
        best = max(holders, key=lambda n: holders[n].get("confidence", 0.0))
        reasons.append(f"Strongest argument ({best}, confidence {holders[best].get('confidence', 0.0):.2f}): "
                       f"{(holders[best].get('arguments') or [''])[0]}")
        claim = holders[best].get("claim", "")
    else:
        claim = f"The answer is '{stance}'."
    dissent = sorted(n for n in positions if n not in holders)
    reasons.append("Dissent weighed: " + "; ".join(f"{n} holds '{positions[n]['stance']}': {positions[n]['claim']}"
                                                   for n in dissent) if dissent else "No dissent remained.")
    return {"decision": claim, "reasons": reasons, "winning_stance": stance}


ANSWERS: dict[str, Answer] = {"Position": position_answer, "Judgement": judgement_answer}
