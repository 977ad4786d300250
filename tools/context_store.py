"""The shared context store: what every agent of a run may consult, in the LangGraph store beside the checkpoints.

    ("runs", thread, "context", team)   decisions, contracts, constraints, conflicts (`state.records`)
    ("runs", thread, "progress")        where each subtask is
    ("memory", team, role)              what a persistent specialist keeps across runs

One key per subject, so an update replaces the old record and a re-run step writes the same thing again.
Search is semantic when the store was opened with an embedding index (`tools.embeddings`), else by words.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

from langgraph.store.base import BaseStore

from state.records import MAX_SCOPED, AnyRecord, MemoryNote, ProgressRecord, parse_record, slug
from tools.journal import Write, namespace, read_all, read_items

_WORDS = re.compile(r"[a-z0-9]+")
_STOP = frozenset({"the", "and", "for", "with", "which", "what", "who", "how", "are", "was", "this", "that", "our",
                   "you", "your", "use", "used", "does", "from", "into", "its", "has", "have", "can", "all", "any"})


def context_ns(thread_id: str, team: str | None = None) -> tuple[str, ...]:
    """A run's records of one team (nested teams each have their own), or of every team (None)."""
    return (*namespace(thread_id, "context"), *([team] if team else []))


async def put_record(store: BaseStore | None, thread_id: str, team: str, record: AnyRecord) -> AnyRecord:
    if store is not None:
        await store.aput(context_ns(thread_id, team), record.key, record.model_dump(mode="json"), index=["text"])
    return record


async def get_record(store: BaseStore, thread_id: str, team: str, key: str) -> AnyRecord | None:
    item = await store.aget(context_ns(thread_id, team), key)
    return parse_record(item.value) if item else None


async def read_records(store: BaseStore | None, thread_id: str, team: str | None = None,
                       kind: str | None = None) -> list[AnyRecord]:
    """A run's records (of one team, of one kind), oldest first."""
    if store is None:
        return []
    found = [parse_record(i.value) for i in await read_items(store, context_ns(thread_id, team))]
    return sorted((r for r in found if kind is None or r.kind == kind), key=lambda r: r.updated)


def scoped(records: Iterable[AnyRecord], *names: str) -> list[AnyRecord]:
    """The newest records (at most `MAX_SCOPED`) that touch a subtask known by `names` (id, capability, role)."""
    return [r for r in records if r.touches_task(*names)][-MAX_SCOPED:]


def is_semantic(store: BaseStore) -> bool:
    return bool(getattr(store, "index_config", None))


async def search(store: BaseStore, thread_id: str, team: str | None, query: str, *, kind: str | None = None,
                 limit: int = 5) -> list[AnyRecord]:
    """The records that best answer `query`: by meaning with an embedding index, else by shared words."""
    if is_semantic(store):
        items = await store.asearch(context_ns(thread_id, team), query=query, limit=limit,
                                    filter={"kind": kind} if kind else None)
        return [parse_record(i.value) for i in items]
    wanted = _terms(query)
    scored = [(len(wanted & _terms(f"{r.title} {r.text}")), -r.updated, r)
              for r in await read_records(store, thread_id, team, kind)]
    return [r for score, _, r in sorted(scored, key=lambda s: s[:2], reverse=True) if score][:limit]


def _terms(text: str) -> set[str]:
    """The words that carry meaning, singular: 'Which databases do we use?' -> {'database'}."""
    return {w.removesuffix("s") for w in _WORDS.findall(text.lower()) if len(w) > 2 and w not in _STOP}


def memory_ns(team: str, role: str) -> tuple[str, ...]:
    return ("memory", team, role)


async def remember(store: BaseStore, team: str, role: str, note: MemoryNote) -> None:
    await store.aput(memory_ns(team, role), slug(note.note), note.model_dump(mode="json"), index=False)


async def memories(store: BaseStore, team: str, role: str) -> list[MemoryNote]:
    notes = [MemoryNote.model_validate(v) for v in await read_all(store, memory_ns(team, role))]
    return sorted(notes, key=lambda n: n.updated)


async def forget(store: BaseStore, team: str, role: str) -> int:
    """Clear a specialist's memory; how many notes it held."""
    items = await read_items(store, memory_ns(team, role))
    for item in items:
        await store.adelete(item.namespace, item.key)
    return len(items)


def progress_write(thread_id: str, record: ProgressRecord) -> Write:
    """The store write of a subtask's progress (to make beside a journal post)."""
    return namespace(thread_id, "progress"), record.task_id, record.model_dump()


async def record_progress(store: BaseStore | None, thread_id: str, *records: ProgressRecord) -> None:
    if store is not None and records:
        writes = [progress_write(thread_id, r) for r in records]
        await asyncio.gather(*(store.aput(ns, key, value, index=False) for ns, key, value in writes))


async def read_progress(store: BaseStore, thread_id: str) -> list[ProgressRecord]:
    values = await read_all(store, namespace(thread_id, "progress"))
    return sorted((ProgressRecord.model_validate(v) for v in values), key=lambda r: r.task_id)
