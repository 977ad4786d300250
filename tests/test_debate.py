"""The debate end to end on the offline model: positions, critiques over rounds, early stop or round limit, a judge."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import with_runner
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from graphs import debate
from graphs.runtime import Runner, serializer
from nodes.offline_model import OfflineChatModel, _brief
from state.context import RunContext
from state.protocol import Kind
from state.roles import Team, TeamError

QUESTION = "Should we rewrite the backend in Rust?"
DEFAULT_PANEL = ["architect", "db_engineer", "backend"]  # the software team's first three roles


def positions_by_round(messages: list[Any]) -> dict[int, dict[str, str]]:
    """{round: {debater: stance}} from the journal's position messages."""
    out: dict[int, dict[str, str]] = {}
    for m in messages:
        if m["kind"] == "CHECKPOINT" and m["label"].startswith("position: "):
            out.setdefault(int(m["correlation_id"].removeprefix("round-")), {})[m["sender"]] = m["label"][10:]
    return out


def test_default_debate_converges_early_and_the_judge_decides(troupe, tmp_path: Path) -> None:
    run = troupe("run", "debate", QUESTION, "--thread", "rust", "--workspace-root", str(tmp_path / "ws"))
    assert run.returncode == 0, run.stderr
    assert "status: completed" in run.stdout and "**Decision (" in run.stdout
    shown = json.loads(troupe("show", "rust", "--json").stdout)
    messages, state = shown["messages"], shown["state"]

    # Round 1: the default panel states positions that differ; round 2: the minority moves, all agree.
    rounds = positions_by_round(messages)
    assert list(rounds) == [1, 2], "the debate did not stop early at round 2 of 3"
    assert list(rounds[1]) == DEFAULT_PANEL and len(set(rounds[1].values())) == 2
    assert len(set(rounds[2].values())) == 1
    agreed = rounds[2]["architect"]
    moved = [m for m in messages if m["kind"] == "CHECKPOINT" and m["correlation_id"] == "round-2"
             and "moved from" in m["note"]]
    assert [m["sender"] for m in moved] == [d for d in DEFAULT_PANEL if rounds[1][d] != agreed]
    # Critiques come from round 2 on, one per debater, and name the one they answer.
    critiques = [m for m in messages if m["kind"] == "CONFLICT"]
    assert {m["correlation_id"] for m in critiques} == {"round-2"} and len(critiques) == 3
    assert any(moved[0]["sender"] in m["description"] for m in critiques if m["sender"] != moved[0]["sender"])

    # The tally stopped the debate on convergence; then the judge decided, with reasons.
    tallies = [(m["correlation_id"], m["label"]) for m in messages if m["sender"] == "moderator"
               and m["kind"] == "CHECKPOINT" and m["correlation_id"].startswith("round-")]
    assert tallies == [("round-1", "another round"), ("round-2", "converged")]
    decision = messages[-1]
    assert decision["sender"] == "judge" and decision["label"] == f"decision: {agreed}"
    assert state["stop"] == "converged" and state["round"] == 2 and state["status"] == "completed"
    assert state["judgement"]["winning_stance"] == agreed and state["judgement"]["reasons"]
    # The state keeps each debater's latest position only; the result has decision, positions and reasons.
    assert set(state) <= {"task", "round", "positions", "stop", "judgement", "status", "result"}
    assert list(state["positions"]) == DEFAULT_PANEL and {p["round"] for p in state["positions"].values()} == {2}
    result = (tmp_path / "ws" / "rust" / "DEBATE.md").read_text()
    assert result == state["result"] + ("" if state["result"].endswith("\n") else "\n")
    assert "## Final positions" in result and all(f"| {d} | {agreed} |" in result for d in DEFAULT_PANEL)
    assert all(f"- {r}" in result for r in state["judgement"]["reasons"])


