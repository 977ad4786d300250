"""How a worker reports to its supervisor mid-work: a subtask bigger than planned, or a side finding.

Both are tools, so a model reports the way it does anything else, and the report is exact: the tool
message's artifact is `{"report": {"kind", "text", "parts"}}`, which the worker node hands to the
supervisor as a `state.team.Request`. The text a model reads back says what happens next.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from state.untrusted import neutralize

COMPLEXITY, FINDING = "complexity", "finding"

STOP = "reported to the supervisor: stop here, the subtask will be split into smaller ones (do not write anything)"
CARRY_ON = "reported; carry on with your subtask"


def report_complexity(reason: str, parts: list[str]) -> tuple[str, dict[str, Any]]:
    """Report that your subtask is bigger than planned and should be split before anyone works on it.

    Use this only when the subtask clearly holds several pieces of work that would each be a subtask of
    their own (too much for one deliverable, or for one round of review). Do not use it because the work is
    hard or something is unclear. After calling it, stop: write nothing and answer with one sentence; the
    supervisor splits the subtask and assigns the pieces.

    Args:
        reason: Why the subtask is bigger than planned, in one or two sentences.
        parts: The smaller pieces you see, one short imperative title each (2 to 4 of them).
    """
    parts = [p.strip() for p in parts if p.strip()]
    return STOP, report(COMPLEXITY, reason, parts)


def report_finding(finding: str) -> tuple[str, dict[str, Any]]:
    """Report something you noticed outside your subtask that the supervisor should decide about.

    For example a security hole, a bug or a risk of data loss (in your inputs, or in what your subtask
    touches), or an improvement worth making later. Report each finding once; then carry on with your own
    subtask as usual. The supervisor decides whether it is fixed now, logged for later, or ignored.

    Args:
        finding: What you found and where, in one or two sentences.
    """
    return CARRY_ON, report(FINDING, finding, [])


def report(kind: str, text: str, parts: list[str]) -> dict[str, Any]:
    """The artifact of a report tool's message; control characters (terminal escapes) removed, since the text is
    journaled and shown by `troupe show`."""
    return {"report": {"kind": kind, "text": neutralize(text).strip(), "parts": [neutralize(p) for p in parts]}}


def report_in(artifact: Any) -> dict[str, Any] | None:
    """The report a tool message's artifact carries (`{"kind", "text", "parts"}`), else None."""
    if isinstance(artifact, dict) and isinstance(artifact.get("report"), dict):
        found = artifact["report"]
        if found.get("kind") in (COMPLEXITY, FINDING) and isinstance(found.get("text"), str):
            return found
    return None


def _tool(fn: Any) -> BaseTool:
    return StructuredTool.from_function(fn, response_format="content_and_artifact", parse_docstring=True,
                                        handle_tool_error=True, handle_validation_error=True)


REPORT_TOOLS: list[BaseTool] = [_tool(report_complexity), _tool(report_finding)]
"""The tools a worker reports with; their messages' artifacts carry the report."""

REPORT_TOOL_NAMES: frozenset[str] = frozenset(t.name for t in REPORT_TOOLS)
