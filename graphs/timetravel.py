"""Time travel: a run's checkpoints, and a new run forked from one of them.

LangGraph keeps every super-step's checkpoint, so a run can go on from any of them. A fork copies the run's
checkpoints up to the chosen one (with their pending writes, and the checkpoints of sub-teams running then) into a
new thread, with the run's journal and model calls up to that moment and its workspace's files; the new run then
goes on from there with its own settings, and the old run is left as it was.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.store.base import BaseStore

from tools.journal import namespace, read_items


async def root_checkpoints(saver: BaseCheckpointSaver[Any], thread_id: str) -> list[CheckpointTuple]:
    """The run's top-level checkpoints, oldest first."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    return list(reversed([t async for t in saver.alist(config)]))


def find(points: list[CheckpointTuple], at: str) -> CheckpointTuple:
    """The checkpoint `at` names: its id (or a unique start of it), or its number in `troupe history`."""
    if at.isdigit() and int(at) < len(points):
        return points[int(at)]
    found = [p for p in points if p.config["configurable"]["checkpoint_id"].startswith(at)]
    if len(found) != 1:
        why = "no checkpoint" if not found else f"{len(found)} checkpoints"
        raise LookupError(f"{why} of this run matches {at!r}: pick a number or an id from `troupe history`")
    return found[0]


def created(point: CheckpointTuple) -> float:
    return datetime.fromisoformat(point.checkpoint["ts"]).timestamp()


async def copy_thread(saver: BaseCheckpointSaver[Any], source: str, target: str, upto: str) -> None:
    """Copy every checkpoint of thread `source` (every namespace) up to checkpoint `upto`, with its pending writes,
    into thread `target`, parents before children."""
    chosen = [t async for t in saver.alist({"configurable": {"thread_id": source}})]
    kept = sorted((t for t in chosen if t.config["configurable"]["checkpoint_id"] <= upto),
                  key=lambda t: t.config["configurable"]["checkpoint_id"])
    last: dict[str, str] = {}
    for t in kept:
        ns = t.config["configurable"]["checkpoint_ns"]
        config: RunnableConfig = {"configurable": {"thread_id": target, "checkpoint_ns": ns}}
        if ns in last:
            config["configurable"]["checkpoint_id"] = last[ns]
        metadata = {**t.metadata, "forked_from": f"{source}:{t.config['configurable']['checkpoint_id']}"}
        saved = await saver.aput(config, t.checkpoint, metadata, t.checkpoint["channel_versions"])  # type: ignore[arg-type]
        last[ns] = saved["configurable"]["checkpoint_id"]
        writes: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in t.pending_writes or []:
            writes[task_id].append((channel, value))
        for task_id, pairs in writes.items():
            await saver.aput_writes(saved, pairs, task_id)


async def copy_records(store: BaseStore, source: str, target: str, until: float) -> None:
    """Copy the run's journal, model calls and shared context recorded until `until` (a timestamp) to the new
    thread's records."""
    for kind, stamp in (("messages", "timestamp"), ("calls", "ended"), ("context", "updated")):
        for item in await read_items(store, namespace(source, kind)):
            if item.value.get(stamp, 0) <= until:
                where = (*namespace(target, kind), *item.namespace[3:])  # context records: one namespace per team
                await store.aput(where, item.key, item.value, index=["text"] if kind == "context" else False)


async def copy_workspace(source: Path, target: Path) -> None:
    """The files of the old run's workspace, as a start for the new one (later rounds overwrite them)."""
    if source.is_dir():
        await asyncio.to_thread(shutil.copytree, source, target, symlinks=True, dirs_exist_ok=True)