def test_a_contrary_debater_forces_the_round_limit(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"backend": "disagree"}

    async def go(runner: Runner) -> Any:
        outcome = await runner.start("debate", QUESTION, ctx, thread_id="contrary")
        async with runner.saver.conn.execute("SELECT length(checkpoint) FROM checkpoints") as cur:
            sizes = [row[0] for row in await cur.fetchall()]
        return outcome, [m.model_dump(mode="json") for m in await runner.journal("contrary")], sizes

    outcome, messages, sizes = with_runner(db, go)
    rounds = positions_by_round(messages)
    assert list(rounds) == [1, 2, 3]
    for r, stances in rounds.items():  # backend stands against the others every round
        assert stances["backend"] != stances["architect"] == stances["db_engineer"], (r, stances)
    tallies = [m["label"] for m in messages if m["sender"] == "moderator" and m["correlation_id"].startswith("round-")
               and m["kind"] == "CHECKPOINT"]
    assert tallies == ["another round", "another round", "round limit"]
    values = outcome.values
    assert outcome.status == "completed" and values["stop"] == "round limit" and values["round"] == 3
    assert values["judgement"]["winning_stance"] == rounds[3]["architect"]
    assert any("backend" in r for r in values["judgement"]["reasons"]), "the judge did not weigh the dissent"
    assert {p["round"] for p in values["positions"].values()} == {3}  # latest only, not the history
    assert max(sizes) < 8_000, sizes


@pytest.mark.parametrize("stop_on_repeat", [True, False])
def test_a_stalemate_ends_the_debate_before_the_round_limit(db: Path, ctx: RunContext, stop_on_repeat: bool) -> None:
    """Backend stays contrary and the others hold: from round 2 on nothing moves. Round 3 repeating round 2 is a
    loop, so the judge decides then, not after the 6 rounds allowed; with loop detection off the debate spins on."""
    ctx.fail = {"backend": "disagree"}
    team = Team.model_validate({**_software(), "patterns": {"debate": {"max_rounds": 6,
                                                                       "stop_on_repeat": stop_on_repeat}}})

    async def go(runner: Runner) -> Any:
        thread = f"stalemate-{stop_on_repeat}"
        outcome = await runner.start("debate", QUESTION, ctx, team=team, thread_id=thread)
        return outcome, [m.model_dump(mode="json") for m in await runner.journal(thread)]

    outcome, messages = with_runner(db, go)
    rounds = positions_by_round(messages)
    tallies = [m["label"] for m in messages if m["sender"] == "moderator" and m["kind"] == "CHECKPOINT"
               and m["correlation_id"].startswith("round-")]
    values = outcome.values
    assert outcome.status == "completed" and values["judgement"]["winning_stance"] == rounds[2]["architect"]
    if not stop_on_repeat:
        assert list(rounds) == [1, 2, 3, 4, 5, 6] and tallies == ["another round"] * 5 + ["round limit"]
        assert values["stop"] == "round limit" and "seen" not in values
        return
    assert list(rounds) == [1, 2, 3] and rounds[3] == rounds[2]  # 9 debater turns, not 18
    assert tallies == ["another round", "another round", "loop detected"]
    [loop] = [m for m in messages if m.get("label") == "loop detected"]
    assert (loop["sender"], loop["recipient"], loop["correlation_id"]) == ("moderator", "judge", "round-3")
    held = ", ".join(f"{d} '{rounds[3][d]}'" for d in DEFAULT_PANEL)
    assert loop["note"].startswith(f"stalemate: round 3's stances are round 2's again ({held});")
    assert "nobody moved after the critiques, so another round (of at most 6) would repeat it" in loop["note"]
    assert values["stop"] == "stalemate" and values["round"] == 3 and len(values["seen"]) == 1
    assert "3 round(s); stopped: stalemate" in values["result"]
    assert messages[-1]["sender"] == "judge" and messages[-1]["label"].startswith("decision: ")


def test_converge_at_a_majority_stops_the_same_debate_after_round_one(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"backend": "disagree"}
    team = Team.model_validate({**_software(), "patterns": {"debate": {"converge_at": 0.6, "max_rounds": 5}}})
    outcome = with_runner(db, lambda r: r.start("debate", QUESTION, ctx, team=team, thread_id="majority"))
    assert outcome.values["stop"] == "converged" and outcome.values["round"] == 1
    assert "2 of 3 debaters held" in outcome.values["result"]


def test_named_debaters_and_a_role_as_judge(db: Path, ctx: RunContext) -> None:
    team = Team.model_validate({**_software(), "patterns": {"debate": {"debaters": ["qa", "researcher"],
                                                                       "judge": "tech_writer"}}})

    async def go(runner: Runner) -> Any:
        outcome = await runner.start("debate", QUESTION, ctx, team=team, thread_id="named")
        return outcome, await runner.journal("named")

    outcome, messages = with_runner(db, go)
    speakers = {m.sender for m in messages if m.kind == Kind.CHECKPOINT and m.label.startswith("position")}
    assert speakers == {"qa", "researcher"}
    assert messages[-1].sender == "tech_writer" and outcome.values["judgement"]["by"] == "tech_writer"


