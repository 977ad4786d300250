"""How a driven run is shown: one `View` per output mode, fed by the graph's stream (updates and custom events).

- `View`: plain lines, one per protocol message, readable the same in a terminal, a pipe or a CI log;
- `graphs.dashboard.Board`: the live board at a terminal (tasks by status and agent, tokens and cost, time);
- `Quiet` (`--quiet`): only where the run ended;
- `JsonLines` (`--json-lines`): one JSON object per line for other programs (`EVENTS` says which);
- `JsonOutcome` (`--json`): only the final outcome, as one JSON object.

`Tally` is what every view knows of a run: its tasks, its agents' usage and its last step, built from the same
events for every pattern (a pattern's board updates where it has one, else its protocol messages).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from pydantic_core import to_jsonable_python

from graphs.console import approval_text, describe, id_width, printable
from graphs.runtime import Outcome
from state.budget import Call, Usage
from state.channels import parse
from state.plan import Plan, TaskRecord, TaskStatus
from state.protocol import AnyMessage, Kind, parse_message
from state.team import BoardUpdate

EVENTS = ("note", "plan", "step", "message", "usage", "gate", "outcome")
"""The `event` of each `--json-lines` object: a line of the feed (`text`), the plan (`plan`), the nodes of a
super-step that finished (`nodes`), a protocol message (`message`), one model call (`call`: agent, model, tokens,
dollars, cached), a gate that waits for a person (`request`), where the run ended (`outcome`). Each has `t`, seconds
since the command started."""


@dataclass
class Row:
    """One task of the board: a subtask, a stage, a part, a hand-off, an event delivery."""

    id: str
    title: str = ""
    agent: str = ""
    status: str = "pending"


@dataclass
class Tally:
    """What is known of a run from its stream: tasks, usage per agent, the latest step and messages."""

    tasks: dict[str, Row] = field(default_factory=dict)
    agents: dict[str, Usage] = field(default_factory=dict)
    run: Usage = field(default_factory=Usage)
    step: int = 0
    nodes: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)

    def plan(self, plan: Plan) -> None:
        for t in plan.tasks:
            row = self.tasks.setdefault(t.id, Row(t.id))
            row.title, row.agent = t.title, t.assignee

    def board(self, board: BoardUpdate) -> None:
        """A board update: a record or a patch (JSON, as nodes write them) per task; patches may not name a status."""
        for task_id, record in board.items():
            status = record.status if isinstance(record, TaskRecord) else record.get("status")
            if status is not None:
                self.tasks.setdefault(task_id, Row(task_id)).status = TaskStatus(status).value

    def message(self, m: AnyMessage) -> None:
        self.recent = [*self.recent[-4:], describe(m)]
        status = {Kind.TASK_ASSIGN: "in_progress", Kind.ARTIFACT: "in_review", Kind.BLOCKER: "blocked"}.get(m.kind)
        if m.kind == Kind.REVIEW_RESULT:
            status = "done" if m.approved else "changes requested"
        elif m.kind == Kind.PROGRESS and m.note.startswith("failed"):
            status = "failed"
        if status is None:
            return
        row = self.tasks.setdefault(m.correlation_id, Row(m.correlation_id))
        row.status = status
        if m.kind == Kind.TASK_ASSIGN:
            row.agent, row.title = m.recipient, row.title or m.title
        elif not row.agent:
            row.agent = m.sender

    def call(self, call: Call) -> None:
        self.run.add(call)
        self.agents.setdefault(call.agent, Usage()).add(call)

    def feed(self, mode: str, chunk: Any) -> list[tuple[str, Any]]:
        """Take one streamed event; what it was, as (event, payload) pairs."""
        seen: list[tuple[str, Any]] = []
        if mode == "custom" and "message" in chunk:
            m = parse_message(chunk["message"])
            self.message(m)
            seen.append(("message", m))
        elif mode == "custom" and "usage" in chunk:
            call = Call.model_validate(chunk["usage"])
            self.call(call)
            seen.append(("usage", call))
        elif mode == "updates" and isinstance(chunk, dict):
            self.step += 1
            self.nodes = [n for n in chunk if not n.startswith("__")]
            for update in chunk.values():
                if isinstance(update, dict) and isinstance(update.get("plan"), dict | Plan):
                    plan = parse(Plan, update["plan"])
                    self.plan(plan)
                    seen.append(("plan", plan))
                if isinstance(update, dict) and isinstance(update.get("board"), dict):
                    self.board(update["board"])
            seen.append(("step", self.nodes))
        return seen

    def counts(self) -> dict[str, int]:
        """Tasks by status."""
        out: dict[str, int] = {}
        for row in self.tasks.values():
            out[row.status] = out.get(row.status, 0) + 1
        return out


class View:
    """Plain lines: the plan, then every protocol message, then where the run ended."""

    interactive = True
    """Whether a person may be asked at a gate through this view."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.t0 = time.monotonic()
        self.tally = Tally()

    def __call__(self, mode: str, chunk: Any) -> None:
        for event, payload in self.tally.feed(mode, chunk):
            self.show(event, payload)

    def show(self, event: str, payload: Any) -> None:
        if event == "message":
            self.line(describe(payload))
        elif event == "plan":
            width = id_width(payload)
            for t in payload.tasks:
                after = f" (after {', '.join(t.depends_on)})" if t.depends_on else ""
                self.print(printable(f"         {t.id:<{width}}{t.assignee:<12} {t.title}{after}"))

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def line(self, text: str) -> None:
        self.print(f"{self.elapsed():6.1f}s  {printable(text)}")

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def gate(self, request: Any) -> None:
        self.print(approval_text(request))

    @contextmanager
    def paused(self) -> Iterator[None]:
        """While a person is asked at the terminal."""
        yield

    def close(self) -> None:
        """The run stopped streaming."""

    def outcome(self, outcome: Outcome) -> None:
        info = outcome.info
        hint = next_step(outcome)
        if outcome.status in ("completed", "escalated", "failed") and outcome.values.get("result"):
            self.print(f"\n{printable(str(outcome.values['result']))}")
        elif hint:
            self.print(f"\n{hint}")
        if outcome.shortfall:
            self.print(f"not done: {printable(outcome.shortfall)}")
        if self.tally.run.calls:
            self.print(f"usage (this command): {usage_text(self.tally.run)}")
        self.print(f"status: {outcome.status}\nthread: {info.thread_id}\nworkspace: {info.workspace}")


