"""The model cache: an identical re-run calls no model and still does all its work; a changed model or setting
misses; `--no-cache` (RunContext.cache=False) always calls the model; cached answers cost nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import TODO_TASK
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration
from langgraph.store.memory import InMemoryStore

from graphs.runtime import Runner
from nodes.offline_model import OfflineChatModel
from state.context import RunContext
from state.protocol import Kind
from tools.model_cache import StoreCache


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call the offline model really answers (a cached call never reaches it), as the agent's name."""
    seen: list[str] = []
    answer = OfflineChatModel._answer

    def counting(self: OfflineChatModel, messages: list[Any], tools: list[dict[str, Any]], mode: str | None) -> Any:
        seen.append(self.name or self.role)
        return answer(self, messages, tools, mode)

    monkeypatch.setattr(OfflineChatModel, "_answer", counting)
    return seen


def _runs(db: Path, *contexts: RunContext) -> list[tuple[Any, list[Any], list[Any]]]:
    async def go() -> list[tuple[Any, list[Any], list[Any]]]:
        out = []
        async with Runner.open(db) as runner:
            for ctx in contexts:
                run = await runner.start("sequential", TODO_TASK, ctx)
                thread = run.info.thread_id
                out.append((run, await runner.calls(thread), await runner.journal(thread)))
        return out

    return asyncio.run(go())


def test_an_identical_rerun_calls_no_model_and_still_does_its_work(db: Path, ctx: RunContext, answered: list[str]
                                                                 ) -> None:
    (first, calls1, journal1), (second, calls2, journal2) = _runs(db, ctx, ctx)
    made = len(answered)
    assert made == len(calls1) > 5 and not any(c.cached for c in calls1)
    assert len(answered) == made  # the second run asked the model nothing
    assert len(calls2) == len(calls1) and all(c.cached for c in calls2)
    assert sum(c.input_tokens + c.output_tokens for c in calls2 if not c.cached) == 0
    assert second.status == first.status == "completed" and second.values["result"] == first.values["result"]
    assert [m.kind for m in journal2] == [m.kind for m in journal1]  # every message journaled again
    for m in journal2:
        if m.kind == Kind.ARTIFACT:  # and every file written again, in the new run's workspace
            assert (second.info.workspace / m.path).read_text(encoding="utf-8")


def test_a_changed_model_or_setting_misses_and_no_cache_always_calls(db: Path, ctx: RunContext,
                                                                     answered: list[str]) -> None:
    _runs(db, ctx)
    made = len(answered)
    _runs(db.with_name("other.sqlite"), ctx)  # another database: another cache
    assert len(answered) == 2 * made
    answered.clear()
    runs = _runs(db, replace(ctx, model="offline:other"), replace(ctx, seed=8), replace(ctx, cache=False))
    assert len(answered) == sum(len(calls) for _, calls, _ in runs) >= 3 * made  # each asked for everything again
    assert {c.model for c in runs[0][1]} == {"offline:other"}
    assert not any(c.cached for _, calls, _ in runs for c in calls)


def test_no_cache_on_the_command_line(troupe) -> None:
    args = ("run", "sequential", TODO_TASK, "--latency", "0", "--json")
    first, again, uncached = troupe(*args), troupe(*args), troupe(*args, "--no-cache")
    assert [first.returncode, again.returncode, uncached.returncode] == [0, 0, 0], first.stderr
    used = [json.loads(out.stdout)["usage"] for out in (first, again, uncached)]
    assert used[0]["cached"] == 0 and used[1]["cached"] == used[1]["calls"] > 0 and used[2]["cached"] == 0
    assert used[1]["tokens"] == 0 and used[2]["tokens"] == used[0]["tokens"] > 0


def test_an_answer_the_cache_cannot_keep_is_still_the_answer(caplog) -> None:
    class Full(InMemoryStore):
        async def aput(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise sqlite3.OperationalError("database is locked")

    cache = StoreCache(Full(), "offline@")
    asyncio.run(cache.aupdate("[]", "llm", [ChatGeneration(message=AIMessage("hi"))]))
    assert "could not keep an answer: OperationalError: database is locked" in caplog.text
