"""Plain-text views of a run for the terminal: the live feed, the approval request, `show` and `runs`.

Plain lines rather than a redrawn screen, so the feed reads the same in a terminal, a pipe or a CI log.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from state.plan import Plan
from state.protocol import AnyMessage, Kind, parse_message


class Feed:
    """Prints the team at work as it happens: the plan, then every protocol message."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.t0 = time.monotonic()

    def __call__(self, mode: str, chunk: Any) -> None:
        if mode == "custom" and "message" in chunk:
            self.line(describe(parse_message(chunk["message"])))
        elif mode == "updates":
            for update in chunk.values():  # whichever node made the plan
                if isinstance(update, dict) and isinstance(update.get("plan"), Plan):
                    self.plan(update["plan"])

    def line(self, text: str) -> None:
        print(f"{time.monotonic() - self.t0:6.1f}s  {text}", file=self.out, flush=True)

    def plan(self, plan: Plan) -> None:
        width = id_width(plan)
        for t in plan.tasks:
            after = f" (after {', '.join(t.depends_on)})" if t.depends_on else ""
            print(f"         {t.id:<{width}}{t.assignee:<12} {t.title}{after}", file=self.out, flush=True)


def id_width(plan: Plan) -> int:
    """Column width for a plan's task ids (T1 ... or longer names, as teams of teams use)."""
    return max([4, *(len(t.id) + 2 for t in plan.tasks)])


def describe(m: AnyMessage) -> str:
    """One line for one protocol message."""
    head = f"[{m.sender} -> {m.recipient}] {m.kind.value} {m.correlation_id}"
    match m.kind:
        case Kind.TASK_ASSIGN:
            extra = f" (round {m.round}: {'; '.join(m.feedback)})" if m.feedback else ""
            return f"{head}: {m.title}{extra}"
        case Kind.PROGRESS:
            return f"{head}: {m.note}"
        case Kind.BLOCKER:
            return f"{head}: {m.reason}"
        case Kind.ARTIFACT:
            return f"{head}: {m.path} (round {m.round})"
        case Kind.REVIEW_REQUEST:
            return f"{head}: {m.path}"
        case Kind.REVIEW_RESULT:
            verdict = "approved" if m.approved else "changes requested"
            return f"{head}: {verdict} - {m.feedback}"
        case Kind.CONFLICT:
            return f"{head}: {m.topic} - {m.description}"
        case Kind.CHECKPOINT:
            return f"{head}: {m.label}" + (f" - {m.note}" if m.note else "")
        case Kind.EVENT:
            return f"{head}: {m.topic}#{m.seq} {m.payload}" + (f" (caused by {m.cause})" if m.cause else "")
        case _:
            return f"{head}: {m.model_dump_json(exclude={'id', 'sender', 'recipient', 'correlation_id', 'kind'})}"


def approval_text(request: dict[str, Any]) -> str:
    """What a person is asked at an interrupt: the question, the tasks (if any) and any details."""
    lines = [request["question"]]
    lines += [f"  {t['id']:<4}{t['status']:<10}{t['assignee']:<12} {t['title']}"
              + (f" -> {t['artifact']}" if t.get("artifact") else "") + (f" ({t['reason']})" if t.get("reason") else "")
              for t in request.get("tasks", [])]
    if request.get("details"):
        lines += [f"  {line}" for line in str(request["details"]).splitlines()]
    if request.get("error"):
        lines.append(f"  note: {request['error']}")
    return "\n".join(lines)
