"""How the offline model plays the router pattern's roles (structured answers by schema name).

- Route: keyword overlap per route (the brief's "routes"); confidence = the winner's share of all hits
  (1/n when nothing matches); ties are broken by a seeded shuffle. 'lie': the worst route, confidently.
  'disagree': the runner-up.
- HandOn: hands on to the best route not yet asked that has keyword hits (a request with two parts);
  else the request is handled. 'lie': always "handled". 'disagree': sends the request back to the first route
  that answered it (a repeat the router refuses as a loop).
- Escalation: a person takes over for a refund or money back above the policy's "over $N" (default 500),
  legal words (lawyer, attorney, lawsuit, sue, legal), angry words (furious, angry, unacceptable,
  ridiculous, outraged, scam, "!!"), a request for a human or person, or no draft answer. 'lie': the opposite.
- MergedAnswer: every answer's body under its route's heading; 'disagree' reports that they differ.
"""

from __future__ import annotations

import random
import re
from typing import Any

from nodes.offline_roles import Answer, Play
from state.router import ranked
from state.untrusted import unfence

_REFUND = re.compile(r"\b(refund\w*|money back|reimburs\w*|chargeback\w*)", re.I)
_AMOUNT = re.compile(r"[$€£]\s?(\d[\d,]*(?:\.\d+)?)|\b(\d[\d,]*(?:\.\d+)?)\s?(?:dollars|usd|eur|euros?)\b", re.I)
_LIMIT = re.compile(r"over\s+[$€£]?\s?(\d[\d,]*)", re.I)
_LEGAL = re.compile(r"\b(lawyers?|attorneys?|lawsuits?|sue|legal)\b", re.I)
_ANGRY = re.compile(r"\b(furious|angry|unacceptable|ridiculous|outraged|scam)\b|!!", re.I)
_PERSON = re.compile(r"\b(speak|talk)\s+to\s+(a|an|some)\s*(one|human|person|manager|real person)\b", re.I)


def route(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    text, routes = brief["request"], brief["routes"]
    rng = random.Random(f"{play.seed}:{text}")
    best = ranked(routes, text, {r: rng.random() for r in routes})
    if play.mode == "lie":
        worst = best[-1]
        return {"route": worst.route, "confidence": 0.95, "reason": f"clearly a {worst.route} matter",
                "runner_up": best[0].route, "runner_up_confidence": 0.05}
    if play.mode == "disagree" and len(best) > 1:
        best = [best[1], best[0], *best[2:]]
    top = best[0]
    total = sum(len(s.hits) for s in best)
    reason = (f"the request mentions {', '.join(map(repr, top.hits))} ({len(top.hits)} of {total} keyword hits)"
              if top.hits else f"no route's keywords match; {top.route} chosen by a seeded tie-break")
    out: dict[str, Any] = {"route": top.route, "confidence": round(top.share, 2), "reason": reason}
    if len(best) > 1:
        out |= {"runner_up": best[1].route, "runner_up_confidence": round(best[1].share, 2)}
    return out


def hand_on(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    text, routes, left = brief["request"], brief["routes"], brief["left"]
    asked = " + ".join(a["route"] for a in brief["answered"]) or "the specialists"
    total = sum(len(s.hits) for s in ranked(routes, text))
    best = ranked({r: routes[r] for r in left}, text) if left else []
    if play.mode == "disagree" and brief["answered"]:
        first = brief["answered"][0]["route"]
        return {"route": first, "confidence": 0.8, "reason": f"{first} should look at it again"}
    if play.mode == "lie" or not best or not best[0].hits:
        return {"route": None, "confidence": 0.9, "reason": f"{asked} answered every part of the request"}
    nxt = best[0]
    return {"route": nxt.route, "confidence": round(len(nxt.hits) / total, 2),
            "reason": f"the request also mentions {', '.join(map(repr, nxt.hits))}, which is {nxt.route}'s, "
                      f"not {asked}'s"}


def escalation(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    needs, reason = _policy(brief)
    if play.mode == "lie":
        needs, reason = not needs, "a person must see this" if not needs else "nothing here needs a person"
    return {"needs_human": needs, "reason": reason}


def _policy(brief: dict[str, Any]) -> tuple[bool, str]:
    text = brief["request"]
    limit = float(m.group(1).replace(",", "")) if (m := _LIMIT.search(brief.get("policy", ""))) else 500.0
    amounts = [float((a or b).replace(",", "")) for a, b in _AMOUNT.findall(text)]
    if _REFUND.search(text) and amounts and max(amounts) > limit:
        return True, f"a refund of {max(amounts):,.0f}, over the policy's limit of {limit:,.0f}"
    if m := _LEGAL.search(text):
        return True, f"legal words ({m.group(0)!r}): the policy sends legal matters to a person"
    if m := _ANGRY.search(text):
        return True, f"the customer is angry ({m.group(0)!r})"
    if _PERSON.search(text):
        return True, "the customer asks for a person"
    if not brief.get("draft_answer"):
        return True, "there is no answer to send"
    return False, "no policy point applies; the draft answers the request"


def merged(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    answers = brief["answers"]
    routes = " and ".join(a["route"] for a in answers)
    parts = [f"## From {a['route']} ({a['kind']}, {a['confidence']:.2f})\n\n{_body(unfence(a['answer']))}"
             for a in answers]
    answer = f"# Answer: {brief['request']}\n\nMerged from {routes}.\n\n" + "\n\n".join(parts)
    if play.mode == "disagree":
        return {"answer": answer, "agreed": False, "notes": f"{routes} differ; both views are given"}
    return {"answer": answer, "agreed": True, "notes": f"{routes} complement each other; each part is kept"}


def _body(text: str) -> str:
    """An answer without its title line."""
    lines = text.strip().splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines).strip()


ANSWERS: dict[str, Answer] = {"Route": route, "HandOn": hand_on, "Escalation": escalation, "MergedAnswer": merged}
