"""The approval gate: the run stops (LangGraph `interrupt`) until a person approves or rejects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import ValidationError

from nodes import scope
from state.context import RunContext
from state.protocol import CheckpointMsg
from state.team import Decision, TeamState

QUESTION = "Approve the team's work for final assembly?"


def approval_request(state: TeamState) -> dict:
    """What the approver is shown: the question and where every subtask stands."""
    plan = state["plan"]
    assert plan is not None
    board = state["board"]
    return {
        "question": QUESTION,
        "tasks": [{"id": t.id, "title": t.title, "assignee": t.assignee, "status": board[t.id].status.value,
                   "artifact": board[t.id].artifact, "reason": board[t.id].reason} for t in plan.tasks],
        "answer": {"approved": "true|false", "comment": "optional text"},
    }


def ask_person(shown: dict[str, Any]) -> Decision:
    """Stop the run (`interrupt`) until a person's answer is a usable `Decision`; an unusable one asks again."""
    while True:
        answer = interrupt(shown)
        try:
            return Decision.model_validate(answer)
        except ValidationError:
            shown = {**shown, "error": f"unusable answer {answer!r}: send {{'approved': true|false}}"}


Reopen = Callable[[Any, Runtime[RunContext]], Awaitable[str | None]]
"""Whether the work must go on before anyone is asked (e.g. a scope change came in): the node to go to, or None."""


def approval_gate(*, approved: str, request: Callable[[Any], dict[str, Any]] = approval_request,
                  reopen: Reopen | None = None) -> Callable[..., Awaitable[Command]]:
    """The gate node: on approval the run goes on to `approved`, on rejection it ends.

    `request(state)` is what the person is shown: a dict with a "question", and optionally "tasks"
    (id, title, assignee, status, artifact, reason) and "details" (free text); its "kind" is "approval".
    `reopen`, checked first (also when a waiting gate is resumed), sends the run back to work instead.
    """

    async def approve(state: Any, runtime: Runtime[RunContext]) -> Command:
        if reopen is not None and (back := await reopen(state, runtime)):
            return Command(goto=back, update={"status": "working"})
        decision = ask_person({"kind": "approval", **request(state)})
        label = "approved" if decision.approved else "rejected"
        await scope.journal(runtime).post(
            CheckpointMsg(sender=decision.by, recipient="supervisor", correlation_id="approval", label=label,
                          note=decision.comment)
        )
        if decision.approved:
            return Command(goto=approved, update={"decision": decision})
        return Command(goto=END, update={"decision": decision, "status": "rejected"})

    return approve
