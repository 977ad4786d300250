"""Side effects happen at most once per task attempt, even when the process dies between the effect and the
checkpoint (LangGraph alone repeats them: at-least-once)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import pytest
from conftest import cli_env
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore

from nodes.kit import Kit
from tools.effects import EffectRecord, effect, read_effects, unknown

TEAM_SCRIPT = Path(__file__).with_name("effects_team.py")

# --- killed runs, resumed in a new process ---------------------------------------------------------------------


def kill_and_resume(tmp_path: Path, mode: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Start the payers' run in MODE (it dies once), resume it in a new process: the ledger's lines and what the
    resumed run reported."""
    ledger = tmp_path / "ledger.jsonl"
    env = {**cli_env(tmp_path / "troupe.sqlite"), "EFFECTS_LEDGER": str(ledger),
           "EFFECTS_MARKER": str(tmp_path / "died")}
    args = [sys.executable, str(TEAM_SCRIPT), str(tmp_path / "troupe.sqlite"), str(tmp_path / "ws")]
    started = subprocess.run([*args, "start", mode], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == -9, f"the run was not killed: {started.stderr}"
    resumed = subprocess.run([*args, "resume", mode], env=env, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "completed" and report["rounds"] == [1]
    return [json.loads(line) for line in ledger.read_text().splitlines()], report


@pytest.mark.slow
def test_a_run_killed_after_an_effect_does_not_repeat_it_when_resumed(tmp_path: Path) -> None:
    """The worker pays, then dies before its step is checkpointed; the resumed step replays the payment call."""
    paid, report = kill_and_resume(tmp_path, "effect")
    assert len(paid) == 1, paid
    [record] = report["effects"]
    assert (record["tool"], record["args"], record["status"], record["result"]) == ("pay", {"amount": 1}, "done",
                                                                                    "paid 1")
    assert "- pay: paid 1" in report["artifact"], "the replayed call got the recorded result"


@pytest.mark.slow
def test_without_effect_langgraph_repeats_the_payment(tmp_path: Path) -> None:
    """The control: the same run with `pay` a plain tool pays twice (LangGraph re-runs the interrupted step)."""
    paid, report = kill_and_resume(tmp_path, "plain")
    assert len(paid) == 2 and paid[0]["pid"] != paid[1]["pid"], paid
    assert report["effects"] == []


@pytest.mark.slow
def test_an_effect_killed_before_it_was_recorded_done_is_not_repeated(tmp_path: Path) -> None:
    """`pay` dies right after paying, before its record says done: its outcome is unknown, so the resumed run does
    not pay again and the model gets a tool error saying why."""
    paid, report = kill_and_resume(tmp_path, "inside")
    assert len(paid) == 1, paid
    [record] = report["effects"]
    assert (record["status"], record["result"]) == ("unknown", unknown("pay"))
    assert f"- pay: {unknown('pay')}" in report["artifact"], "the model got the error as the call's result"


@pytest.mark.slow
def test_an_effect_that_takes_the_key_is_repeated_with_the_same_key(tmp_path: Path) -> None:
    """`pay(amount, idempotency_key)` dies right after paying: it is called again with the same key, for the
    external service to drop the repeat; the key is not the model's to fill in."""
    paid, report = kill_and_resume(tmp_path, "keyed")
    assert len(paid) == 2 and paid[0]["pid"] != paid[1]["pid"], paid
    [record] = report["effects"]
    assert paid[0]["key"] == paid[1]["key"] == record["key"] and len(record["key"]) == 64
    assert (record["status"], record["args"]) == ("done", {"amount": 1})


# --- one journal, a small graph with an in-memory store --------------------------------------------------------


class Count(TypedDict):
    n: int


def graph(step: Callable[[], Any]) -> tuple[Any, InMemoryStore]:
    """A one-node graph whose node awaits `step()`, with an in-memory checkpointer and store."""

    async def node(state: Count) -> Count:
        await step()
        return {"n": state["n"] + 1}

    store = InMemoryStore()
    built = StateGraph(Count).add_node("node", node).add_edge(START, "node").add_edge("node", END)
    return built.compile(checkpointer=InMemorySaver(), store=store), store


THREAD = {"configurable": {"thread_id": "t"}}


def test_the_same_call_in_a_replayed_step_happens_once() -> None:
    """The node pays twice with the same arguments and once with others, then fails; LangGraph replays the step
    (same task id): every call answers as before, and each distinct payment happened once."""
    paid: list[int] = []
    failures = [RuntimeError("the checkpoint was never written")]

    @effect
    def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount} (payment {len(paid)})"

    answers: list[str] = []

    async def step() -> None:
        tool = Kit.create(tools=[pay]).tools["pay"]
        answers.extend([await tool.ainvoke({"amount": a}, get_config()) for a in (5, 5, 7)])
        if failures:
            raise failures.pop()

    app, store = graph(step)
    with pytest.raises(RuntimeError):
        asyncio.run(app.ainvoke({"n": 0}, THREAD))
    assert asyncio.run(app.ainvoke(None, THREAD)) == {"n": 1}
    assert paid == [5, 7]
    assert answers == ["paid 5 (payment 1)", "paid 5 (payment 1)", "paid 7 (payment 2)"] * 2
    records = asyncio.run(read_effects(store, "t"))
    assert [(r.args, r.status) for r in records] == [({"amount": 5}, "done"), ({"amount": 7}, "done")]


def test_a_new_task_attempt_runs_the_effect_again() -> None:
    """Each invocation is a new task (a new id), as the next review round is: the same payment runs again. (An
    async function given as `tools=` is awaited.)"""
    paid: list[int] = []

    @effect
    async def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return "paid"

    app, store = graph(lambda: Kit.create(tools=[pay]).tools["pay"].ainvoke({"amount": 5}, get_config()))
    asyncio.run(app.ainvoke({"n": 0}, THREAD))
    asyncio.run(app.ainvoke({"n": 1}, THREAD))
    assert paid == [5, 5]
    assert len({r.key for r in asyncio.run(read_effects(store, "t"))}) == 2


def test_an_effect_that_raised_can_run_again_in_the_same_attempt() -> None:
    """A raised effect reported that it did not happen: nothing is recorded done, so the retry pays."""
    tries: list[int] = []

    @effect
    def pay(amount: int) -> str:
        """Pay an amount."""
        tries.append(amount)
        if len(tries) == 1:
            raise ConnectionError("the bank is down")
        return "paid"

    async def step() -> None:
        tool = Kit.create(tools=[pay]).tools["pay"]
        with pytest.raises(ConnectionError):
            await tool.ainvoke({"amount": 5}, get_config())
        assert await tool.ainvoke({"amount": 5}, get_config()) == "paid"

    app, store = graph(step)
    asyncio.run(app.ainvoke({"n": 0}, THREAD))
    assert tries == [5, 5]
    assert [r.status for r in asyncio.run(read_effects(store, "t"))] == ["done"]


def test_a_langchain_tool_is_journaled_and_its_key_is_hidden_from_the_model() -> None:
    """A BaseTool with an `idempotency_key` parameter: the model sees only `amount`; the tool gets the call's key,
    the same key when the step is replayed; a replayed call is not run again."""
    keys: list[str] = []
    failures = [RuntimeError("crash")]

    @tool
    def transfer(amount: int, idempotency_key: str) -> str:
        """Transfer an amount."""
        keys.append(idempotency_key)
        return "sent"

    journaled = effect(transfer)
    assert isinstance(journaled, BaseTool) and journaled.name == "transfer"
    assert list(journaled.tool_call_schema.model_json_schema()["properties"]) == ["amount"]

    async def step() -> None:
        assert await journaled.ainvoke({"amount": 3}, get_config()) == "sent"
        if failures:
            raise failures.pop()

    app, store = graph(step)
    with pytest.raises(RuntimeError):
        asyncio.run(app.ainvoke({"n": 0}, THREAD))
    asyncio.run(app.ainvoke(None, THREAD))
    [record] = asyncio.run(read_effects(store, "t"))
    assert keys == [record.key] and record.tool == "transfer"


def test_outside_a_run_an_effect_just_runs() -> None:
    """No LangGraph run, no journal: every call runs; one that takes a key gets a new one each time."""
    keys: list[str] = []

    @effect
    def pay(amount: int, idempotency_key: str) -> str:
        """Pay an amount."""
        keys.append(idempotency_key)
        return "paid"

    assert pay(5) == pay(5) == "paid"
    assert Kit.create(tools=[pay]).tools["pay"].invoke({"amount": 5}) == "paid"
    assert len(set(keys)) == 3
    assert pay.__name__ == "pay" and pay.__doc__ == "Pay an amount."


def test_an_unknown_outcome_is_reported_not_repeated() -> None:
    """The step pays and fails; its record is set back to "started" (as if the process had died before "done"):
    the replayed call is refused with a tool error, the record says so, and nothing is paid again."""
    paid: list[int] = []
    failures = [RuntimeError("crash")]

    @effect
    def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return "paid"

    answers: list[Any] = []

    async def step() -> None:
        tool = Kit.create(tools=[pay]).tools["pay"]
        call = {"type": "tool_call", "id": "c1", "name": "pay", "args": {"amount": 5}}
        answers.append(await tool.ainvoke(call, get_config()))
        if failures:
            raise failures.pop()

    app, store = graph(step)
    with pytest.raises(RuntimeError):
        asyncio.run(app.ainvoke({"n": 0}, THREAD))
    [done] = asyncio.run(read_effects(store, "t"))
    started = EffectRecord.model_validate(done.model_dump() | {"status": "started", "result": ""})
    store.put(("runs", "t", "effects"), done.key, started.model_dump())
    asyncio.run(app.ainvoke(None, THREAD))
    assert paid == [5]
    assert answers[0].content == "paid" and answers[1].status == "error" and answers[1].content == unknown("pay")
    assert [r.status for r in asyncio.run(read_effects(store, "t"))] == ["unknown"]
