"""File tools scoped to one run's workspace folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

from langchain_core.tools import BaseTool, StructuredTool, ToolException


def resolve(root: Path, path: str) -> Path:
    """`path` inside `root`; anything that would escape the workspace is refused."""
    target = (root / path).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ToolException(f"path {path!r} is outside the workspace")
    return target


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def workspace_tools(root: Path) -> list[BaseTool]:
    """`write_file` and `read_file` for the workspace at `root`.

    `write_file` reports what it wrote as the tool message's artifact
    (`{"path", "sha256"}`), so the caller knows exactly which files an agent produced.
    Writing the same content twice is harmless, so a re-run step stays idempotent.
    """

    def write_file(path: str, content: str) -> tuple[str, dict[str, str]]:
        """Write a UTF-8 text file in the workspace (creating folders), replacing any old content."""
        target = resolve(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        rel = target.relative_to(root.resolve()).as_posix()
        digest = sha256(content)
        return f"wrote {len(content.encode())} bytes to {rel}", {"path": rel, "sha256": digest}

    def read_file(path: str) -> str:
        """Read a UTF-8 text file from the workspace."""
        target = resolve(root, path)
        if not target.is_file():
            raise ToolException(f"no file {path!r} in the workspace")
        return target.read_text(encoding="utf-8")

    return [
        StructuredTool.from_function(write_file, response_format="content_and_artifact", handle_tool_error=True,
                                     handle_validation_error=True),
        StructuredTool.from_function(read_file, handle_tool_error=True, handle_validation_error=True),
    ]
