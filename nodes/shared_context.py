"""A worker's share of the team's knowledge, and the conflicts its work raises.

The brief gets the records that touch the subtask (never the whole store) and, for a persistent specialist,
what it remembers from earlier runs. After the work: overlapping edits of a file and artifacts that disagree
with an interface contract become CONFLICT messages, conflict records and requests the supervisor resolves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from nodes import scope
from state.context import RunContext
from state.plan import PlannedTask
from state.protocol import Conflict
from state.records import ConflictRecord, ContractRecord
from state.roles import Role, Team
from state.team import Request
from state.untrusted import fence
from tools.context_store import memories, put_record, read_records, scoped
from tools.contracts import mismatch


async def seed(runtime: Runtime[RunContext], team: Team) -> None:
    """Put the team file's records into the run's store (once: a record already there is kept as it is now)."""
    if runtime.store is None or not team.context:
        return
    thread = scope.thread_of(runtime)
    have = {r.key for r in await read_records(runtime.store, thread, team.name)}
    for record in team.context:
        if record.key not in have:
            await put_record(runtime.store, thread, team.name, record)


async def brief_context(runtime: Runtime[RunContext], team: Team, role: Role, task: PlannedTask) -> dict[str, Any]:
    """The brief's "context" (records touching the subtask) and "memory" (a persistent role's notes) entries."""
    if runtime.store is None:
        return {}
    records = await read_records(runtime.store, scope.thread_of(runtime), team.name)
    out: dict[str, Any] = {}
    if found := scoped(records, task.id, task.capability, role.name):
        out["context"] = [entry(r) for r in found]
    if role.memory == "persistent" and (notes := await memories(runtime.store, team.name, role.name)):
        out["memory"] = [fence(n.note, f"your memory, from run {n.learned_in}") for n in notes]
    return out


def entry(record: Any) -> dict[str, Any]:
    """A record as a brief shows it: its words fenced as the data of whoever recorded them."""
    out = {"kind": record.kind, "title": record.title,
             "text": fence(record.text, f"{record.author}, {record.kind}"), "by": record.author}
    if isinstance(record, ContractRecord):
        out |= {"fields": record.fields, "version": record.version}
    if getattr(record, "reason", ""):
        out["reason"] = fence(record.reason, f"{record.author}, reason")
    return out


async def contract_conflicts(runtime: Runtime[RunContext], team: Team, role: Role, task: PlannedTask, path: Path,
                             artifact: str, lead: str) -> list[Request]:
    """The contracts touching the subtask that its artifact disagrees with: journaled and recorded, as requests."""
    if runtime.store is None:
        return []
    thread = scope.thread_of(runtime)
    contracts = [r for r in scoped(await read_records(runtime.store, thread, team.name, "contract"),
                                   task.id, task.capability, role.name) if isinstance(r, ContractRecord)]
    if not contracts:
        return []
    text = await scope.read_text(path)
    requests = []
    for contract in contracts:
        if (m := mismatch(text, contract)) is None:
            continue
        said = m.describe(artifact)
        await _raise(runtime, team, task, role.name, lead, f"contract {contract.title}", said,
                     [task.id, f"contract {contract.title}"])
        requests.append(Request(kind="contract", task_id=task.id, sender=role.name, text=said,
                                detail={"contract": contract.key, "missing": m.missing, "found": m.found}))
    return requests


async def file_conflicts(runtime: Runtime[RunContext], team: Team, role: Role, task: PlannedTask,
                         conflicts: list[dict[str, Any]], lead: str) -> list[Request]:
    """Edits of a file that overlapped another worker's in the same step (the workspace tool kept theirs)."""
    requests = []
    for c in conflicts:
        others = ", ".join(c.get("with", []))
        said = (f"{role.name}'s edit of {c['path']} in {task.id} overlaps the concurrent edit by {others} "
                f"({c.get('conflicts', 1)} overlapping region(s)); the workspace keeps {others}'s version")
        await _raise(runtime, team, task, role.name, lead, f"file {c['path']}", said, [task.id, *c.get("with", [])])
        requests.append(Request(kind="conflict", task_id=task.id, sender=role.name, text=said, detail=c))
    return requests


async def _raise(runtime: Runtime[RunContext], team: Team, task: PlannedTask, sender: str, lead: str, topic: str,
                 said: str, sides: list[str]) -> None:
    await scope.journal(runtime).post(Conflict(sender=sender, recipient=lead, correlation_id=task.id, topic=topic,
                                               description=said))
    record = ConflictRecord(title=f"{topic} in {task.id}", text=said, touches=[task.id], author=sender,
                            task_id=task.id, sides=sides)
    await put_record(runtime.store, scope.thread_of(runtime), team.name, record)