def test_garbage_and_a_lying_judge_fail_their_own_part_not_the_run(db: Path, ctx: RunContext) -> None:
    ctx.fail = {"db_engineer": "malformed", "judge": "lie"}

    async def go(runner: Runner) -> Any:
        outcome = await runner.start("debate", QUESTION, ctx, thread_id="hostile")
        return outcome, await runner.journal("hostile")

    outcome, messages = with_runner(db, go)
    blockers = [m for m in messages if m.kind == Kind.BLOCKER]
    rounds = outcome.values["round"]
    assert [m.sender for m in blockers] == ["db_engineer"] * rounds + ["judge"]
    assert all("malformed" in m.reason for m in blockers[:-1])
    assert "no debater holds" in blockers[-1].reason
    assert outcome.status == "completed" and outcome.values["judgement"] is None
    assert "malformed" in outcome.values["positions"]["db_engineer"]["failed"]
    assert "**No decision:**" in outcome.values["result"]


def test_a_hung_debater_times_out_and_sits_out(ctx: RunContext) -> None:
    """After the node timeout and its retries, the error handler fails that debater; the others go on."""
    ctx.fail = {"architect": "timeout"}
    graph = debate.build(team="software", node_timeout=0.2).compile(
        checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    result = asyncio.run(graph.ainvoke({"task": QUESTION}, {"configurable": {"thread_id": "hung"}}, context=ctx))
    assert result["status"] == "completed" and result["judgement"] is not None
    assert "NodeTimeoutError" in result["positions"]["architect"]["failed"]
    assert {d for d, p in result["positions"].items() if p.get("stance")} == {"db_engineer", "backend"}


def test_a_debater_sees_only_the_others_latest_positions(ctx: RunContext) -> None:
    briefs: list[dict[str, Any]] = []

    class Recording(OfflineChatModel):
        def _answer(self, messages: list[BaseMessage], tools: Any, mode: Any) -> Any:
            briefs.append(_brief(messages))
            return super()._answer(messages, tools, mode)

    ctx.fail = {"backend": "disagree"}
    graph = debate.build(team="software", models={"architect": Recording(name="architect")}).compile(
        checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    asyncio.run(graph.ainvoke({"task": QUESTION}, {"configurable": {"thread_id": "scope"}}, context=ctx))
    assert [b["round"] for b in briefs] == [1, 2, 3]
    assert briefs[0]["others"] == {} and briefs[0]["your_position"] is None
    for b in briefs[1:]:
        assert set(b["others"]) == {"db_engineer", "backend"}
        assert all(set(p) == {"stance", "claim", "arguments", "confidence"} for p in b["others"].values())
    assert abs(len(json.dumps(briefs[2])) - len(json.dumps(briefs[1]))) < 200, "the brief grows with the rounds"


def test_a_callers_agent_can_debate(ctx: RunContext) -> None:
    answer = {"stance": "against", "claim": "Not now.", "arguments": ["Feature work first."], "confidence": 0.9}
    agent = RunnableLambda(lambda _: {"messages": [AIMessage("Here it is:\n" + json.dumps(answer))]})
    graph = debate.build(team="software", agents={"backend": agent}).compile(
        checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    result = asyncio.run(graph.ainvoke({"task": QUESTION}, {"configurable": {"thread_id": "agent"}}, context=ctx))
    assert result["positions"]["backend"]["claim"] == "Not now."


@pytest.mark.parametrize(("settings", "message"), [
    ({"debaters": 1}, "debate.build(debaters=1): a debate needs at least 2 debaters, not 1"),
    ({"debaters": 9}, "patterns.debate.debaters: 9 debaters wanted, but team 'software' has 7 roles"),
    ({"debaters": ["qa", "nobody"]}, "patterns.debate.debaters: team 'software' has no role 'nobody'"),
    ({"judge": "architect"}, "patterns.debate.judge: 'architect' also debates"),
    ({"converge_at": 0.5}, "debate.build(converge_at=0.5): Input should be greater than 0.5"),
    ({"max_rounds": 0}, "debate.build(max_rounds=0): Input should be greater than or equal to 1"),
])
def test_bad_settings_fail_the_build_in_one_line(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(TeamError) as err:
        debate.build(team="software", **settings)
    assert message in str(err.value) and "\n" not in str(err.value)


def _software() -> dict[str, Any]:
    from nodes.teams import load_team

    return load_team("software").model_dump()
