"""Tool and output schemas in the OpenAI format, converted once per object.

Converting a LangChain tool or a pydantic class builds its JSON schema through pydantic: a millisecond or more
each time. Every worker binds its role's tools and every reviewer asks for the same verdict schema, so the
conversion is done once per object and the dict reused (a model's `bind_tools` passes such dicts on as they are).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool

_cache: dict[int, tuple[Any, dict[str, Any]]] = {}
_lock = threading.Lock()
MAX_CACHED = 4096
"""Objects remembered at most (MCP tools are new objects for every connection)."""


def openai_schema(tool: Any) -> dict[str, Any]:
    """`convert_to_openai_tool(tool)`, once per object (the cache holds the object, so its id is not reused)."""
    found = _cache.get(id(tool))
    if found is not None and found[0] is tool:
        return found[1]
    schema = tool if isinstance(tool, dict) and tool.get("type") == "function" else convert_to_openai_tool(tool)
    with _lock:
        if len(_cache) >= MAX_CACHED:
            _cache.clear()
        _cache[id(tool)] = (tool, schema)
    return schema


def openai_schemas(tools: Iterable[Any]) -> list[dict[str, Any]]:
    return [openai_schema(t) for t in tools]
