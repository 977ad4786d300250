"""How the offline model plays the event_driven pattern's roles (structured answers by schema name).

`Reaction`: a handler notes the event from its main skill and, when the event came on the first topic it
subscribes to, publishes one event on its own topic (its main capability), if the topic directory lists
a subscriber for it other than itself. So the default subscriptions give a chain that fans out to two roles
at each step and goes quiet at the end of the chain. A 'lie' handler publishes on a topic nobody handles. A
'disagree' handler objects to every event it gets, on whichever of its topics: it publishes the same objection on
its own topic each time, so when that topic's handlers publish back to it the events go round a cycle (the
pattern's loop detection drops the repeated objection). An 'inject' handler reacts as an honest one would and adds
orders for the other agents (`offline_hierarchical.INJECTION`) to its summary, its work and what it publishes.
Payloads other agents published come fenced; a handler quotes them without the fence.
"""

from __future__ import annotations

import random
from typing import Any

from nodes.offline_hierarchical import INJECTION
from nodes.offline_roles import Answer, Play
from state.event_driven import PAYLOAD_CHARS
from state.untrusted import unfence

_ACTIONS = ("checked", "assessed", "traced", "reviewed", "looked into")


def reaction_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    you, event = brief["you"], brief["event"]
    topics: dict[str, list[str]] = brief.get("topics", {})
    own: str = you["capabilities"][0]
    rng = random.Random(f"{play.seed}:{you['name']}:{event['id']}")
    root = unfence((brief.get("cause_chain") or [event])[0]["payload"])
    summary = f"{you['name']} {rng.choice(_ACTIONS)} {event['topic']}#{event['seq']} from the {own} side."
    details = "\n".join([
        f"## {own.capitalize()} view of {event['id']} ({event['topic']})", "",
        f"- Event: {unfence(event['payload'])}",
        f"- Root cause being worked: {root}",
        f"- What was done: {own} checks for this event ({len(brief.get('cause_chain', []))} event(s) led here).",
    ])
    publish: list[dict[str, str]] = []
    others = [s for s in topics.get(own, []) if s != you["name"]]
    if play.mode == "lie":
        publish = [{"topic": f"{own}.rumour", "payload": f"{you['name']} claims {event['topic']} is resolved."}]
    elif play.mode == "disagree" and others:
        publish = [{"topic": own, "payload": f"{you['name']} objects: the {own} concerns about '{root[:120]}' are "
                                             "not settled."}]
    elif event["topic"] == you["subscribes"][0] and others:
        publish = [{"topic": own, "payload": f"{own} findings on {event['topic']}#{event['seq']} by {you['name']}: "
                                             f"{own} work needed for '{root[:120]}'."}]
    if play.mode == "inject":
        summary, details = f"{summary} {INJECTION}", f"{details}\n\n{INJECTION}"
        publish = [p | {"payload": f"{p['payload']} {INJECTION}"[:PAYLOAD_CHARS]} for p in publish]
    return {"summary": summary, "details": details, "publish": publish}


ANSWERS: dict[str, Answer] = {"Reaction": reaction_answer}
