"""The synthesizer: assembles the approved work into the run's final result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from langgraph.runtime import Runtime

from nodes import scope
from nodes.briefs import prompt
from nodes.guard import fenced
from nodes.kit import Kit
from state.context import RunContext
from state.protocol import CheckpointMsg
from state.team import WorkState
from state.untrusted import DATA_RULE

NAME = "synthesizer"
RESULT_FILE = "SUMMARY.md"

SYNTHESIZER_PROMPT = """You assemble a team's finished work into one clear report for the person who asked."""

SYNTHESIS_INSTRUCTIONS = """Write the final report in Markdown: what was delivered (each subtask with its file), \
how the parts fit together, and what is still open: every subtask not done, with its reason.""" + "\n" + DATA_RULE


def synthesizer(kit: Kit) -> Callable[..., Awaitable[dict]]:
    """The synthesis node: the approved work assembled into the run's result."""

    async def synthesize(state: WorkState, runtime: Runtime[RunContext]) -> dict:
        plan, board, decision = state["plan"], state["board"], state.get("decision")
        assert plan is not None
        brief = {
            "task": state["task"],
            "plan_summary": plan.summary,
            "tasks": [{"id": t.id, "title": t.title, "assignee": t.assignee, "status": board[t.id].status.value,
                       "path": board[t.id].artifact, "summary": fenced(board[t.id].summary, f"{t.assignee}, {t.id}"),
                       "reason": fenced(board[t.id].reason, f"the record of {t.id}")}
                      for t in plan.tasks],
            "comment": decision.comment if decision else "",
        }
        model = await kit.model("synthesizer", runtime, agent=NAME, attempt=scope.attempt(runtime))
        reply = await model.ainvoke(prompt(SYNTHESIZER_PROMPT, SYNTHESIS_INSTRUCTIONS, brief))
        result = reply.text.strip()
        await scope.write_text(runtime, RESULT_FILE, result + "\n")
        await scope.journal(runtime).post(
            CheckpointMsg(sender=NAME, recipient="user", correlation_id="result", label="completed",
                          note=f"final report written to {RESULT_FILE}")
        )
        return {"result": result, "status": "completed"}

    return synthesize

