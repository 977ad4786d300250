"""A specialist at work: one subtask, seen through its scoped work order, with workspace tools."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime

from nodes import scope
from nodes.briefs import prompt
from nodes.models import get_model
from nodes.teams import get_team
from state.context import RunContext
from state.plan import TaskRecord, TaskStatus
from state.protocol import ArtifactMsg, Progress, ReviewRequest
from state.team import WorkOrder
from tools.workspace import workspace_tools

WORK_INSTRUCTIONS = """Do the subtask below. Write your deliverable to the file named in "path" with the \
write_file tool (read_file reads the artifacts listed under "inputs"), then answer with a short summary of what \
you delivered. Meet every acceptance criterion and address every point under "feedback"."""


async def work(state: WorkOrder, runtime: Runtime[RunContext]) -> dict:
    ctx, task = runtime.context, state.subtask
    role = get_team(ctx.team).role(task.assignee)
    journal = scope.journal(runtime)
    await journal.post(Progress(sender=role.name, recipient="supervisor", correlation_id=task.id,
                                note=f"started round {state.round}: {task.title}"))
    tools = {t.name: t for t in workspace_tools(await scope.workspace(runtime)) if t.name in role.tools}
    chat = get_model(role.model_role, ctx, attempt=scope.attempt(runtime), agent=role.name)
    model = chat.bind_tools(list(tools.values()))
    path = f"{task.id}-{task.capability}{role.artifact_suffix}"
    brief = {
        "role": role.name,
        "subtask": task.model_dump(exclude={"assignee"}),
        "round": state.round,
        "feedback": state.feedback,
        "inputs": [h.model_dump() for h in state.inputs],
        "path": path,
    }
    messages: list[BaseMessage] = prompt(role.prompt, WORK_INSTRUCTIONS, brief)
    written = await _tool_loop(model, tools, messages, ctx.max_tool_turns)
    if not written:
        reason = f"wrote no artifact in {ctx.max_tool_turns} model turns"
        await journal.post(Progress(sender=role.name, recipient="supervisor", correlation_id=task.id,
                                    note=f"failed: {reason}"))
        await scope.progress(runtime, task.id, TaskStatus.FAILED, role.name, state.round)
        return {"board": {task.id: TaskRecord(status=TaskStatus.FAILED, round=state.round, reason=reason)}}
    artifact = path if path in written else next(iter(written))
    last = messages[-1]
    summary = last.text.strip() if isinstance(last, AIMessage) and not last.tool_calls else ""
    summary = summary or f"wrote {artifact}"
    await journal.post(
        ArtifactMsg(sender=role.name, recipient="supervisor", correlation_id=task.id, path=artifact,
                    sha256=written[artifact], summary=summary, round=state.round),
        ReviewRequest(sender=role.name, recipient="reviewer", correlation_id=task.id, path=artifact,
                      round=state.round),
    )
    await scope.progress(runtime, task.id, TaskStatus.IN_REVIEW, role.name, state.round)
    record = TaskRecord(status=TaskStatus.IN_REVIEW, round=state.round, artifact=artifact, summary=summary)
    return {"board": {task.id: record}}


async def _tool_loop(
    model: Runnable[Any, AIMessage], tools: dict[str, BaseTool], messages: list[BaseMessage], turns: int
) -> dict[str, str]:
    """Let the model call its tools until it answers; returns {path: sha256} of the files it wrote."""
    written: dict[str, str] = {}
    for _ in range(turns):
        reply = await model.ainvoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            tool = tools.get(call["name"])
            if tool is None:
                result = ToolMessage(f"unknown tool {call['name']!r}; you have {sorted(tools)}",
                                     tool_call_id=call["id"], status="error")
            else:
                result = await tool.ainvoke(call)
            messages.append(result)
            if isinstance(result.artifact, dict):
                written[result.artifact["path"]] = result.artifact["sha256"]
    return written
