"""Consensus on the offline model: independent parallel votes, a rule that survives f faulty voters, and no
wrong answer when there are more."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from graphs import consensus
from graphs.runtime import serializer
from nodes.offline_model import OfflineChatModel
from nodes.voter import normalize
from state.consensus import Electorate, Vote, decide
from state.context import RunContext
from state.protocol import Kind
from state.roles import TeamError
from tools.journal import read_messages

QUESTION = "Which is larger, 2^10 or 10^3?"
SOFTWARE = ["architect", "db_engineer", "backend", "frontend", "qa", "tech_writer", "researcher"]


def run(ctx: RunContext, *, fail: dict[str, str] | None = None, team: str = "software", models: Any = None,
        agents: Any = None, **settings: Any) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """One run in memory: (final state, journal, state history newest first)."""

    async def go() -> tuple[dict[str, Any], list[Any], list[Any]]:
        graph = consensus.build(team=team, models=models, agents=agents, **settings).compile(
            checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
        config: Any = {"configurable": {"thread_id": "c"}}
        try:
            out = await graph.ainvoke({"task": QUESTION}, config, context=replace(ctx, fail=fail or {}))
        finally:
            messages = await read_messages(graph.store, "c")
        return out, messages, [s async for s in graph.aget_state_history(config)]

    return asyncio.run(go())


def test_default_team_from_the_cli(troupe) -> None:
    out = troupe("run", "consensus", QUESTION, "--thread", "cli")
    assert out.returncode == 0, out.stderr
    assert "**Outcome: 2^10** (7 of 7 votes" in out.stdout and "status: completed" in out.stdout
    shown = json.loads(troupe("show", "cli", "--json").stdout)
    verdict = shown["state"]["verdict"]
    assert (verdict["outcome"], verdict["tally"], verdict["agreement"]) == ("2^10", {"2^10": 7}, 1.0)
    assert (verdict["voters"], verdict["faults"], verdict["dissenters"], verdict["faulty"]) == (7, 2, {}, {})
    kinds = [(m["kind"], m["sender"], m["recipient"]) for m in shown["messages"]]
    assert kinds[:7] == [("TASK_ASSIGN", "convener", role) for role in SOFTWARE]  # every role votes, once
    assert sorted(kinds[7:14]) == sorted(("PROGRESS", role, "tally") for role in SOFTWARE)
    assert all(m["note"].startswith("vote: 2^10 ") for m in shown["messages"][7:14])
    assert [m["label"] for m in shown["messages"][14:]] == ["votes counted", "consensus: 2^10"]


def test_voters_answer_independently_and_in_parallel(ctx: RunContext) -> None:
    """Every voter's prompt holds the question and its own name, nothing of the others; all vote in one step."""
    seen: list[list[BaseMessage]] = []

    class Recording(OfflineChatModel):
        async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            seen.append(messages)
            return await super()._agenerate(messages, *args, **kwargs)

    out, _, history = run(ctx, models=Recording())
    assert out["verdict"]["outcome"] == "2^10"
    assert any(list(s.next) == ["vote"] * 7 for s in history), "the seven votes did not run in one super-step"
    assert len(seen) == 7
    for messages, role in zip(sorted(seen, key=lambda m: str(m[-1].content)), sorted(SOFTWARE), strict=True):
        brief = json.loads(str(messages[-1].content).split("```json")[1].split("```")[0])
        assert brief == {"question": QUESTION, "voter": role}
        assert not any(other in str(messages[-1].content) for other in SOFTWARE if other != role)


@pytest.mark.parametrize(("voters", "liars"), [(4, ["backend"]), (None, ["backend", "qa"])], ids=["n4f1", "n7f2"])
def test_f_liars_cannot_change_the_outcome(ctx: RunContext, voters: int | None, liars: list[str]) -> None:
    out, messages, _ = run(ctx, voters=voters, fail=dict.fromkeys(liars, "lie"))
    v = out["verdict"]
    n, f = v["voters"], v["faults"]
    assert n == 3 * f + 1 and f == len(liars)
    assert v["outcome"] == "2^10" and v["tally"] == {"2^10": n - f, "10^3": f}
    assert v["dissenters"] == dict.fromkeys(liars, "10^3") and v["agreement"] == round((n - f) / n, 4)
    assert [m.note.split(" (")[0] for m in messages if m.kind == Kind.PROGRESS and m.sender in liars] == \
        ["vote: 10^3"] * f
    conflict = next(m for m in messages if m.kind == Kind.CONFLICT)
    assert all(liar in conflict.description for liar in liars)
    assert messages[-1].label == "consensus: 2^10" and "**Outcome: 2^10**" in out["result"]


