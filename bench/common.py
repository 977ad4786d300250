"""What every benchmark shares: repeats summarized as median (min-max), tables, and PNG plots.

Plots need matplotlib (`pip install -e '.[bench]'`); without it a script prints its tables and says that it
wrote no plot. Plots go to `bench/results/` (or `$TROUPE_BENCH_OUT`).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUT = Path(os.environ.get("TROUPE_BENCH_OUT", Path(__file__).parent / "results"))


@dataclass(frozen=True)
class Spread:
    """Repeated measurements of one thing."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, digits: int = 3) -> str:
        """'1.234 (1.200-1.300)'."""
        return f"{self.median:.{digits}f} ({min(self.values):.{digits}f}-{max(self.values):.{digits}f})"


async def measure(fn: Callable[[], Awaitable[Any]], repeats: int) -> Spread:
    """Wall seconds of `repeats` awaits of `fn()`, one after another."""
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await fn()
        walls.append(time.perf_counter() - t0)
    return Spread(tuple(walls))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, numbers right-aligned (paste it into the README as it is)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join([line[0], "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|", *line[1:]])


def machine() -> str:
    """What the figures were taken on."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def plot(name: str, title: str, xlabel: str, ylabel: str, series: dict[str, tuple[Sequence[float], Sequence[float]]],
         *, logx: bool = False, logy: bool = False) -> Path | None:
    """A line plot of `series` ({label: (xs, ys)}) as `OUT/name.png`; None (and said) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no plot {name}.png: matplotlib is not installed; pip install -e '.[bench]')")
        return None
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}")
    return path
