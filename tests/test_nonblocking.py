"""Async nodes never block the event loop: the check LangGraph's dev server applies (blockbuster)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from blockbuster import blockbuster_ctx
from conftest import TODO_TASK, in_memory
from langgraph.types import Command

from state.context import RunContext


def test_a_whole_team_run_makes_no_blocking_call(tmp_path: Path) -> None:
    graph = in_memory()
    ctx = RunContext(workspace_root=str(tmp_path), latency=0.01)
    config = {"configurable": {"thread_id": "nb"}}

    async def run() -> dict:
        with blockbuster_ctx():  # raises BlockingError on any blocking call made on the event loop
            await graph.ainvoke({"task": TODO_TASK}, config, context=ctx)
            await graph.ainvoke(Command(resume={"approved": True}), config, context=ctx)
        return (await graph.aget_state(config)).values

    values = asyncio.run(run())
    assert values["status"] == "completed"
    assert (tmp_path / "nb" / "SUMMARY.md").exists()
