"""Publisher, dispatcher (the broker) and subscribers: the agents of the event-driven pattern.

`publisher` publishes the task on the initial topic. `dispatcher` runs after every round: it settles the
deliveries of the round (a failed one becomes a dead letter), accepts what the handlers published (an id,
a per-topic sequence number, an EVENT message; no subscriber: a dead letter at once; past `max_events`:
dropped), then delivers the oldest pending event of each topic to every subscriber of that topic (`Send`;
different topics at once, one event per topic per round, so a topic's events are handled in order).
`subscriber` handles one delivery from its scoped view (the event, its cause chain, the topic directory)
and answers a `Reaction`; `delivery_failed` is its error handler.

Loop detection (`stop_on_repeat`, on by default): a publication equal to an event of its own cause chain (the
same topic and payload, case and spacing aside) would start the same cycle again, so the dispatcher drops it with
a "loop detected" CHECKPOINT naming the event it repeats; the run then goes quiet instead of spinning to
`max_events`. The window is the cause chain a handler sees (the root and the latest CHAIN_LINKS - 1 events).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.errors import NodeError
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from nodes import scope
from nodes.briefs import prompt
from nodes.fanout import why
from nodes.guard import flag, screen
from nodes.kit import Kit
from nodes.structured import ask
from state.channels import Payload, parse
from state.context import RunContext
from state.event_driven import (
    CHAIN_LINKS,
    PAYLOAD_CHARS,
    DeadLetter,
    Delivery,
    EventRecord,
    EventSettings,
    EventState,
    InFlight,
    Link,
    Reaction,
    Report,
    Routing,
    derived,
    number,
)
from state.loops import loop_detected, signature
from state.protocol import AnyMessage, ArtifactMsg, Blocker, CheckpointMsg, Event, Progress, TaskAssign
from state.roles import Team, TeamError
from state.untrusted import DATA_RULE, fence
from tools.workspace import sha256

PATTERN = "event_driven"
BROKER = "broker"
USER = "user"

HANDLER_PROMPT = """You handle events published on the topics you subscribe to. React to the event below within \
your expertise: say what you did, write up your work, and publish an event for each thing others must act on, \
on a topic from the topic directory. Publish nothing when nothing follows from your work."""

HANDLER_INSTRUCTIONS = "Handle the event below (its cause chain shows what led to it).\n" + DATA_RULE


class EventError(ValueError):
    """A run that cannot start (an empty task)."""


def routing(kit: Kit, team: Team, overrides: Mapping[str, Any]) -> Routing:
    """The settings of `team` (`patterns.event_driven`, then `build()` keywords), checked against its roles."""
    s = kit.settings(team, PATTERN, EventSettings, overrides)
    names = [r.name for r in team.roles]
    subs = derived(team, s.initial_topic) if s.subscriptions is None else s.subscriptions
    for role in subs:
        if role not in names:
            raise TeamError(f"{team.where('patterns', PATTERN, 'subscriptions', role)}: team {team.name!r} has no "
                            f"role {role!r}; roles: {', '.join(names)}")
    ordered = {n: list(subs[n]) for n in names if subs.get(n)}
    r = Routing(ordered, s.initial_topic, s.max_events, s.handler_timeout, s.stop_on_repeat)
    if not r.subscribers(s.initial_topic):
        raise TeamError(f"{team.where('patterns', PATTERN, 'subscriptions')}: no role subscribes to the initial "
                        f"topic {s.initial_topic!r}, so the task would reach nobody")
    return r


def publisher(kit: Kit, overrides: Mapping[str, Any]) -> Callable[..., Awaitable[dict]]:
    """The publish node: checks the task and the subscriptions, then publishes the task on the initial topic."""

    async def publish(state: EventState, runtime: Runtime[RunContext]) -> dict:
        task = (state.get("task") or "").strip()
        if not task:
            raise EventError("the task is empty: say what happened")
        r = routing(kit, await kit.team_for(runtime), overrides)
        subs = "; ".join(f"{role}: {', '.join(topics)}" for role, topics in r.subscriptions.items())
        await scope.journal(runtime).post(CheckpointMsg(
            sender=BROKER, recipient="team", correlation_id="subscriptions", label="subscriptions",
            note=f"{subs} (task on {r.initial_topic!r}; at most {r.max_events} events)"))
        report = Report(event=None, subscriber=USER, ok=True, reason="",
                        publish=[{"topic": r.initial_topic, "payload": task[:PAYLOAD_CHARS]}])
        return {"reports": {"E0>user": report}, "status": "running", "round": 0, "published": 0, "dropped": 0,
                "looped": 0, "seqs": {}, "pending": {}, "inflight": {}, "handled": {}, "dead_letters": []}

    return publish


@dataclass
class _Books:
    """What the dispatcher changes in one round (copies of the state's values)."""

    pending: dict[str, EventRecord]
    handled: dict[str, list[str]]
    dead: list[DeadLetter]
    seqs: dict[str, int]
    published: int
    dropped: int
    looped: int
    messages: list[AnyMessage]

    def dead_letter(self, ev: EventRecord, subscriber: str | None, reason: str) -> None:
        self.dead.append(DeadLetter(event=ev["id"], topic=ev["topic"], payload=ev["payload"], subscriber=subscriber,
                                    reason=reason))
        self.messages.append(Blocker(sender=BROKER, recipient=subscriber or ev["source"], correlation_id=ev["id"],
                                     reason=f"dead letter ({ev['topic']}#{ev['seq']}): {reason}"))


def _settle(books: _Books, inflight: Mapping[str, InFlight], reports: Mapping[str, Report]) -> None:
    """Last round's deliveries: handled, or dead letters with the handler's reason."""
    for eid in sorted(inflight, key=number):
        ev, ok = inflight[eid]["event"], False
        for sub in inflight[eid]["subscribers"]:
            rep = reports.get(f"{eid}>{sub}")
            if rep is None or not rep["ok"]:
                books.dead_letter(ev, sub, rep["reason"] if rep else "the handler left no report")
            ok = ok or bool(rep and rep["ok"])
        if ok:
            books.handled.setdefault(ev["topic"], []).append(eid)


def _accept(books: _Books, r: Routing, inflight: Mapping[str, InFlight], reports: Mapping[str, Report]) -> None:
    """What the handlers published: queued events (ids, per-topic order), dead letters, or dropped past the bound."""
    for key in sorted(reports, key=lambda k: (number(k.partition(">")[0]), k)):
        rep = reports[key]
        cause = inflight.get(rep["event"] or "")
        chain: list[Link] = []
        if cause:
            c = cause["event"]
            chain = [*c["chain"], Link(id=c["id"], topic=c["topic"], source=c["source"], payload=c["payload"])]
            chain = chain[:1] + chain[1:][-(CHAIN_LINKS - 1):]
        for pub in rep["publish"]:
            twin = _twin(pub, chain) if r.stop_on_repeat else None
            if twin is not None:
                books.looped += 1
                path = " -> ".join(f"{link['id']} ({link['topic']})" for link in chain)
                books.messages.append(loop_detected(
                    sender=BROKER, recipient=rep["subscriber"], correlation_id=rep["event"] or "task", reason=(
                        f"{rep['subscriber']} published on {pub['topic']!r} what {twin['id']} already said in its "
                        f"cause chain ({path}): dropped, since delivering it would start the same cycle again")))
                continue
            if books.published >= r.max_events:
                books.dropped += 1
                books.messages.append(Progress(sender=BROKER, recipient=rep["subscriber"],
                                               correlation_id=rep["event"] or "task", note=f"dropped an event on "
                                               f"{pub['topic']!r}: max_events ({r.max_events}) reached"))
                continue
            books.published += 1
            topic = pub["topic"]
            books.seqs[topic] = books.seqs.get(topic, 0) + 1
            ev = EventRecord(id=f"E{books.published}", topic=topic, seq=books.seqs[topic], payload=pub["payload"],
                             source=rep["subscriber"], cause=rep["event"], chain=chain)
            books.messages.append(Event(sender=ev["source"], recipient=BROKER, correlation_id=ev["id"], topic=topic,
                                        seq=ev["seq"], payload=ev["payload"], cause=ev["cause"]))
            if r.subscribers(topic):
                books.pending[ev["id"]] = ev
            else:
                books.dead_letter(ev, None, f"no subscriber for topic {topic!r}")


def _twin(pub: Mapping[str, str], chain: list[Link]) -> Link | None:
    """The event of the cause chain that `pub` repeats (the same topic and payload), or None."""
    sig = signature(pub["topic"], pub["payload"])
    return next((link for link in chain if signature(link["topic"], link["payload"]) == sig), None)


def dispatcher(kit: Kit, overrides: Mapping[str, Any], *, handle: str, finish: str
               ) -> Callable[..., Awaitable[Command]]:
    """The dispatch node: settle the round, accept new events, deliver the next event of every topic."""

    async def dispatch(state: EventState, runtime: Runtime[RunContext]) -> Command:
        r = routing(kit, await kit.team_for(runtime), overrides)
        reports, inflight = state.get("reports", {}), state.get("inflight", {})
        books = _Books(dict(state.get("pending", {})), {t: list(ids) for t, ids in state.get("handled", {}).items()},
                       list(state.get("dead_letters", [])), dict(state.get("seqs", {})), state.get("published", 0),
                       state.get("dropped", 0), state.get("looped", 0), [])
        _settle(books, inflight, reports)
        _accept(books, r, inflight, reports)
        heads: dict[str, EventRecord] = {}
        for ev in sorted(books.pending.values(), key=lambda e: number(e["id"])):
            heads.setdefault(ev["topic"], ev)
        rnd = state.get("round", 0) + (1 if heads else 0)
        now = {e["id"]: InFlight(event=books.pending.pop(e["id"]), subscribers=r.subscribers(t))
               for t, e in heads.items()}
        if now:
            books.messages.append(_round_note(rnd, now, books.pending))
        sends: list[Send] = []
        for eid, flight in now.items():
            ev = flight["event"]
            for sub in flight["subscribers"]:
                sends.append(Send(handle, Delivery(event=ev, subscriber=sub, round=rnd), timeout=r.handler_timeout))
                books.messages.append(TaskAssign(sender=BROKER, recipient=sub, correlation_id=eid, round=rnd,
                                                 title=f"{ev['topic']}#{ev['seq']}: {ev['payload'][:80]}",
                                                 reason=f"{sub} subscribes to {ev['topic']!r}"))
        await scope.journal(runtime).post(*books.messages)
        update: dict[str, Any] = {
            "reports": dict.fromkeys(reports), "pending": books.pending, "inflight": now, "handled": books.handled,
            "dead_letters": books.dead, "seqs": books.seqs, "published": books.published, "dropped": books.dropped,
            "looped": books.looped, "round": rnd}
        if not heads:
            update["stop"] = "max_events" if books.dropped else "loop" if books.looped else "quiet"
            return Command(goto=finish, update=update)
        return Command(goto=sends, update=update)

    return dispatch


def _round_note(rnd: int, now: Mapping[str, InFlight], pending: Mapping[str, EventRecord]) -> CheckpointMsg:
    """'round 2 - delivering E2 (design#1) to backend, frontend; waiting behind ...'."""
    note = "delivering " + "; ".join(f"{eid} ({f['event']['topic']}#{f['event']['seq']}) to "
                                     f"{', '.join(f['subscribers'])}" for eid, f in now.items())
    behind = [f"{e['id']} ({e['topic']}#{e['seq']})" for e in sorted(pending.values(), key=lambda e: number(e["id"]))]
    note += f"; waiting behind their topic's earlier event: {', '.join(behind)}" if behind else ""
    return CheckpointMsg(sender=BROKER, recipient="team", correlation_id=f"round-{rnd}", label=f"round {rnd}",
                         note=note)


def subscriber(kit: Kit, overrides: Mapping[str, Any]) -> Callable[..., Awaitable[dict]]:
    """The handle node: one subscriber reacts to one event; its work goes to an artifact, its events to the broker."""

    async def handle(state: Payload, runtime: Runtime[RunContext]) -> dict:
        delivery = parse(Delivery, state)
        ev, name = delivery["event"], delivery["subscriber"]
        team = await kit.team_for(runtime)
        r = routing(kit, team, overrides)
        role = team.role(name)
        brief = {"you": {"name": name, "capabilities": role.capabilities, "subscribes": r.subscriptions[name]},
                 "event": shown(ev), "cause_chain": [shown(link) for link in ev["chain"]], "topics": r.directory()}
        try:
            reaction = await ask(kit, runtime, Reaction, name, role,
                                  prompt(f"{role.prompt}\n\n{HANDLER_PROMPT}", HANDLER_INSTRUCTIONS, brief))
        except ValueError as exc:  # a ValidationError or OutputParserException: the answer was garbage
            first = (str(exc).splitlines() or ["(no message)"])[0][:200]
            return await failed_report(runtime, delivery, f"its answer was malformed: {first}")
        path = f"events/{ev['id']}-{name}.md"
        text = (f"# {ev['topic']}#{ev['seq']} ({ev['id']}) handled by {name}\n\n"
                f"{reaction.summary}\n\n{reaction.details}\n")
        await scope.write_text(runtime, path, text)
        raised = ", ".join(p.topic for p in reaction.publish) or "nothing"
        messages: list[AnyMessage] = [
            ArtifactMsg(sender=name, recipient=BROKER, correlation_id=ev["id"], path=path, sha256=sha256(text),
                        summary=reaction.summary, round=delivery["round"]),
            Progress(sender=name, recipient=BROKER, correlation_id=ev["id"], note=f"handled; publishes: {raised}")]
        flagged = screen({"summary": reaction.summary, "work": reaction.details,
                          "events": "\n".join(p.payload for p in reaction.publish)}, f"{name}'s")
        if flagged:
            messages.append(flag(flagged, recipient=BROKER, correlation_id=ev["id"], rnd=delivery["round"]))
        await scope.journal(runtime).post(*messages)
        report = Report(event=ev["id"], subscriber=name, ok=True, reason="",
                        publish=[p.model_dump() for p in reaction.publish])
        return {"reports": {f"{ev['id']}>{name}": report}}

    return handle


def shown(link: Mapping[str, Any]) -> dict[str, Any]:
    """An event (or a link of its cause chain) as a handler sees it: its payload fenced as data unless it is the
    person's task."""
    view = {k: link[k] for k in ("id", "topic", "seq", "source", "payload") if k in link}
    if link["source"] != USER:
        view["payload"] = fence(link["payload"], f"{link['source']}, {link['id']}")
    return view


async def failed_report(runtime: Runtime[RunContext], delivery: Delivery, reason: str) -> dict:
    """A delivery that failed: journaled here, dead-lettered with `reason` by the dispatcher."""
    ev, name = delivery["event"], delivery["subscriber"]
    await scope.journal(runtime).post(Progress(sender=name, recipient=BROKER, correlation_id=ev["id"],
                                               note=f"failed: {reason}"))
    return {"reports": {f"{ev['id']}>{name}": Report(event=ev["id"], subscriber=name, ok=False, reason=reason,
                                                      publish=[])}}


def delivery_failed(*, attempts: int) -> Callable[..., Awaitable[dict]]:
    """The handle node's error handler: a handler still failing (or hanging) after its retries fails its delivery."""

    async def failed(state: Payload, error: NodeError, runtime: Runtime[RunContext]) -> dict:
        return await failed_report(runtime, parse(Delivery, state), why(error.error, attempts))

    return failed
