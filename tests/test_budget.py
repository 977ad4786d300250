"""Budgets are enforced, not reported: a spent run budget stops the run resumably, near the end the run degrades
(a cheaper model for routine roles, fewer agents, early synthesis), an agent's own budget fails only its work, and a
runaway loop the loop detection misses is stopped by the budget."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from conftest import TODO_TASK, in_memory

from graphs.errors import TroupeError
from graphs.runtime import Runner
from nodes.teams import load_team
from state.budget import Budget, Limit, Price, Usage, price_of
from state.context import RunContext
from state.protocol import Kind
from state.team import Decision


def test_prices_match_dated_names_and_overrides_win() -> None:
    assert price_of("gpt-4o-mini-2024-07-18") == price_of("gpt-4o-mini") == Price(input=0.15, output=0.6)
    assert price_of("openai:gpt-4o") == Price(input=2.5, output=10)
    assert price_of("my-local-model") is None
    assert price_of("offline:mini", {"offline:mini": Price(input=1, output=2)}) == Price(input=1, output=2)
    assert Price(input=2.5, output=10).cost(1_000_000, 100_000) == pytest.approx(3.5)


def test_a_limit_is_the_larger_share_of_tokens_and_dollars() -> None:
    used = Usage(input_tokens=600, output_tokens=400, usd=0.9)
    assert Limit(tokens=2000).fraction(used) == 0.5
    assert Limit(tokens=2000, usd=1.0).fraction(used) == pytest.approx(0.9)
    assert Limit().fraction(used) == 0.0


async def _drive(db: Path, ctx: RunContext, pattern: str = "hierarchical", task: str = TODO_TASK, **kw):
    async with Runner.open(db) as runner:
        out = await runner.start(pattern, task, ctx, thread_id="b", **kw)
        return out, await runner.calls("b"), await runner.journal("b")


def test_a_spent_budget_stops_the_run_and_a_larger_one_resumes_it_without_redoing_work(db: Path, ctx: RunContext
                                                                                     ) -> None:
    ctx.budget_tokens = 3000
    team = load_team("software").model_copy(update={"budget": Budget(synthesize_at=1.0)})  # no early synthesis

    async def go() -> None:
        async with Runner.open(db) as runner:
            out = await runner.start("hierarchical", TODO_TASK, ctx, thread_id="b", team=team)
            assert out.status == "out_of_budget"
            assert out.interrupt["kind"] == "budget" and out.interrupt["limit"]["tokens"] == 3000
            spent = sum(c.input_tokens + c.output_tokens for c in await runner.calls("b"))
            assert out.interrupt["tokens"] == spent >= 3000
            done_before = {k for k, r in out.values["board"].items() if r.status.value == "done"}
            with pytest.raises(TroupeError, match="has spent its budget"):
                await runner.resume("b")  # the same cap: refused, nothing driven
            with pytest.raises(TroupeError, match="not waiting for approval"):
                await runner.approve("b", Decision(approved=True))
            out = await runner.resume("b", settings={"budget_tokens": 1_000_000})
            assert out.status == "awaiting_approval"
            out = await runner.approve("b", Decision(approved=True))
            assert out.status == "completed" and out.shortfall is None
            artifacts = [(m.correlation_id, m.round) for m in await runner.journal("b") if m.kind == Kind.ARTIFACT]
            assert len(artifacts) == len(set(artifacts))  # no finished work done again
            assert done_before and all((t, 1) in artifacts for t in done_before)

    asyncio.run(go())


def test_near_the_end_routine_roles_move_to_the_cheap_model(db: Path, ctx: RunContext) -> None:
    ctx.budget_tokens, ctx.cheap_model = 40_000, "offline:mini"
    team = load_team("software").model_copy(update={"budget": Budget(degrade_at=0.15, synthesize_at=1.0)})
    out, calls, journal = asyncio.run(_drive(db, ctx, team=team))
    assert out.status == "awaiting_approval"
    first = next(i for i, c in enumerate(calls) if c.degraded)
    assert all(c.model == "offline" and not c.degraded for c in calls[:first])
    later = calls[first:]
    assert {c.model for c in later if c.model_role in ("worker", "reviewer")} == {"offline:mini"}
    assert all(c.model == "offline" for c in later if c.model_role == "planner")
    used_before = sum(c.input_tokens + c.output_tokens for c in calls[:first])
    assert used_before >= 0.15 * 40_000
    said = [m for m in journal if m.kind == Kind.CHECKPOINT and m.label == "degraded: cheaper model"]
    assert len(said) == 1 and "offline:mini" in said[0].note


def test_near_the_end_fewer_agents_work_at_once_then_the_team_assembles_what_it_has(db: Path, ctx: RunContext
                                                                                   ) -> None:
    ctx.budget_tokens = 9000
    team = load_team("software").model_copy(update={"budget": Budget(degrade_at=0.3, synthesize_at=0.7)})
    out, calls, journal = asyncio.run(_drive(db, ctx, team=team))
    labels = [m.label for m in journal if m.kind == Kind.CHECKPOINT and m.sender == "budget"]
    assert labels == ["degraded: fewer agents", "degraded: early synthesis"]
    assert out.status == "awaiting_approval"  # early synthesis goes on to the gate with what is done
    stopped = {k: r for k, r in out.values["board"].items() if r.status.value == "failed"}
    assert stopped and all("the budget is nearly spent" in r.reason for r in stopped.values())
    assert [m.action for m in journal if m.kind == Kind.REPLAN and m.action == "budget"]
    assert sum(c.input_tokens + c.output_tokens for c in calls) < 9000  # it stopped starting work in time


def test_a_runaway_loop_is_stopped_by_the_budget(db: Path, ctx: RunContext) -> None:
    """The editor never passes the draft, loop detection is off and the round limit is high: only the budget ends
    it."""
    team = load_team("content")
    team.patterns["sequential"] = {"checks": {"editor": "writer"}, "max_rounds": 10, "stop_on_repeat": False}
    ctx.fail, ctx.budget_tokens = {"editor": "disagree"}, 12_000
    out, calls, journal = asyncio.run(_drive(db, ctx, "sequential", "Write a blog post about solar power",
                                             team=team))
    assert out.status == "out_of_budget"
    rounds = [m.round for m in journal if m.kind == Kind.TASK_ASSIGN and m.recipient == "writer"]
    assert 2 <= max(rounds) < 10
    assert 12_000 <= sum(c.input_tokens + c.output_tokens for c in calls) < 16_000


def test_an_agent_that_spends_its_own_budget_fails_its_work_and_the_run_goes_on(db: Path, ctx: RunContext) -> None:
    """The reviewer may spend 1,000 tokens: its first reviews pass, then the rest fail with the reason, and the
    supervisor recovers them as it recovers any failure; the run itself is not stopped."""
    team = load_team("software").model_copy(update={"budget": Budget(agents={"reviewer": Limit(tokens=1000)})})
    out, calls, journal = asyncio.run(_drive(db, ctx, team=team))
    assert out.status == "awaiting_approval"
    said = [m for m in journal if m.kind == Kind.CHECKPOINT and m.label == "reviewer spent its budget"]
    assert len(said) == 1
    refused = [m for m in journal if m.kind == Kind.REVIEW_RESULT and "has spent its budget" in m.feedback]
    assert refused
    reviewed = [c for c in calls if c.agent == "reviewer"]
    used = sum(c.input_tokens + c.output_tokens for c in reviewed)
    assert 1000 <= used < 1000 + max(c.input_tokens + c.output_tokens for c in reviewed) + 1
    assert any(m.kind == Kind.REPLAN for m in journal)  # the failures went up the recovery ladder


def test_a_dollar_budget_needs_a_price_for_every_model(db: Path, ctx: RunContext, troupe) -> None:
    ctx.budget_usd, ctx.model = 1.0, "openai:my-local-model"
    with pytest.raises(TroupeError, match="needs the price of 'openai:my-local-model'"):
        asyncio.run(_drive(db, ctx))
    out = troupe("run", "content", "Write a blog post about solar power", "--budget-usd", "0.004", "--price",
                 "offline=1/4", "--latency", "0", "--thread", "usd")
    assert out.returncode == 5, out.stderr
    assert "status: out_of_budget" in out.stdout and "troupe resume usd --budget-tokens N" in out.stdout
    again = troupe("resume", "usd", "--budget-usd", "5", "--auto-approve")
    assert again.returncode == 0, again.stderr
    assert "status: completed" in again.stdout
    bad = troupe("run", "hierarchical", TODO_TASK, "--price", "offline=cheap")
    assert bad.returncode == 2 and "--price offline=cheap: use MODEL=IN/OUT" in bad.stderr


def test_a_team_file_budget_stops_the_run(tmp_path: Path, troupe) -> None:
    spec = load_team("content").model_dump(mode="json", exclude_defaults=True)
    (tmp_path / "capped.yaml").write_text(yaml.safe_dump({**spec, "name": "capped", "budget": {"tokens": 2000}}))
    out = troupe("run", "sequential", "Write a blog post about solar power", "--team-file",
                 str(tmp_path / "capped.yaml"), "--latency", "0", "--thread", "tf")
    assert out.returncode == 5, out.stderr
    assert "2,000 tokens" in out.stdout and "status: out_of_budget" in out.stdout


def test_build_takes_a_budget(ctx: RunContext) -> None:
    graph = in_memory(budget=Budget(tokens=2000))
    config = {"configurable": {"thread_id": "built"}}
    asyncio.run(graph.ainvoke({"task": TODO_TASK}, config, context=ctx))
    [stop] = asyncio.run(graph.aget_state(config)).interrupts
    assert stop.value["kind"] == "budget" and stop.value["limit"]["tokens"] == 2000
