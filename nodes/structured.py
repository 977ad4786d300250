"""One structured answer from an agent: its chat model with structured output, or the caller's agent serving
the role, asked for JSON (a brought agent has no structured-output mode of its own)."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel

from nodes import scope
from nodes.kit import Kit
from state.context import RunContext
from state.roles import Role

S = TypeVar("S", bound=BaseModel)

AGENT_FORMAT = "Answer with one JSON object only, following this JSON schema:\n"


async def ask(kit: Kit, runtime: Runtime[RunContext], schema: type[S], agent: str, role: Role | None,
               messages: list[BaseMessage]) -> S:
    """One structured answer from the agent's model, or from the caller's agent serving the role (asked for JSON)."""
    if agent not in kit.agents:
        chat = await kit.model(role.model_role if role else "reviewer", runtime, agent=agent, role=role,
                         attempt=scope.attempt(runtime))
        return schema.model_validate(await chat.with_structured_output(schema).ainvoke(messages))
    ask = f"{messages[-1].text}\n\n{AGENT_FORMAT}{json.dumps(schema.model_json_schema())}"
    result = await kit.agents[agent].ainvoke({"messages": [HumanMessage(f"{messages[0].text}\n\n{ask}")]})
    replies = result.get("messages", []) if isinstance(result, dict) else []
    final = next((m.text for m in reversed(replies) if isinstance(m, AIMessage) and not m.tool_calls), "")
    found = re.search(r"\{.*\}", final, re.S)
    if not found:
        raise ValueError("the agent's final message holds no JSON object")
    return schema.model_validate_json(found.group(0))
