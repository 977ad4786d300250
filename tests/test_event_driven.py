"""The event-driven pattern end to end on the offline model: fan-out, per-topic order, dead letters, the bound."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import with_runner
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from graphs import event_driven
from graphs.runtime import Runner, serializer
from nodes.teams import load_team
from state.context import RunContext
from state.roles import Team, TeamError
from tools.journal import read_messages

INCIDENT = "A customer reports that checkout is down"
# The default subscriptions of the software team: role i handles the topics of roles i-2 and i-1.
SUBSCRIBERS = {"task": ["architect", "db_engineer"], "design": ["db_engineer", "backend"],
               "persistence": ["backend", "frontend"], "backend": ["frontend", "qa"], "frontend": ["qa", "tech_writer"],
               "testing": ["tech_writer", "researcher"], "documentation": ["researcher"]}


def kinds(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["kind"] == kind]


def deliveries(messages: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    """{event id: [(subscriber, round), ...]} from the broker's TASK_ASSIGN messages."""
    out: dict[str, list[tuple[str, int]]] = {}
    for m in kinds(messages, "TASK_ASSIGN"):
        out.setdefault(m["correlation_id"], []).append((m["recipient"], m["round"]))
    return out


def test_default_run_fans_each_event_out_to_every_subscriber(troupe, tmp_path: Path) -> None:
    run = troupe("run", "event_driven", INCIDENT, "--thread", "checkout", "--workspace-root", str(tmp_path / "ws"))
    assert run.returncode == 0, run.stderr
    assert "status: completed" in run.stdout and "Stopped: quiet" in run.stdout
    shown = json.loads(troupe("show", "checkout", "--json").stdout)
    messages, state = shown["messages"], shown["state"]

    events = {m["correlation_id"]: m for m in kinds(messages, "EVENT")}
    assert [(e, m["topic"], m["seq"]) for e, m in events.items()] == [
        ("E1", "task", 1), ("E2", "design", 1), ("E3", "persistence", 1), ("E4", "backend", 1),
        ("E5", "frontend", 1), ("E6", "testing", 1), ("E7", "documentation", 1)]
    assert events["E1"]["sender"] == "user" and events["E1"]["payload"] == INCIDENT
    assert [events[e]["cause"] for e in events] == [None, "E1", "E1", "E2", "E3", "E4", "E5"]
    # Every event went to every subscriber of its topic (Send fan-out), and each of them handled it.
    sent = deliveries(messages)
    assert {e: sorted(s for s, _ in sent[e]) for e in events} == {e: sorted(SUBSCRIBERS[m["topic"]])
                                                                   for e, m in events.items()}
    handled = {(m["correlation_id"], m["sender"]) for m in kinds(messages, "PROGRESS")
               if m["note"].startswith("handled")}
    assert handled == {(e, s) for e, subs in sent.items() for s, _ in subs}
    for m in kinds(messages, "ARTIFACT"):
        text = (tmp_path / "ws" / "checkout" / m["path"]).read_text()
        assert text.startswith(f"# {events[m['correlation_id']]['topic']}#") and m["sender"] in text
    # Different topics run side by side: the events of one handling round are delivered in the same round.
    assert sent["E2"][0][1] == sent["E3"][0][1] == 2 and sent["E6"][0][1] == sent["E7"][0][1] == 4
    assert state["stop"] == "quiet" and state["status"] == "completed" and state["dead_letters"] == []
    assert state["handled"] == {m["topic"]: [e] for e, m in events.items()}
    assert state["pending"] == {} and state["reports"] == {}  # nothing left over, nothing accumulated
    assert (tmp_path / "ws" / "checkout" / "EVENTS.md").read_text() == state["result"]


def _ops_team() -> Team:
    """Two triage roles publish on one topic that two roles handle; a notifier's topic runs alongside."""
    roles = [{"name": n, "capabilities": [c], "prompt": f"You are {n}."}
             for n, c in [("alpha", "triage"), ("beta", "triage"), ("delta", "notify"), ("gamma", "fix"),
                          ("zeta", "audit"), ("eps", "page")]]
    subs = {"alpha": ["task"], "beta": ["task"], "delta": ["task"], "gamma": ["triage"], "zeta": ["triage"],
            "eps": ["notify"]}
    return Team.model_validate({"name": "ops", "description": "test", "roles": roles,
                                "patterns": {"event_driven": {"subscriptions": subs}}})