@pytest.mark.parametrize(("voters", "liars"), [
    (4, ["backend", "frontend"]),  # f + 1 = 2 of 4: a tie
    (None, ["backend", "qa", "frontend"]),  # f + 1 = 3 of 7: the honest answer leads, but is not safe
    (None, ["backend", "qa", "frontend", "architect"]),  # 2f = 4 of 7: the lie leads, as a plain majority would report
], ids=["n4-2liars", "n7-3liars", "n7-4liars"])
def test_more_liars_than_f_give_no_safe_consensus_never_the_lie(ctx: RunContext, voters: int | None,
                                                                liars: list[str]) -> None:
    out, messages, _ = run(ctx, voters=voters, fail=dict.fromkeys(liars, "lie"))
    v = out["verdict"]
    assert len(liars) > v["faults"] and v["tally"]["10^3"] == len(liars)  # one coordinated lie
    assert v["outcome"] is None and out["status"] == "completed"
    assert "**No safe consensus" in out["result"] and "Outcome" not in out["result"]
    assert messages[-1].label == "no safe consensus"
    if len(liars) == 4:
        assert v["leading"] == "10^3" and v["agreement"] == round(4 / 7, 4)


def test_faulty_voters_are_counted_missing(ctx: RunContext) -> None:
    out, messages, history = run(ctx, fail={"qa": "malformed", "frontend": "raise"})
    v = out["verdict"]
    assert v["outcome"] == "2^10" and v["tally"] == {"2^10": 5} and v["dissenters"] == {}
    assert set(v["faulty"]) == {"qa", "frontend"}
    assert v["faulty"]["qa"].startswith("malformed ballot")
    assert v["faulty"]["frontend"].startswith("InjectedFailure after retries")
    assert "attempt 3" in v["faulty"]["frontend"]  # MODEL_RETRY's three attempts were spent first
    blockers = {m.sender: m.reason for m in messages if m.kind == Kind.BLOCKER}
    assert set(blockers) == {"qa", "frontend"} and all(r.startswith("no vote: ") for r in blockers.values())
    assert history[0].values["votes"]["qa"] == {"answer": None, "said": "", "confidence": 0.0,
                                                "fault": v["faulty"]["qa"]}
    assert "Faulty (no vote): frontend (InjectedFailure after retries" in out["result"]
    assert ", qa (malformed ballot" in out["result"]


def test_a_hanging_voter_times_out_and_more_faults_than_f_leave_no_consensus(ctx: RunContext) -> None:
    out, messages, _ = run(ctx, node_timeout=0.2, fail={"qa": "timeout", "frontend": "raise", "backend": "malformed"})
    v = out["verdict"]
    assert v["faulty"]["qa"].startswith("NodeTimeoutError after retries")
    assert v["tally"] == {"2^10": 4} and v["outcome"] is None  # the four answers agree, but f = 2 was exceeded
    assert v["reason"] == "3 voters gave no vote, more than the 2 faulty ones tolerated"
    assert {m.sender for m in messages if m.kind == Kind.BLOCKER} == {"qa", "frontend", "backend"}


def test_a_failure_that_is_not_the_voters_fault_still_fails_the_run(ctx: RunContext) -> None:
    """A model that cannot give structured output at all is a setup error, not a missing vote."""
    with pytest.raises(NotImplementedError):
        run(ctx, models={"qa": GenericFakeChatModel(messages=iter([]))})


