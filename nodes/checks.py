"""The checks after the work, before a person approves: is the assembled result coherent, and does it work?

- Coherence (`tools.coherence`): names in the artifacts that drift from the interface contracts' (`userId` for
  `user_id`), terminology spelled two ways across artifacts, and what ruff reports on Python artifacts.
- Verification (`tools.verify`): Python artifacts compiled and the tests the team wrote run, confined, holding
  the exclusive resource "test-suite".

Problems go back as fix-up rounds of the subtasks whose artifacts they blame, with concrete instructions (at most
`fix_rounds` times, and not once the budget is wrapping up); then the run goes on to the approval gate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from nodes import scope, spending
from nodes.kit import Kit
from nodes.supervisor import NAME, settings
from state.channels import payload
from state.context import RunContext
from state.plan import TaskStatus
from state.protocol import AnyMessage, CheckpointMsg, Replan
from state.records import ContractRecord
from state.team import Ledger, TeamState
from tools.coherence import Drift, LintFinding, RuffError, fix_up, lint, naming_drift
from tools.context_store import read_records
from tools.verify import Failure, verify

TEST_SUITE = "test-suite"
"""The exclusive resource the verifier holds while the team's tests run."""

Problem = Drift | LintFinding | Failure


def checker(kit: Kit, overrides: Mapping[str, Any] | None = None
            ) -> Callable[..., Awaitable[Command[Literal["dispatch", "approve"]]]]:
    """The check node of the hierarchical graph: fix-up rounds back to `dispatch`, else on to `approve`."""

    async def check(state: TeamState, runtime: Runtime[RunContext]) -> Command[Literal["dispatch", "approve"]]:
        plan, board = state["plan"], dict(state["board"])
        assert plan is not None, "check runs after plan"
        team = await kit.team_for(runtime)
        found = settings(kit, team, overrides)
        ledger = (state.get("ledger") or Ledger()).model_copy(deep=True)
        owners = {board[t.id].artifact: t.id for t in plan.tasks
                  if board[t.id].status == TaskStatus.DONE and board[t.id].artifact}
        problems, notes = await _problems(runtime, team.name, [p for p in owners if p], found.test_timeout)
        messages: list[AnyMessage] = []
        blamed = {owners[p]: fix_up(p, items) for p, items in problems.items() if p in owners}
        budget = await kit.budget_for(runtime)
        if blamed and ledger.checks < found.fix_rounds and not await spending.wrapping_up(runtime, budget):
            ledger.checks += 1
            update = {}
            for task_id, text in blamed.items():
                rec = board[task_id]
                update[task_id] = rec.model_copy(update={"status": TaskStatus.ASSIGNED, "feedback": [text]})
                messages.append(Replan(sender=NAME, recipient=plan.get(task_id).assignee, correlation_id=task_id,
                                       action="fix-up", reason=text, tasks=[task_id]))
            messages.insert(0, CheckpointMsg(sender=NAME, recipient="team", correlation_id="checks",
                                             label="checks failed", note="; ".join(notes)))
            await scope.journal(runtime).post(*messages)
            return Command(goto="dispatch", update={"board": payload(update), "ledger": ledger})
        files = {task_id: path for path, task_id in owners.items()}
        left = (f"; left after {ledger.checks} fix-up rounds: "
                f"{', '.join(f'{t} ({files[t]})' for t in sorted(blamed))}" if blamed else "")
        done = sum(r.status == TaskStatus.DONE for r in board.values())
        messages += [CheckpointMsg(sender=NAME, recipient="team", correlation_id="checks",
                                   label="checks passed" if not blamed else "checks failed",
                                   note="; ".join(notes) + left),
                     CheckpointMsg(sender=NAME, recipient="approver", correlation_id="approval",
                                   label="approval requested", note=f"{done}/{len(board)} subtasks done")]
        await scope.journal(runtime).post(*messages)
        return Command(goto="approve", update={"ledger": ledger, "status": "awaiting_approval"})

    return check


async def _problems(runtime: Runtime[RunContext], team: str, files: Sequence[str], timeout: float
                    ) -> tuple[dict[str, list[Problem]], list[str]]:
    """The problems by artifact, and one note per check saying what it found."""
    root = await scope.workspace(runtime)
    texts = {f: await scope.read_text(root / f) for f in files}
    contracts = [r for r in await read_records(runtime.store, scope.thread_of(runtime), team, "contract")
                 if isinstance(r, ContractRecord)]
    found: list[Problem] = list(naming_drift(texts, [f for c in contracts for f in c.fields]))
    notes = [f"coherence: {len(found)} naming drift(s) in {len(files)} artifacts"]
    try:
        linted = await lint(root, files)
        found += linted
        notes.append(f"ruff: {len(linted)} finding(s)")
    except RuffError as exc:
        notes.append(f"ruff: not run ({exc})")
    if any(f.endswith(".py") for f in files):
        async with scope.holding(runtime, [TEST_SUITE], task_id="checks", agent=NAME, lead=NAME):
            failed = await verify(root, files, timeout=timeout)
        found += failed
        notes.append(f"tests: {len(failed)} failure(s)")
    by_file: dict[str, list[Problem]] = {}
    for p in found:
        by_file.setdefault(p.file, []).append(p)
    return by_file, notes