def test_a_topics_events_are_handled_in_order_other_topics_alongside(db: Path, ctx: RunContext) -> None:
    async def go(runner: Runner) -> Any:
        outcome = await runner.start("event_driven", INCIDENT, ctx, team=_ops_team(), thread_id="order")
        return outcome, [m.model_dump(mode="json") for m in await runner.journal("order")]

    outcome, messages = with_runner(db, go)
    events = {m["correlation_id"]: (m["topic"], m["seq"], m["sender"]) for m in kinds(messages, "EVENT")}
    assert events == {"E1": ("task", 1, "user"), "E2": ("triage", 1, "alpha"), "E3": ("triage", 2, "beta"),
                      "E4": ("notify", 1, "delta")}
    sent = deliveries(messages)
    assert sorted(sent["E1"]) == [("alpha", 1), ("beta", 1), ("delta", 1)]
    # triage#1 and notify#1 go out together; triage#2 waits for triage#1, then reaches both subscribers.
    assert sorted(sent["E2"]) == [("gamma", 2), ("zeta", 2)] and sent["E4"] == [("eps", 2)]
    assert sorted(sent["E3"]) == [("gamma", 3), ("zeta", 3)]
    rounds = {m["label"]: m["note"] for m in kinds(messages, "CHECKPOINT") if m["label"].startswith("round")}
    assert "waiting behind their topic's earlier event: E3 (triage#2)" in rounds["round 2"]
    index = {(m["kind"], m["correlation_id"], m.get("recipient") if m["kind"] == "TASK_ASSIGN" else m["sender"]): i
             for i, m in enumerate(messages)}
    for sub in ("gamma", "zeta"):
        assert index[("TASK_ASSIGN", "E3", sub)] > max(index[("PROGRESS", "E2", s)] for s in ("gamma", "zeta"))
    values = outcome.values
    assert values["handled"] == {"task": ["E1"], "triage": ["E2", "E3"], "notify": ["E4"]}
    assert values["stop"] == "quiet" and values["round"] == 3 and values["dead_letters"] == []


def test_unhandled_and_failing_events_go_to_dead_letters(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"backend": "raise", "tech_writer": "lie", "qa": "malformed"}

    async def go(runner: Runner) -> Any:
        outcome = await runner.start("event_driven", INCIDENT, ctx, thread_id="dead")
        return outcome, [m.model_dump(mode="json") for m in await runner.journal("dead")]

    outcome, messages = with_runner(db, go)
    values = outcome.values
    dead = {(d["event"], d["topic"], d["subscriber"]): d["reason"] for d in values["dead_letters"]}
    assert set(dead) == {("E2", "design", "backend"), ("E3", "persistence", "backend"),
                         ("E4", "frontend", "qa"), ("E5", "documentation.rumour", None)}
    assert all("InjectedFailure" in dead[(e, t, "backend")] and "after 3 attempts" in dead[(e, t, "backend")]
               for e, t in [("E2", "design"), ("E3", "persistence")])
    assert "malformed" in dead[("E4", "frontend", "qa")]
    assert dead[("E5", "documentation.rumour", None)] == "no subscriber for topic 'documentation.rumour'"
    # The rumour is a published event (journaled) that nobody got; failures are journaled by who failed.
    assert [m["topic"] for m in kinds(messages, "EVENT") if m["correlation_id"] == "E5"] == ["documentation.rumour"]
    assert "E5" not in deliveries(messages)
    blockers = {(m["correlation_id"], m["recipient"]) for m in kinds(messages, "BLOCKER")}
    assert blockers == {("E2", "backend"), ("E3", "backend"), ("E4", "qa"), ("E5", "tech_writer")}
    failed = {(m["correlation_id"], m["sender"]) for m in kinds(messages, "PROGRESS") if m["note"].startswith("failed")}
    assert failed == {("E2", "backend"), ("E3", "backend"), ("E4", "qa")}
    # Another subscriber's handling of the same event stands; the run completes and reports the dead letters.
    assert values["handled"] == {"task": ["E1"], "design": ["E2"], "persistence": ["E3"], "frontend": ["E4"]}
    assert outcome.status == "completed" and values["stop"] == "quiet"
    assert "4 dead letter(s)" in values["result"] and "- E5 (documentation.rumour): no subscriber" in values["result"]