def test_a_role_served_by_a_callers_agent_votes_with_its_final_message(ctx: RunContext) -> None:
    asked: list[Any] = []

    def qa_agent(state: dict[str, Any]) -> dict[str, Any]:
        asked.append(state["messages"])
        return {"messages": [*state["messages"], AIMessage("10^3\nThree digits of zeros look bigger.")]}

    out, messages, _ = run(ctx, agents={"qa": RunnableLambda(qa_agent)})
    assert len(asked) == 1 and QUESTION in asked[0][0].content and "backend" not in asked[0][0].content
    assert out["verdict"]["outcome"] == "2^10" and out["verdict"]["dissenters"] == {"qa": "10^3"}
    assert any(m.sender == "qa" and m.note.startswith("vote: 10^3 (confidence 0.50)") for m in messages
               if m.kind == Kind.PROGRESS)


def test_weighted_rule_counts_trusted_roles_more(ctx: RunContext) -> None:
    split = {"backend": "disagree", "qa": "disagree"}  # honest dissent: 2^10 (architect, researcher) vs 10^3
    four = ["architect", "backend", "qa", "researcher"]
    plain, *_ = run(ctx, voters=four, faults=0, fail=split)
    assert plain["verdict"]["outcome"] is None and plain["verdict"]["reason"] == "a tie between '10^3' and '2^10'"
    trusted, *_ = run(ctx, voters=four, faults=0, fail=split, rule="weighted", weights={"architect": 2})
    assert trusted["verdict"]["outcome"] == "2^10" and trusted["verdict"]["weight"] == {"2^10": 3, "10^3": 2}
    other, *_ = run(ctx, voters=four, faults=0, fail=split, rule="weighted", weights={"backend": 2, "qa": 1.5})
    assert other["verdict"]["outcome"] == "10^3" and other["verdict"]["dissenters"] == {"architect": "2^10",
                                                                                       "researcher": "2^10"}
    # With f = 2, the heaviest voter lying with another still cannot carry the lie, nor block the truth.
    heavy, *_ = run(ctx, fail={"architect": "lie", "qa": "lie"}, rule="weighted", weights={"architect": 1.2})
    assert heavy["verdict"]["outcome"] == "2^10" and heavy["verdict"]["weight"] == {"2^10": 5, "10^3": 2.2}
    assert "| answer | votes | weight | voters |" in heavy["result"]


@pytest.mark.parametrize(("dissent", "outcome"), [(["qa"], "2^10"), (["qa", "backend"], None)])
def test_quorum_rule_needs_its_share_of_all_voters(ctx: RunContext, dissent: list[str], outcome: str | None) -> None:
    fail = dict.fromkeys(dissent, "disagree")
    out, *_ = run(ctx, faults=1, rule="quorum", quorum=0.8, fail=fail)
    v = out["verdict"]
    assert v["outcome"] == outcome and v["needed"].startswith("at least 6 of 7 votes")
    if outcome is None:
        assert v["reason"] == "it has 5 votes, short of the quorum of 6"
        majority, *_ = run(ctx, faults=1, fail=fail)
        assert majority["verdict"]["outcome"] == "2^10"  # what the quorum refused, a majority would accept


def test_voters_beyond_the_team_are_numbered(ctx: RunContext) -> None:
    out, messages, _ = run(ctx, team="content", voters=13, fail={"writer_2": "lie", "editor_2": "lie"})
    roles = ["researcher", "outliner", "writer", "fact_checker", "seo", "editor"]
    assert [m.recipient for m in messages if m.kind == Kind.TASK_ASSIGN] == [
        *roles, *(f"{r}_2" for r in roles), "researcher_3"]
    v = out["verdict"]
    assert (v["voters"], v["faults"], v["outcome"]) == (13, 4, "2^10")
    assert v["dissenters"] == {"writer_2": "10^3", "editor_2": "10^3"}
    # A model object given for a role serves its numbered voters too.
    shared, *_ = run(ctx, team="content", voters=13, models={"writer": OfflineChatModel(fail="lie")})
    assert shared["verdict"]["dissenters"] == {"writer": "10^3", "writer_2": "10^3"}


