"""The router end to end on the offline model: routing, second opinion, hand-on, escalation to a person."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from blockbuster import blockbuster_ctx
from conftest import with_runner
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from graphs.router import build
from graphs.runtime import Outcome, Runner, serializer
from nodes.teams import load_team
from state.context import RunContext
from state.protocol import AnyMessage, Kind
from state.roles import Team, TeamError
from tools.journal import read_messages

CHARGED = "I was charged twice for my subscription"
AMBIGUOUS = "Can I change my plan and get an invoice?"
REFUND = "I want a refund of $900 for last year"
COMPOUND = "I was charged twice and now the app crashes on login"


def support(**settings: Any) -> Team:
    """The shipped support team with its router settings changed."""
    team = load_team("support")
    return team.model_copy(update={"patterns": {"router": {**team.patterns["router"], **settings}}})


def run(db: Path, ctx: RunContext, task: str, thread: str, team: Team | str = "support"
        ) -> tuple[Outcome, list[AnyMessage]]:
    async def go(runner: Runner) -> tuple[Outcome, list[AnyMessage]]:
        outcome = await runner.start("router", task, ctx, team=team, thread_id=thread)
        return outcome, await runner.journal(thread)

    return with_runner(db, go)  # type: ignore[return-value]


def notes(messages: list[AnyMessage], label: str) -> list[str]:
    return [m.note for m in messages if m.kind == Kind.CHECKPOINT and m.label == label]


def assigned(messages: list[AnyMessage]) -> list[tuple[str, str]]:
    return [(m.recipient, m.title) for m in messages if m.kind == Kind.TASK_ASSIGN]


def test_a_billing_request_reaches_billing(db: Path, ctx: RunContext) -> None:
    outcome, messages = run(db, ctx, CHARGED, "bill")
    assert outcome.status == "completed"
    [routed] = notes(messages, "routed")
    assert routed.startswith("routed to billing (1.00): the request mentions 'charge', 'subscription'")
    assert "runner-up" in routed and "second opinion" not in routed  # why billing, and who came next
    assert [to for to, _ in assigned(messages)] == ["billing"]
    assert outcome.values["hops"] == [{"id": "A1", "route": "billing", "kind": "routed", "round": 1,
                                       "confidence": 1.0, "reason": outcome.values["hops"][0]["reason"]}]
    artifact = next(m for m in messages if m.kind == Kind.ARTIFACT)
    assert artifact.sender == "billing" and artifact.path == "A1-billing.md"
    answer = (Path(ctx.workspace_root) / "bill" / "A1-billing.md").read_text().strip()
    assert outcome.values["result"] == answer == (Path(ctx.workspace_root) / "bill" / "ANSWER.md").read_text().strip()
    assert notes(messages, "not escalated")
    assert notes(messages, "completed") == ["answered by billing (1.00) (ANSWER.md)"]


def test_a_low_confidence_request_gets_a_second_opinion(db: Path, ctx: RunContext) -> None:
    outcome, messages = run(db, ctx, AMBIGUOUS, "unsure")
    hops = outcome.values["hops"]
    assert [(h["kind"], h["confidence"]) for h in hops] == [("routed", 0.5), ("second opinion", 0.5)]
    assert {h["route"] for h in hops} == {"sales", "billing"}
    assert "confidence 0.50 < threshold 0.60" in hops[1]["reason"]
    kinds = [m.kind for m in messages]
    assert kinds.index(Kind.ARTIFACT) > max(i for i, k in enumerate(kinds) if k == Kind.TASK_ASSIGN)  # in parallel
    [merged] = notes(messages, "answers merged")
    assert merged.startswith(f"{hops[0]['route']} + {hops[1]['route']} agree")
    assert all(f"## From {h['route']} ({h['kind']}, 0.50)" in outcome.values["result"] for h in hops)

    sure, messages = run(db, ctx, AMBIGUOUS, "sure", team=support(threshold=0.4, max_hops=0))
    assert [h["kind"] for h in sure.values["hops"]] == ["routed"] and not notes(messages, "answers merged")


def test_an_escalation_stops_at_an_interrupt_and_a_persons_answer_finishes_it(db: Path, ctx: RunContext,
                                                                             troupe) -> None:
    outcome, messages = run(db, ctx, REFUND, "refund")
    assert outcome.status == "awaiting_approval" and "result" not in outcome.values
    [escalated] = [m for m in messages if m.kind == Kind.CHECKPOINT and m.label == "escalated"]
    assert (escalated.sender, escalated.recipient) == ("escalation", "human")
    assert escalated.note == "a refund of 900, over the policy's limit of 200"  # support.yaml's policy: over $200
    assert outcome.interrupt["question"].startswith("A person must take over")
    assert REFUND in outcome.interrupt["details"] and escalated.note in outcome.interrupt["details"]
    assert not (Path(ctx.workspace_root) / "refund" / "ANSWER.md").exists()

    reply = "We refunded $900 to your card; it shows within 5 days."
    done = troupe("approve", "refund", "--comment", reply)  # a new process resumes the checkpoint
    assert done.returncode == 0, done.stderr
    assert "status: completed" in done.stdout and reply in done.stdout
    shown = json.loads(troupe("show", "refund", "--json").stdout)
    assert shown["status"] == "completed" and shown["result"] == reply
    assert shown["state"]["escalation"] == {"needs_human": True, "reason": escalated.note, "by": "escalation"}
    tail = [(m["sender"], m["label"], m["note"]) for m in shown["messages"][-2:]]
    assert tail == [("human", "approved", reply), ("router", "completed", "answered by a person (human) (ANSWER.md)")]
    assert (Path(ctx.workspace_root) / "refund" / "ANSWER.md").read_text().strip() == reply


def test_rejecting_an_escalation_closes_the_request_unanswered(db: Path, ctx: RunContext, troupe) -> None:
    run(db, ctx, REFUND, "no")
    out = troupe("approve", "no", "--reject", "--comment", "not ours")
    assert out.returncode == 3, out.stderr
    assert "status: rejected" in out.stdout
    assert not (Path(ctx.workspace_root) / "no" / "ANSWER.md").exists()


def test_escalate_on_words_go_to_a_person_without_asking_a_model(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"escalation": "raise"}  # were the escalation agent asked, it would fail and say so
    outcome, messages = run(db, ctx, "My lawyer says the invoice is wrong", "law")
    assert outcome.status == "awaiting_approval"
    assert outcome.values["escalation"] == {"needs_human": True, "by": "escalate_on",
                                            "reason": "the request mentions 'lawyer' (escalate_on)"}
    assert "escalation agent failed" not in json.dumps([m.model_dump(mode="json") for m in messages])


def test_a_request_with_two_parts_is_handed_on_at_most_max_hops_times(db: Path, ctx: RunContext) -> None:
    outcome, messages = run(db, ctx, COMPOUND, "two")
    hops = outcome.values["hops"]
    assert [(h["route"], h["kind"], h["round"]) for h in hops] == [("technical", "routed", 1),
                                                                   ("billing", "hand-on", 2)]
    [handed] = notes(messages, "handed on")
    assert handed.startswith("technical -> billing (0.33): the request also mentions 'charge'")
    assert handed.endswith("(hop 1 of 1)")
    billing = (Path(ctx.workspace_root) / "two" / "A2-billing.md").read_text()
    assert "Builds on: A1 (A1-technical.md)" in billing  # the first answer is handed on with the request
    assert "## From technical" in outcome.values["result"] and "## From billing" in outcome.values["result"]

    bounded, messages = run(db, ctx, COMPOUND, "one", team=support(max_hops=0))
    assert [h["route"] for h in bounded.values["hops"]] == ["technical"]
    assert notes(messages, "routing done") == ["no hand-on: max_hops (0) reached"]


def test_a_router_that_sends_the_request_back_to_a_route_already_asked_is_stopped(db: Path, ctx: RunContext) -> None:
    """The router asks billing again after billing and technical answered: the same question to the same specialist.
    The routing ends there (built in: a hand-on goes only to routes not asked yet), and the journal says why."""
    ctx.fail = {"router": "disagree"}  # it routes to the runner-up, then sends the request back to the first route
    outcome, messages = run(db, ctx, COMPOUND, "again", team=support(max_hops=3))
    hops = outcome.values["hops"]
    assert [(h["id"], h["route"], h["round"]) for h in hops] == [("A1", "billing", 1), ("A2", "technical", 1)]
    assert [to for to, _ in assigned(messages)] == ["billing", "technical"]  # 2 specialists asked, nobody twice
    assert notes(messages, "loop detected") == [
        "the router named billing (0.80: billing should look at it again), which was already asked this request "
        "(A1): asking it again would repeat that hop, so the routing is done"]
    assert not notes(messages, "handed on") and not notes(messages, "routing done")
    assert outcome.status == "completed" and notes(messages, "answers merged")


@pytest.mark.parametrize(("fail", "expect"), [
    ({"router": "malformed"}, "keyword routing (charge, subscription): the router failed (unusable answer"),
    ({"router": "lie"}, "no keyword of sales in the request, but 'charge', 'subscription' of billing"),
    ({"billing": "raise"}, "billing failed (InjectedFailure: offline model told to fail for 'billing'"),
])
def test_a_hostile_model_costs_its_own_part_not_the_run(db: Path, ctx: RunContext, fail: dict[str, str],
                                                        expect: str) -> None:
    ctx.fail = fail
    outcome, messages = run(db, ctx, CHARGED, "hostile")
    decisions = " | ".join(notes(messages, "routed") + notes(messages, "handed on"))
    assert expect in decisions
    assert outcome.status in ("completed", "awaiting_approval")
    assert any(m.kind == Kind.ARTIFACT for m in messages), "no specialist answered"
    if "billing" in fail:  # its failure is journaled, and the request went to the next best route
        assert [m.note for m in messages if m.kind == Kind.PROGRESS and m.sender == "billing"][-1].startswith(
            "failed: InjectedFailure")
        assert [h["kind"] for h in outcome.values["hops"]] == ["routed", "hand-on"]
    else:  # the right specialist answered despite the router
        assert any(m.kind == Kind.ARTIFACT and m.sender == "billing" for m in messages)


def test_a_hung_specialist_times_out_and_the_request_goes_on(ctx: RunContext) -> None:
    ctx.fail = {"billing": "timeout"}
    graph = build(team="support", node_timeout=0.2).compile(checkpointer=InMemorySaver(serde=serializer()),
                                                             store=InMemoryStore())
    config = {"configurable": {"thread_id": "hung"}}
    result = asyncio.run(graph.ainvoke({"task": CHARGED}, config, context=ctx))
    assert result["status"] == "completed"
    assert (result["hops"][0]["route"], result["hops"][0]["kind"]) == ("billing", "routed")
    assert result["hops"][1]["kind"] == "hand-on" and "NodeTimeoutError" in result["hops"][1]["reason"]
    journal = asyncio.run(read_messages(graph.store, "hung"))  # type: ignore[arg-type]
    assert any(m.kind == Kind.ARTIFACT and m.sender == result["hops"][1]["route"] for m in journal)


def test_defaults_run_with_the_software_team_and_the_support_team(troupe) -> None:
    out = troupe("run", "router", "Write tests for the database layer", "--latency", "0", "--thread", "sw")
    assert out.returncode == 0, out.stderr
    shown = json.loads(troupe("show", "sw", "--json").stdout)
    software = {r["name"] for r in shown["team"]["roles"]}
    assert shown["status"] == "completed" and {h["route"] for h in shown["state"]["hops"]} <= software
    assert "qa" in {h["route"] for h in shown["state"]["hops"]}  # 'tests' is qa's capability

    out = troupe("run", "router", CHARGED, "--team", "support", "--latency", "0", "--thread", "sup")
    assert out.returncode == 0, out.stderr
    assert "[router -> billing] TASK_ASSIGN A1: routed (1.00)" in out.stdout and "status: completed" in out.stdout


@pytest.mark.parametrize(("settings", "error"), [
    ({"routes": {"legal": ["law"]}}, "patterns.router.routes.legal: no role 'legal' in team 'support'"),
    ({"threshold": 1.5}, "router.build(threshold=1.5): Input should be less than or equal to 1"),
    ({"max_hops": -1}, "router.build(max_hops=-1): Input should be greater than or equal to 0"),
    ({"routes": {"billing": []}}, "give route 'billing' at least one keyword"),
])
def test_bad_settings_fail_the_build_in_one_line(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(TeamError) as caught:
        build(team="support", **settings)
    assert error in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith((str(Path("nodes/teams/support.yaml").resolve()) + ":", "router.build("))


def test_a_router_run_makes_no_blocking_call(ctx: RunContext) -> None:
    """Routing, a second opinion, the merge, an escalation and its resume, under LangGraph dev's blocking check."""
    graph = build(team="support").compile(checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    config = {"configurable": {"thread_id": "nb"}}

    async def go() -> dict:
        with blockbuster_ctx():  # raises BlockingError on any blocking call made on the event loop
            await graph.ainvoke({"task": f"{AMBIGUOUS} I am furious!!"}, config, context=ctx)
            return await graph.ainvoke(Command(resume={"approved": True, "comment": "ok"}), config, context=ctx)

    result = asyncio.run(go())
    assert result["status"] == "completed" and result["result"] == "ok"
    assert [h["kind"] for h in result["hops"]] == ["routed", "second opinion"]
