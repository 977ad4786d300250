"""How nodes talk to models: a role's system prompt plus one human message holding a JSON brief.

The brief is the agent's whole, scoped view of the run. A real model reads it as text;
the offline model parses it. Either way the model sees exactly the same thing.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage


def request(instructions: str, brief: dict[str, Any]) -> str:
    """The instructions followed by the brief as a JSON block."""
    return f"{instructions}\n\n```json\n{json.dumps(brief, indent=1, ensure_ascii=False)}\n```"


def prompt(system: str, instructions: str, brief: dict[str, Any]) -> list[BaseMessage]:
    return [SystemMessage(system), HumanMessage(request(instructions, brief))]