@pytest.mark.parametrize(("settings", "message"), [
    ({"voters": 5, "faults": 2}, "faults=2): tolerating 2 faulty voters needs at least 7 voters (n >= 3f + 1)"),
    ({"rule": "unanimous"}, "rule='unanimous'): Input should be 'majority', 'weighted' or 'quorum'"),
    ({"voters": ["architect", "ceo"]}, "voters=['architect', 'ceo']): team 'software' has no role 'ceo'"),
    ({"voters": 0}, "voters=0): give a number of voters (at least 1) or a list of role names"),
    ({"weights": {"qa": 2}}, "weights={'qa': 2}): weights counts only under rule 'weighted' (the rule is 'majority')"),
    ({"rule": "weighted", "weights": {"ceo": 2}}, "weights={'ceo': 2}): no voter has role 'ceo'"),
    ({"rule": "weighted", "weights": {"qa": 3}}, "the 2 heaviest voters carry 4 of 9; to tolerate 2 faulty voters"),
    ({"rule": "quorum", "quorum": 0.4}, "quorum=0.4): Input should be greater than 0.5"),
    ({"rule": "quorum", "quorum": 0.9}, "quorum=0.9): a quorum of 0.9 needs 7 of 7 votes, but with 2 faulty voters"),
], ids=["n<3f+1", "rule", "role", "none", "weights-rule", "weights-role", "weights-heavy", "quorum-low",
        "quorum-high"])
def test_bad_settings_fail_the_build_with_one_line(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(TeamError) as err:
        consensus.build(team="software", **settings)
    assert str(err.value).startswith("consensus.build(") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_settings_in_a_team_file_name_the_line(tmp_path: Path, troupe) -> None:
    path = tmp_path / "pair.yaml"
    path.write_text("name: pair\ndescription: two voters\nroles:\n"
                    "  - {name: a, capabilities: [x], prompt: p}\n  - {name: b, capabilities: [y], prompt: p}\n"
                    "patterns:\n  consensus:\n    faults: 1\n")
    problem = ("patterns.consensus.faults: tolerating 1 faulty voters needs at least 4 voters (n >= 3f + 1), there "
               "are 2: add voters or lower faults")
    with pytest.raises(TeamError, match=f"^{path}:8: " + problem.replace("(", r"\(").replace(")", r"\)").replace(
            "+", r"\+")):
        consensus.build(team=path)
    out = troupe("run", "consensus", "Tea or coffee?", "--team-file", str(path))
    assert out.returncode == 2 and out.stderr == f"troupe: error: {path}:8: {problem}\n"
    assert "no runs yet" in troupe("runs").stdout  # refused before anything was written


def test_the_safe_rule_holds_for_every_small_electorate() -> None:
    """The module's claims, exhaustively for n <= 12 and every f with n >= 3f + 1: up to f faults (lies or missing
    votes) never change the honest outcome; a lie is reported only where the liars outnumber the honest voters; at
    n = 3f + 1, f + 1 to 2f coordinated liars leave no safe consensus."""
    for n in range(1, 13):
        for f in range((n - 1) // 3 + 1):
            names = [f"v{i}" for i in range(n)]
            e = Electorate(voters=dict.fromkeys(names, "r"), rule="majority", faults=f, weights=dict.fromkeys(names, 1))
            for liars in range(n + 1):
                for missing in range(n - liars + 1):
                    answers = ["lie"] * liars + [None] * missing + ["truth"] * (n - liars - missing)
                    votes = {a: Vote(answer=x, said=x or "", confidence=1.0, fault=None if x else "crashed")
                             for a, x in zip(names, answers, strict=True)}
                    outcome = decide(e, votes)["outcome"]
                    honest = n - liars - missing
                    if liars + missing <= f:
                        assert outcome == "truth", (n, f, liars, missing)
                    if outcome == "lie":
                        assert liars > honest, (n, f, liars, missing)
                    if n == 3 * f + 1 and missing == 0 and f < liars <= 2 * f:
                        assert outcome is None, (n, f, liars)


def test_answers_are_compared_normalized() -> None:
    assert normalize("**2 ^ 10.**") == normalize(" 2^10 ") == normalize("2^10") == "2^10"
    assert normalize("Postgres") == normalize("postgres!") != normalize("MySQL")
