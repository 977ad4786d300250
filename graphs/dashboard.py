"""The live board `troupe run` shows at a terminal: the team at a glance instead of a line per message.

A header (pattern, thread, elapsed time, the step and the nodes that just ran, tasks by status: "3 of 5 done, 1 in
review, 1 blocked"), the tasks with their agent and status, tokens and estimated dollars per agent and in all, and
the last few protocol messages. It is redrawn from the graph's stream as events arrive (rich's `Live`), never by
polling; text from models passes `printable` like everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from graphs.console import printable
from graphs.views import View

STYLES = {"done": "green", "in_review": "cyan", "in_progress": "yellow", "assigned": "yellow", "failed": "red",
          "blocked": "red", "changes requested": "magenta", "escalated": "red", "split": "dim", "pending": "dim"}


class Board(View):
    """Tasks by status and agent, tokens and cost per agent, elapsed time: redrawn live."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console()
        self.notes: list[str] = []
        self.live: Live | None = None

    def show(self, event: str, payload: Any) -> None:
        self._refresh()

    def line(self, text: str) -> None:
        self.notes = [*self.notes[-2:], f"{self.elapsed():6.1f}s  {printable(text)}"]
        self._refresh()

    def gate(self, request: Any) -> None:
        self.close()  # the question is printed below the last board, and asked there
        super().gate(request)

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.close()
        yield

    def close(self) -> None:
        if self.live is not None:
            self.live.update(self.render(), refresh=True)
            self.live.stop()
            self.live = None

    def _refresh(self) -> None:
        if self.live is None:
            self.live = Live(self.render(), console=self.console, refresh_per_second=8, transient=False)
            self.live.start()
        else:
            self.live.update(self.render())

    def render(self) -> Group:
        tally = self.tally
        counts = tally.counts()
        done = counts.get("done", 0)
        others = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()) if s != "done")
        head = Text.assemble(("troupe ", "bold"), f"{self.elapsed():.1f}s  step {tally.step}",
                             f" ({', '.join(tally.nodes)})" if tally.nodes else "",
                             f"   {done} of {len(tally.tasks)} tasks done" if tally.tasks else "",
                             f", {others}" if others else "")
        tasks = Table(title="tasks", expand=True, show_edge=False)
        for column in ("id", "agent", "status", "title"):
            tasks.add_column(column, overflow="ellipsis", no_wrap=True, ratio=4 if column == "title" else None)
        for row in list(tally.tasks.values())[-15:]:
            tasks.add_row(printable(row.id), printable(row.agent), Text(row.status, style=STYLES.get(row.status, "")),
                          printable(row.title))
        usage = Table(title="usage", expand=True, show_edge=False)
        for column in ("agent", "calls", "tokens", "est. cost"):
            usage.add_column(column, justify="left" if column == "agent" else "right")
        for agent, used in sorted(tally.agents.items()):
            usage.add_row(printable(agent), f"{used.calls}" + (f" ({used.cached} cached)" if used.cached else ""),
                          f"{used.tokens:,}", "?" if used.usd is None else f"${used.usd:,.4f}")
        usage.add_row(Text("all", style="bold"), f"{tally.run.calls}", f"{tally.run.tokens:,}",
                      "?" if tally.run.usd is None else f"${tally.run.usd:,.4f}")
        recent = Text("\n".join([*self.notes, *tally.recent]), overflow="ellipsis", no_wrap=True)
        return Group(head, tasks, usage, recent)
