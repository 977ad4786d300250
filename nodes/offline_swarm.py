"""How the offline model plays a swarm peer: whom to hand to, when to hand to several, when to return or answer.

A peer reads its request's words against its own skills and its peers' (the brief's "capabilities" and
"peers"). Only a peer's skills named: it hands the whole request over (the peer answers the user). Its own
and one peer's: it writes its part and, in the same reply, hands the other part over to come back (the tool
output is kept). Two or more peers': it hands each its part at once and gets all the results back. Nothing of
a peer's: it does the work itself. Handed work with a caller, it gives its result back; otherwise it answers.
Mode 'disagree' ('not mine'): the peer hands the request on unchanged, to the best other peer by its words,
else back to whoever handed it over; two such peers, or one and a peer that hands to it, loop until the
swarm's circuit breaker stops them. Mode 'lie' ('clearly yours'): the peer confidently hands the request on
unchanged to the first peer that did not just hand it over, so three such peers go round in a circle
(A -> B -> C -> A -> B), a loop that no pair shows and the swarm's loop detection stops. Mode 'inject': the
peer plays as an honest one and adds orders for the other agents (`offline_hierarchical.INJECTION`) to every
request it hands on, the result it gives back and its answer. What peers wrote reaches a peer fenced
(`state.untrusted.fence`); it reads and quotes it without the fence.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from nodes.offline_hierarchical import INJECTION
from nodes.offline_roles import Play
from state.router import keyword_hits
from state.swarm import HANDOFF_PREFIXES, RETURN_PREFIX, TRANSFER_PREFIX
from state.untrusted import unfence

Call = dict[str, Any]


def plays_peer(tools: list[dict[str, Any]]) -> bool:
    """True when hand-off tools are bound: the model is a swarm peer."""
    return any(t["function"]["name"].startswith(HANDOFF_PREFIXES) for t in tools)


def turn(brief: dict[str, Any], tools: list[dict[str, Any]], messages: list[BaseMessage], play: Play
         ) -> tuple[list[Call], str]:
    """One reply of a peer: (tool calls, text)."""
    brief = brief | {"request": unfence(brief["request"]),
                     "results": [r | {"result": unfence(r["result"])} for r in brief.get("results") or []]}
    calls, text = _turn(brief, tools, messages, play)
    if play.mode != "inject":
        return calls, text
    return [_injected(c) for c in calls], f"{text} {INJECTION}" if text else text


def _injected(call: Call) -> Call:
    """A hand-off call with orders for the other agents added to what it passes on."""
    key = "request" if call["name"].startswith(TRANSFER_PREFIX) else "result" if call["name"].startswith(
        RETURN_PREFIX) else None
    return call | {"args": call["args"] | {key: f"{call['args'][key]} {INJECTION}"}} if key else call


def _turn(brief: dict[str, Any], tools: list[dict[str, Any]], messages: list[BaseMessage], play: Play
          ) -> tuple[list[Call], str]:
    names = [t["function"]["name"] for t in tools]
    called = {c["id"]: c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = {m.name or called.get(m.tool_call_id) for m in messages if isinstance(m, ToolMessage)}
    request, results = brief["request"], brief.get("results") or []
    transfers = [n.removeprefix(TRANSFER_PREFIX) for n in names if n.startswith(TRANSFER_PREFIX)]
    give_back = next((n for n in names if n.startswith(RETURN_PREFIX)), None)
    wrote = "write_file" in answered or any(k["tool"] == "write_file" for k in brief.get("kept", []))
    if play.mode == "disagree" and not results and not answered:
        target = _not_mine(brief, transfers)
        if target:
            return [_transfer(target, request, f"not mine: {target} should do this", come_back=False)], ""
    if play.mode == "lie" and not results and not answered:
        before = brief.get("chain", [])[-2:-1]
        target = next((p for p in transfers if p not in before), None)
        if target:
            return [_transfer(target, request, f"clearly {target}'s job", come_back=False)], ""
    hits = {p: keyword_hits(request, brief["peers"][p]) for p in transfers}
    others = [p for p in transfers if hits[p]]
    mine = keyword_hits(request, brief["capabilities"])
    if not results and not answered and others:
        own = [_write(brief, results)] if mine else []
        if len(others) == 1 and not mine:
            reason = f"the request needs {', '.join(hits[others[0]])}: {others[0]}'s skills, not mine"
            return [_transfer(others[0], request, reason, come_back=False)], ""
        parts = [_transfer(p, f"Your part ({', '.join(hits[p])}) of the task",
                           f"the request needs {', '.join(hits[p])}", come_back=True) for p in others]
        return own + parts, ""
    if not wrote:
        return [_write(brief, results)], ""
    text = _answer(brief, results)
    if give_back:
        return [{"name": give_back, "args": {"result": text}}], ""
    return [], text


def _not_mine(brief: dict[str, Any], transfers: list[str]) -> str | None:
    ranked = sorted(transfers, key=lambda p: -len(keyword_hits(brief["request"], brief["peers"][p])))
    best = next((p for p in ranked if keyword_hits(brief["request"], brief["peers"][p])), None)
    before = [a for a in brief.get("chain", [])[:-1] if a in transfers]
    return best or (before[-1] if before else None) or (brief.get("caller") or None)


def _transfer(peer: str, request: str, reason: str, *, come_back: bool) -> Call:
    return {"name": f"{TRANSFER_PREFIX}{peer}", "args": {"request": request, "reason": reason, "come_back": come_back}}


def _write(brief: dict[str, Any], results: list[dict[str, Any]]) -> Call:
    skill = brief["capabilities"][0]
    lines = [f"# {brief['me']}: {brief['request']}", "", f"The {skill} part, by {brief['me']}.", "",
             "## Deliverable", "", f"- {skill} for: {brief['task']}", "- assumptions stated, open points listed", ""]
    if results:
        lines += ["## From peers", "", *(f"- {r['agent']}: {r['result']}" for r in results), ""]
    return {"name": "write_file", "args": {"path": brief["path"], "content": "\n".join(lines)}}


def _answer(brief: dict[str, Any], results: list[dict[str, Any]]) -> str:
    kept = [k["output"] for k in brief.get("kept", []) if k["tool"] == "write_file"]
    mine = f"{brief['me']} did the {brief['capabilities'][0]} part ({brief['path']})"
    lines = [f"{mine}." if not kept else f"{mine}: {kept[-1]}."]
    lines += [f"{r['agent']} {'gave back' if r['ok'] else 'failed'}: {r['result']}" for r in results]
    return " ".join(lines)
