"""Event-driven: agents subscribe to topics; a published event goes to every subscriber, whose work may publish more.

    publish (the task, on the initial topic) -> dispatch -> handle (Send: every subscriber of the next event
                                                   ^          of each topic; topics in parallel)     ┐
                                                   └─────────────────────────────────────────────────┘
                                                dispatch -> report -> END   (quiet, or max_events hit)

The dispatcher is the broker. Each round it settles the last round's deliveries, stamps what the handlers
published (an id, a per-topic sequence number, an EVENT message in the journal) and delivers the oldest pending
event of every topic to all that topic's subscribers. One event per topic per round: a topic's next event goes
out only after the previous one was handled by all its subscribers; different topics run side by side. An
event nobody subscribes to, and a delivery whose handler keeps failing (after its retries; a hang is cut by
`handler_timeout`) or answers garbage, becomes a dead letter with the reason. Loop detection (`stop_on_repeat`, on
by default): a publication equal to an event of its own cause chain (the same topic and payload) is dropped with a
"loop detected" CHECKPOINT, since it would only start the same cycle again. The run ends when no event is
pending (quiet; "loop" when looping publications were dropped) or, once `max_events` were published, when the
queue has drained (later publications are dropped and counted); the result lists the events handled per topic,
the dead letters and the loops cut.

Settings (team file `patterns.event_driven`, or `build()` keywords): `subscriptions` {role: [topic, ...]}
(default: role i handles the topics of roles i-2 and i-1, a role's topic being its main capability and the
first two roles handling the initial topic), `initial_topic` ('task'), `max_events` (50), `handler_timeout`
(120 s), `stop_on_repeat` (True).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from nodes import events, scope
from nodes.kit import Agents, Kit, Tools
from nodes.models import MODEL_RETRY, Models
from state.budget import Budget
from state.context import RunContext
from state.event_driven import EventInput, EventOutput, EventState
from state.protocol import CheckpointMsg
from state.roles import Team

RESULT_FILE = "EVENTS.md"


def render(state: EventState) -> str:
    """The result in Markdown: why the run stopped, the events handled per topic, the dead letters and why."""
    stop, dropped, looped = state.get("stop", "quiet"), state.get("dropped", 0), state.get("looped", 0)
    handled, dead = state.get("handled", {}), state.get("dead_letters", [])
    why = {"quiet": "quiet: no event left to deliver",
           "loop": f"loop detected: {looped} publication(s) that repeated an event of their own cause chain were "
                   "dropped, then no event was left to deliver",
           "max_events": f"max_events hit: {dropped} later publication(s) dropped"}[stop]
    lines = [f"# Events: {state['task']}", "",
             f"Stopped: {why}. {state.get('published', 0)} event(s) published over {state.get('round', 0)} "
             f"round(s); {sum(map(len, handled.values()))} handled, {len(dead)} dead letter(s).", "",
             "## Handled per topic (in order)", ""]
    lines += [f"- {topic}: {', '.join(ids)}" for topic, ids in handled.items()] or ["- none"]
    lines += ["", "## Dead letters", ""]
    lines += [f"- {d['event']} ({d['topic']}){' to ' + d['subscriber'] if d['subscriber'] else ''}: {d['reason']}"
              for d in dead] or ["- none"]
    return "\n".join(lines) + "\n"


def reporter() -> Callable[..., Awaitable[dict]]:
    """The report node: the result, written to EVENTS.md, and the reason the run stopped in the journal."""

    async def report(state: EventState, runtime: Runtime[RunContext]) -> dict:
        result = render(state)
        path = await scope.workspace(runtime) / RESULT_FILE
        await asyncio.to_thread(path.write_text, result, encoding="utf-8")
        await scope.journal(runtime).post(CheckpointMsg(
            sender=events.BROKER, recipient=events.USER, correlation_id="events", label=state.get("stop", "quiet"),
            note=result.splitlines()[2]))
        return {"result": result, "status": "completed"}

    return report


def build(
    *,
    team: Team | str | Path | None = None,
    models: Models = None,
    tools: Tools = None,
    agents: Agents = None,
    budget: Budget | None = None,
    node_timeout: float | None = 300.0,
    subscriptions: dict[str, list[str]] | None = None,
    initial_topic: str | None = None,
    max_events: int | None = None,
    handler_timeout: float | None = None,
    stop_on_repeat: bool | None = None,
) -> StateGraph[EventState, RunContext, EventInput, EventOutput]:
    """The uncompiled event-driven team; compile it with a checkpointer to make runs durable.

    `team`, `models`, `tools` and `agents` as for `graphs.hierarchical.build`. The settings keywords override
    the team file's `patterns.event_driven` section (None: the team's value, else the default); a bad setting
    fails here when the team is known, naming the file and line. `node_timeout` is unused by this pattern's
    nodes (handlers run under `handler_timeout`); it is accepted like every pattern's `build()`.
    """
    kit = Kit.create(team=team, models=models, tools=tools, agents=agents, pattern="event_driven", budget=budget)
    overrides = {"subscriptions": subscriptions, "initial_topic": initial_topic, "max_events": max_events,
                 "handler_timeout": handler_timeout, "stop_on_repeat": stop_on_repeat}
    if kit.team is not None:
        events.routing(kit, kit.team, overrides)
    g = StateGraph(EventState, context_schema=RunContext, input_schema=EventInput, output_schema=EventOutput)
    g.add_node("publish", events.publisher(kit, overrides))
    g.add_node("dispatch", events.dispatcher(kit, overrides, handle="handle", finish="report"),
               destinations=("handle", "report"))
    g.add_node("handle", events.subscriber(kit, overrides), retry_policy=MODEL_RETRY,
               error_handler=events.delivery_failed(attempts=MODEL_RETRY.max_attempts))
    g.add_node("report", reporter())
    g.add_edge(START, "publish")
    g.add_edge("publish", "dispatch")
    g.add_edge("handle", "dispatch")
    g.add_edge("report", END)
    return g


graph = build().compile(name="event_driven")
