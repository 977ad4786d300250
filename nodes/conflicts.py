"""The supervisor meets both sides of a conflict (one model call sees both) and decides; the decision is recorded.

- Overlapping edits of a file (`tools.workspace` kept the first writer's version and saved the other's):
  the reporting worker's version wins (mine), the file stays (theirs), or the worker adapts its edit.
- Work that disagrees with an interface contract (`tools.contracts`): the contract stands and the work is
  redone, or the contract is updated and every piece of work that does not match the new one is redone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import ToolException
from langgraph.runtime import Runtime

from nodes import scope
from nodes.briefs import prompt
from nodes.kit import Kit
from nodes.plan_repair import ask_for_draft
from nodes.supervisor import PLANNER_PROMPT
from state.context import RunContext
from state.plan import ConflictDecision, ContractDecision, PlannedTask
from state.records import ConflictRecord, ContractRecord, slug
from state.team import Request
from state.untrusted import DATA_RULE, fence
from tools.context_store import get_record, put_record
from tools.contracts import mismatch
from tools.merge import saved
from tools.workspace import resolve_conflict

FILE_INSTRUCTIONS = """Two specialists edited the same file at the same time and their edits overlap; you see the \
file before both edits (base), as it is now (theirs) and the reporting worker's version (mine). Decide: mine (its \
version replaces the file), theirs (the file stays; its edit is dropped) or adapt (it redoes its edit on top of the \
file as it is now). Say why in one sentence.
""" + DATA_RULE

CONTRACT_INSTRUCTIONS = """A specialist's work disagrees with an interface contract that others build on; you see \
the contract, who set it, who touches it and what the work uses instead. Decide: keep (the contract stands; the \
work is redone to match it) or update (the contract becomes `fields`: every field the team needs; every piece of \
work that does not match it is redone). Say why in one sentence.
""" + DATA_RULE

SIDE = 4000
"""Characters of each side shown to the supervisor."""


async def decide_file(kit: Kit, runtime: Runtime[RunContext], request: Request, attempts: int) -> ConflictDecision:
    c = request.detail
    root = await scope.workspace(runtime)
    sides = {name: await _saved(root, c, name) for name in ("base", "theirs", "mine")}
    brief = {"conflict": request.text, "path": c.get("path"), "reported_by": request.sender,
             "other_writers": c.get("with", []),
             **{name: fence(text[:SIDE], f"{name} version of {c.get('path')}") for name, text in sides.items()}}
    decision, _ = await ask_for_draft(kit, runtime, ConflictDecision, prompt(PLANNER_PROMPT, FILE_INSTRUCTIONS, brief),
                                      "a decision", attempts=attempts)
    return decision or ConflictDecision(action="adapt", reason="no usable decision: the reporting worker adapts")


async def take_mine(runtime: Runtime[RunContext], request: Request) -> None:
    """The reporting worker's version replaces the file."""
    root = await scope.workspace(runtime)
    await asyncio.to_thread(resolve_conflict, root, request.detail, "mine")


async def decide_contract(kit: Kit, runtime: Runtime[RunContext], request: Request, contract: ContractRecord,
                          attempts: int) -> ContractDecision:
    brief = {"contract": {"title": contract.title, "fields": contract.fields, "version": contract.version,
                          "text": fence(contract.text, f"{contract.author}, contract"), "set_by": contract.author,
                          "touches": contract.touches},
             "work": {"task": request.task_id, "by": request.sender, "lacks": request.detail.get("missing", []),
                      "uses": request.detail.get("found", [])},
             "conflict": fence(request.text, request.sender)}
    decision, _ = await ask_for_draft(kit, runtime, ContractDecision,
                                      prompt(PLANNER_PROMPT, CONTRACT_INSTRUCTIONS, brief), "a decision",
                                      attempts=attempts)
    if decision is None or (decision.action == "update" and not decision.fields):
        return ContractDecision(action="keep", reason="no usable decision: the contract stands")
    return decision


async def update_contract(runtime: Runtime[RunContext], team: str, contract: ContractRecord, fields: list[str],
                          why: str) -> ContractRecord:
    """The contract's next version, recorded with what it was and why it changed."""
    old = f"v{contract.version} {{{', '.join(contract.fields)}}} by {contract.author}"
    new = contract.model_copy(update={"fields": fields, "version": contract.version + 1, "author": "supervisor",
                                      "history": [*contract.history, f"{old}; changed: {why}"]})
    await put_record(runtime.store, scope.thread_of(runtime), team, new)
    return new


async def off_contract(runtime: Runtime[RunContext], contract: ContractRecord, tasks: list[PlannedTask],
                       artifacts: dict[str, str]) -> dict[str, str]:
    """{task id: what differs} for the work the contract touches whose artifact does not match it."""
    root = await scope.workspace(runtime)
    out = {}
    for t in tasks:
        path = artifacts.get(t.id)
        if path and contract.touches_task(t.id, t.capability, t.assignee):
            text = await scope.read_text(root / path)
            if (m := mismatch(text, contract)) is not None:
                out[t.id] = m.describe(path)
    return out


async def contract_of(runtime: Runtime[RunContext], team: str, request: Request) -> ContractRecord | None:
    if runtime.store is None:
        return None
    found = await get_record(runtime.store, scope.thread_of(runtime), team, str(request.detail.get("contract")))
    return found if isinstance(found, ContractRecord) else None


async def resolved(runtime: Runtime[RunContext], team: str, request: Request, topic: str, resolution: str) -> None:
    """The conflict's record, with the supervisor's decision."""
    record = ConflictRecord(title=f"{topic} in {request.task_id}", text=request.text, touches=[request.task_id],
                            author="supervisor", task_id=request.task_id, sides=[request.task_id, topic],
                            resolution=resolution)
    if runtime.store is None:
        return
    old = await get_record(runtime.store, scope.thread_of(runtime), team, f"conflict:{slug(record.title)}")
    if old is not None:
        record = record.model_copy(update={"sides": getattr(old, "sides", record.sides), "author": old.author})
    await put_record(runtime.store, scope.thread_of(runtime), team, record)


async def _saved(root: Path, conflict: dict[str, Any], side: Literal["mine", "theirs", "base"]) -> str:
    """A version the workspace tool saved for the conflict; anything else (a path a fake report names) reads as
    nothing, so no file outside the run's merge records reaches a prompt."""
    try:
        return await asyncio.to_thread(saved, root, conflict, side)
    except (ToolException, KeyError, OSError, UnicodeDecodeError):
        return ""