def test_max_events_bounds_the_run_and_says_so(ctx: RunContext, tmp_path: Path) -> None:
    graph = event_driven.build(team="software", max_events=3).compile(
        checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    config = {"configurable": {"thread_id": "bound"}}

    async def go() -> Any:
        return await graph.ainvoke({"task": INCIDENT}, config, context=ctx)

    out = asyncio.run(go())
    assert graph.get_state(config).values["stop"] == "max_events" and out["status"] == "completed"
    assert out["handled"] == {"task": ["E1"], "design": ["E2"], "persistence": ["E3"]}
    assert "max_events hit: 2 later publication(s) dropped" in out["result"]


@pytest.mark.parametrize("stop_on_repeat", [True, False])
def test_an_event_that_repeats_its_cause_chain_is_dropped_and_the_cycle_ends(ctx: RunContext, stop_on_repeat: bool
                                                                            ) -> None:
    """architect objects to every event on 'design'; backend answers on 'backend', which architect handles: a cycle.
    The second objection equals E2 in its own cause chain, so it is dropped and the run goes quiet after 3 events
    instead of running to max_events (10)."""
    ctx.fail = {"architect": "disagree"}
    graph = event_driven.build(team="software", subscriptions={"architect": ["task", "backend"], "backend": ["design"]},
                               max_events=10, stop_on_repeat=stop_on_repeat).compile(
        checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    config = {"configurable": {"thread_id": "cycle"}}
    out = asyncio.run(graph.ainvoke({"task": INCIDENT}, config, context=ctx))
    values = graph.get_state(config).values
    messages = [m.model_dump(mode="json") for m in asyncio.run(read_messages(graph.store, "cycle"))]
    events = [(m["correlation_id"], m["topic"], m["sender"]) for m in kinds(messages, "EVENT")]
    loops = [m for m in kinds(messages, "CHECKPOINT") if m["label"] == "loop detected"]
    assert out["status"] == "completed" and out["dead_letters"] == []
    if not stop_on_repeat:  # only the bound stops it
        assert len(events) == 10 and values["stop"] == "max_events" and not loops and values["looped"] == 0
        assert [t for _, t, _ in events[1:]] == ["design", "backend"] * 4 + ["design"]
        return
    assert events == [("E1", "task", "user"), ("E2", "design", "architect"), ("E3", "backend", "backend")]
    [loop] = loops
    assert (loop["sender"], loop["recipient"], loop["correlation_id"]) == ("broker", "architect", "E3")
    assert loop["note"] == ("architect published on 'design' what E2 already said in its cause chain (E1 (task) -> "
                            "E2 (design) -> E3 (backend)): dropped, since delivering it would start the same cycle "
                            "again")
    assert sum(len(v) for v in deliveries(messages).values()) == 3  # three handler calls, not ten
    assert values["stop"] == "loop" and values["looped"] == 1 and values["published"] == 3
    assert out["handled"] == {"task": ["E1"], "design": ["E2"], "backend": ["E3"]}
    assert "Stopped: loop detected: 1 publication(s) that repeated an event of their own cause chain were dropped" \
        in out["result"]
    assert kinds(messages, "CHECKPOINT")[-1]["label"] == "loop"  # the report's reason to stop


def test_bad_subscriptions_fail_with_the_file_and_line(tmp_path: Path) -> None:
    team = load_team("software").model_dump(mode="json")
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({**team, "patterns": {"event_driven": {"subscriptions": {"oracle": ["task"]}}}},
                                   sort_keys=False))
    with pytest.raises(TeamError, match=r"team\.yaml:\d+: patterns\.event_driven\.subscriptions\.oracle: .*no role"):
        event_driven.build(team=path)
    with pytest.raises(TeamError, match="no role subscribes to the initial topic 'alarm'"):
        event_driven.build(team="software", subscriptions={"qa": ["task"]}, initial_topic="alarm")
    with pytest.raises(TeamError, match="max_events"):
        event_driven.build(team="software", max_events=0)


def test_a_hung_handler_is_cut_by_handler_timeout_and_dead_lettered(ctx: RunContext) -> None:
    ctx.fail = {"architect": "timeout"}
    graph = event_driven.build(team="software", handler_timeout=0.2).compile(
        checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    config = {"configurable": {"thread_id": "hung"}}
    out = asyncio.run(graph.ainvoke({"task": INCIDENT}, config, context=ctx))
    assert [(d["event"], d["subscriber"]) for d in out["dead_letters"]] == [("E1", "architect")]
    assert out["dead_letters"][0]["reason"] == "timed out after 0.2 s on each of 3 attempts"
    # The other subscriber of the task carried on: its chain ran to the end without the architect's design event.
    assert out["handled"]["task"] == ["E1"] and "design" not in out["handled"] and "persistence" in out["handled"]
    assert graph.get_state(config).values["stop"] == "quiet" and out["status"] == "completed"
