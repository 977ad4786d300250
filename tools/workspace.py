"""File tools scoped to one run's workspace folder.

The tools are built once; each call finds its workspace in the config it is invoked with
(`workspace_config(root)`), so the same tools serve troupe's workers and any agent a user brings
into a team (give `WORKSPACE_TOOLS` to your agent, and its files land in the run's workspace).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException

WORKSPACE_KEY = "troupe_workspace"
"""Config key (under 'configurable') that names the folder the workspace tools work in."""


def workspace_config(root: Path, config: RunnableConfig | None = None) -> RunnableConfig:
    """`config` with the workspace folder added, for invoking the workspace tools or an agent that uses them."""
    base = dict(config or {})
    return {**base, "configurable": {**base.get("configurable", {}), WORKSPACE_KEY: str(root)}}  # type: ignore[typeddict-item]


def resolve(root: Path, path: str) -> Path:
    """`path` inside `root`; anything that would escape the workspace is refused."""
    target = (root / path).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ToolException(f"path {path!r} is outside the workspace")
    return target


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _root(config: RunnableConfig) -> Path:
    folder = (config.get("configurable") or {}).get(WORKSPACE_KEY)
    if not folder:
        raise ToolException("no workspace: invoke the tool with workspace_config(root)")
    return Path(folder)


def write_file(path: str, content: str, config: RunnableConfig) -> tuple[str, dict[str, str]]:
    """Write a UTF-8 text file in the workspace (creating folders), replacing any old content."""
    root = _root(config)
    target = resolve(root, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    rel = target.relative_to(root.resolve()).as_posix()
    return f"wrote {len(content.encode())} bytes to {rel}", {"path": rel, "sha256": sha256(content)}


def read_file(path: str, config: RunnableConfig) -> str:
    """Read a UTF-8 text file from the workspace."""
    target = resolve(_root(config), path)
    if not target.is_file():
        raise ToolException(f"no file {path!r} in the workspace")
    return target.read_text(encoding="utf-8")


def _tool(fn: Any, **options: Any) -> BaseTool:
    return StructuredTool.from_function(fn, handle_tool_error=True, handle_validation_error=True, **options)


WORKSPACE_TOOLS: tuple[BaseTool, ...] = (_tool(write_file, response_format="content_and_artifact"), _tool(read_file))
"""`write_file` reports what it wrote as the tool message's artifact (`{"path", "sha256"}`), so the caller
knows exactly which files an agent produced. Writing the same content twice is harmless, so a re-run step
stays idempotent."""
