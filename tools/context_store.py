"""The shared context store: what every agent of a run may consult (progress now; decisions,
contracts, constraints and conflict flags build on the same records).

Records live in the LangGraph store beside the checkpoints, one key per subject, so an
update replaces the old record and a re-run step writes the same thing again.
"""

from __future__ import annotations

import time

from langgraph.store.base import BaseStore
from pydantic import BaseModel, Field

from tools.journal import namespace, read_all


class ProgressRecord(BaseModel):
    task_id: str
    status: str
    assignee: str
    round: int
    updated: float = Field(default_factory=time.time)


async def record_progress(store: BaseStore | None, thread_id: str, record: ProgressRecord) -> None:
    if store is not None:
        await store.aput(namespace(thread_id, "progress"), record.task_id, record.model_dump(), index=False)


async def read_progress(store: BaseStore, thread_id: str) -> list[ProgressRecord]:
    values = await read_all(store, namespace(thread_id, "progress"))
    return sorted((ProgressRecord.model_validate(v) for v in values), key=lambda r: r.task_id)