class Quiet(View):
    """Only where the run ended (and what to do next)."""

    def show(self, event: str, payload: Any) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def gate(self, request: Any) -> None:
        pass

    def outcome(self, outcome: Outcome) -> None:
        if hint := next_step(outcome):
            self.print(hint)
        self.print(f"status: {outcome.status}\nthread: {outcome.info.thread_id}\nworkspace: {outcome.info.workspace}")


class JsonLines(View):
    """One JSON object per line: `{"event": ..., "t": ..., ...}` (see `EVENTS`)."""

    interactive = False

    def show(self, event: str, payload: Any) -> None:
        key = {"plan": "plan", "step": "nodes", "message": "message", "usage": "call"}[event]
        self.emit(event, **{key: payload})

    def line(self, text: str) -> None:
        self.emit("note", text=text)

    def gate(self, request: Any) -> None:
        self.emit("gate", request=request)

    def outcome(self, outcome: Outcome) -> None:
        self.emit("outcome", outcome=outcome_doc(outcome, self.tally))

    def emit(self, event: str, **payload: Any) -> None:
        self.print(json.dumps({"event": event, "t": round(self.elapsed(), 3), **to_jsonable_python(payload)}))


class JsonOutcome(Quiet):
    """Only the final outcome, as one JSON object."""

    interactive = False

    def outcome(self, outcome: Outcome) -> None:
        self.print(json.dumps(outcome_doc(outcome, self.tally), indent=2))


def choose_view(output: str | None) -> View:
    """The view an output flag asks for: the live board at a terminal, plain lines elsewhere."""
    if output == "quiet":
        return Quiet()
    if output == "json-lines":
        return JsonLines()
    if output == "json":
        return JsonOutcome()
    if sys.stdout.isatty():
        from graphs.dashboard import Board

        return Board()
    return View()


def outcome_doc(outcome: Outcome, tally: Tally | None = None) -> dict[str, Any]:
    """Where a run ended, for programs: status, why not everything was done, its result, what it used."""
    info = outcome.info
    doc: dict[str, Any] = {
        "thread_id": info.thread_id, "pattern": info.pattern, "task": info.task, "status": outcome.status,
        "shortfall": outcome.shortfall, "gate": outcome.gate, "request": outcome.interrupt, "error": outcome.error,
        "result": outcome.values.get("result"), "workspace": str(info.workspace),
    }
    if tally is not None:
        doc["usage"] = tally.run.model_dump() | {"tokens": tally.run.tokens}
        doc["tasks"] = tally.counts()
    return to_jsonable_python(doc)


def next_step(outcome: Outcome) -> str | None:
    """What a person does next with a run that waits, or that ran out of budget."""
    thread = outcome.info.thread_id
    if outcome.gate == "plan":
        return (f"waiting for approval of the plan: `troupe approve {thread}` (or --reject, or --edit FILE with the "
                "changed plan)")
    if outcome.gate == "escalation":
        return (f"waiting at an escalation: `troupe approve {thread}` retries, --reject skips, --edit FILE changes "
                "the subtask, then retries")
    if outcome.status == "awaiting_approval":
        return f"waiting for approval: `troupe approve {thread}` (or --reject)"
    if outcome.status == "out_of_budget":
        question = outcome.interrupt.get("question", "") if isinstance(outcome.interrupt, dict) else ""
        return f"{question} Raise it to go on: `troupe resume {thread} --budget-tokens N` (or --budget-usd X)"
    return None


def usage_text(used: Usage) -> str:
    """'12 calls (3 cached), 4,210 tokens, $0.0123'."""
    cached = f" ({used.cached} cached)" if used.cached else ""
    cost = "price unknown" if used.usd is None else f"${used.usd:,.4f}"
    return f"{used.calls} calls{cached}, {used.tokens:,} tokens, {cost}"
