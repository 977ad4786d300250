"""`troupe stats`: what runs cost and delivered, from their model-call records and journals.

Per run and per agent: latency (median seconds a model call took), throughput (outputs per minute of wall time;
an output is an artifact delivered, or where a pattern delivers none, an answered call), tokens and estimated
dollars, efficiency (outputs per 1,000 tokens), reliability (the share of model calls that succeeded, and the
failed ones that were retried). Across runs of one task with one pattern: scalability, throughput(n) /
throughput(1), where n is the team's peak parallelism (the most agents calling their models at once) and the
baseline is the run with the smallest n.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from graphs.runtime import Outcome, RunInfo
from state.budget import Call, Usage
from state.protocol import AnyMessage, Kind
from tools.usage import totals


@dataclass
class RunData:
    """What is known of one run."""

    info: RunInfo
    outcome: Outcome
    calls: list[Call]
    messages: list[AnyMessage]


def peak(calls: list[Call]) -> int:
    """The most calls in flight at one moment."""
    edges = sorted([(c.started, 1) for c in calls] + [(c.ended, -1) for c in calls], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _usage(u: Usage) -> dict[str, Any]:
    return {"calls": u.calls, "cached": u.cached, "failed": u.failed, "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens, "tokens": u.tokens, "usd": u.usd}


def _latency(calls: list[Call]) -> float | None:
    times = [c.ended - c.started for c in calls if c.ok and not c.cached]
    return round(statistics.median(times), 4) if times else None


def _rates(outputs: int, wall: float, used: Usage, calls: list[Call]) -> dict[str, Any]:
    retried = sum(not c.ok for c in calls)
    return {
        "latency_s": _latency(calls),
        "throughput_per_min": round(outputs / wall * 60, 3) if wall > 0 else None,
        "efficiency_per_1k_tokens": round(outputs / used.tokens * 1000, 3) if used.tokens else None,
        "success_rate": round((len(calls) - retried) / len(calls), 4) if calls else None,
        "retries": retried,
    }


def run_stats(d: RunData) -> dict[str, Any]:
    """One run: wall time, outputs, usage, rates, peak parallelism, and the same per agent."""
    used, agents = totals(d.calls)
    stamps = [m.timestamp for m in d.messages] + [t for c in d.calls for t in (c.started, c.ended)]
    wall = max(stamps) - min(stamps) if stamps else 0.0
    artifacts = [m for m in d.messages if m.kind == Kind.ARTIFACT]
    outputs = len(artifacts) or sum(c.ok for c in d.calls)
    per_agent = {}
    for agent, u in sorted(agents.items()):
        mine = [c for c in d.calls if c.agent == agent]
        delivered = sum(m.sender == agent for m in artifacts) if artifacts else sum(c.ok for c in mine)
        per_agent[agent] = {"outputs": delivered, **_usage(u), **_rates(delivered, wall, u, mine),
                            "busy_s": round(sum(c.ended - c.started for c in mine), 3)}
    return {"thread_id": d.info.thread_id, "pattern": d.info.pattern, "task": d.info.task, "status": d.outcome.status,
            "wall_s": round(wall, 3), "outputs": outputs, "team_size": peak(d.calls), **_usage(used),
            **_rates(outputs, wall, used, d.calls), "agents": per_agent}


def scalability(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each (pattern, task) run at two or more team sizes: throughput by team size against the smallest."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        if r["throughput_per_min"]:
            groups.setdefault((r["pattern"], r["task"]), []).append(r)
    out = []
    for (pattern, task), members in groups.items():
        best: dict[int, float] = {}
        for r in members:
            best[r["team_size"]] = max(best.get(r["team_size"], 0.0), r["throughput_per_min"])
        if len(best) < 2:
            continue
        base_n = min(best)
        out.append({"pattern": pattern, "task": task, "baseline_team_size": base_n,
                    "points": [{"team_size": n, "throughput_per_min": t, "scalability": round(t / best[base_n], 3)}
                               for n, t in sorted(best.items())]})
    return out


def report(found: list[RunData]) -> dict[str, Any]:
    """Every run's stats, usage per agent over all of them, and scalability."""
    runs = [run_stats(d) for d in found]
    _, agents = totals([c for d in found for c in d.calls])
    return {"runs": runs, "agents": {a: _usage(u) for a, u in sorted(agents.items())}, "scalability": scalability(runs)}


def text(doc: dict[str, Any]) -> str:
    """The stats as tables for a terminal."""
    lines = []
    for r in doc["runs"]:
        lines += [f"{r['thread_id']}  {r['pattern']}  {r['status']}  wall {r['wall_s']} s, {r['outputs']} outputs, "
                  f"team size {r['team_size']}",
                  f"  {_row(r)}",
                  f"  {'agent':<16} {'out':>4} {'calls':>5} {'cached':>6} {'tokens':>8} {'usd':>9} {'lat s':>6} "
                  f"{'/min':>7} {'/1k tok':>7} {'ok':>5}"]
        for agent, a in r["agents"].items():
            lines.append(f"  {agent:<16} {a['outputs']:>4} {a['calls']:>5} {a['cached']:>6} {a['tokens']:>8} "
                         f"{_money(a['usd']):>9} {_num(a['latency_s']):>6} {_num(a['throughput_per_min']):>7} "
                         f"{_num(a['efficiency_per_1k_tokens']):>7} {_pct(a['success_rate']):>5}")
        lines.append("")
    if not doc["runs"]:
        lines.append("no runs yet")
    for s in doc["scalability"]:
        lines.append(f"scalability of {s['pattern']} on {s['task']!r} (throughput / throughput at team size "
                     f"{s['baseline_team_size']}):")
        lines += [f"  team size {p['team_size']:>3}: {p['throughput_per_min']:>8} /min  x{p['scalability']}"
                  for p in s["points"]]
    return "\n".join(lines).rstrip()


def _row(r: dict[str, Any]) -> str:
    return (f"calls {r['calls']} ({r['cached']} cached, {r['retries']} retried), tokens {r['tokens']:,}, "
            f"{_money(r['usd'])}, latency {_num(r['latency_s'])} s, throughput {_num(r['throughput_per_min'])} /min, "
            f"efficiency {_num(r['efficiency_per_1k_tokens'])} per 1k tokens, success {_pct(r['success_rate'])}")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _money(x: float | None) -> str:
    return "unknown" if x is None else f"${x:,.4f}"
