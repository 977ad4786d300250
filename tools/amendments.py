"""Scope changes sent to a run: an inbox in the store that the run's supervisor reads at every step.

A process that is not running the run (the CLI's `troupe amend`, a notebook) posts an amendment; the
process running it, now or after a resume, plans it at its next dispatch. The supervisor's ledger keeps
the ids it has planned, so an amendment is planned once, whichever process posted it.
"""

from __future__ import annotations

import time

from langgraph.store.base import BaseStore
from pydantic import BaseModel, Field

from state.protocol import message_id
from tools.journal import namespace, read_all


class Amendment(BaseModel):
    id: str = Field(default_factory=message_id)
    text: str
    at: float = Field(default_factory=time.time)


async def post_amendment(store: BaseStore, thread_id: str, text: str) -> Amendment:
    amendment = Amendment(text=text)
    await store.aput(namespace(thread_id, "amendments"), amendment.id, amendment.model_dump(), index=False)
    return amendment


async def read_amendments(store: BaseStore | None, thread_id: str) -> list[Amendment]:
    """Every amendment posted to the run, oldest first."""
    if store is None:
        return []
    values = await read_all(store, namespace(thread_id, "amendments"))
    return sorted((Amendment.model_validate(v) for v in values), key=lambda a: a.id)
