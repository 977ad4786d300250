"""`troupe report`: one self-contained HTML page about a run — the graph, a timeline of which agent worked when,
tokens and cost per agent, the decision log and the result. Inline SVG and CSS only: nothing is fetched when it
is viewed, and every text from the run is escaped."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from graphs.console import describe
from graphs.metrics import RunData, run_stats
from graphs.registry import builder
from state.protocol import Kind
from tools.usage import totals

DECISIONS = {Kind.TASK_ASSIGN, Kind.REVIEW_RESULT, Kind.REPLAN, Kind.CONFLICT, Kind.CHECKPOINT, Kind.BLOCKER}
"""The messages that record a choice: routing and delegation, reviews, replanning, conflicts, gates, blockers."""

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #dde}
.meta{color:#556}table{border-collapse:collapse}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eef}
th{background:#f4f6fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#4c78a8;height:10px}ol.log li{margin:2px 0;font-family:ui-monospace,monospace;font-size:12px}
pre{background:#f4f6fa;padding:10px;white-space:pre-wrap}svg text{font:12px system-ui,sans-serif}
.completed{color:#2a7a2a}.failed,.out_of_budget{color:#b02020}
"""
_PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"]


def write_report(data: RunData, path: Path) -> None:
    """Write the report of one run to `path`."""
    Path(path).write_text(render(data), encoding="utf-8")


def render(data: RunData) -> str:
    """The report's HTML."""
    info, stats = data.info, run_stats(data)
    result = data.outcome.values.get("result")
    parts = [
        f"<h1>{escape(info.pattern)} run {escape(info.thread_id)}</h1>",
        f"<p class=meta>task: {escape(info.task)}<br>team: {escape(info.context.team)}<br>status: "
        f"<b class={escape(data.outcome.status)}>{escape(data.outcome.status)}</b>"
        + (f" — not done: {escape(data.outcome.shortfall)}" if data.outcome.shortfall else "")
        + f"<br>wall {stats['wall_s']} s, {stats['calls']} model calls, {stats['tokens']:,} tokens, "
        f"{_money(stats['usd'])}, peak parallelism {stats['team_size']}</p>",
        "<h2>Graph</h2>", graph_svg(info.pattern),
        "<h2>Timeline</h2>", gantt_svg(data),
        "<h2>Tokens and cost per agent</h2>", usage_table(data),
        "<h2>Decision log</h2>", decision_log(data),
    ]
    if result:
        parts += ["<h2>Result</h2>", f"<pre>{escape(str(result))}</pre>"]
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>troupe report {escape(info.thread_id)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def graph_svg(pattern: str) -> str:
    """The pattern's graph as layered boxes: each node one row below the nodes that lead to it first."""
    drawable = builder(pattern)().compile(name=pattern).get_graph()
    names = {key: node.name for key, node in drawable.nodes.items()}
    depth = {"__start__": 0}
    frontier = ["__start__"]
    while frontier:
        nxt = []
        for edge in drawable.edges:
            if edge.source in frontier and edge.target not in depth:
                depth[edge.target] = depth[edge.source] + 1
                nxt.append(edge.target)
        frontier = nxt
    for key in names:
        depth.setdefault(key, max(depth.values()) + 1)
    rows: dict[int, list[str]] = {}
    for key in names:
        rows.setdefault(depth[key], []).append(key)
    box_w, box_h, gap_x, gap_y = 150, 30, 30, 50
    width = max(len(r) for r in rows.values()) * (box_w + gap_x) + gap_x
    at: dict[str, tuple[float, float]] = {}
    for level, keys in rows.items():
        offset = (width - len(keys) * (box_w + gap_x) + gap_x) / 2
        for i, key in enumerate(keys):
            at[key] = (offset + i * (box_w + gap_x), 20 + level * (box_h + gap_y))
    height = 20 + len(rows) * (box_h + gap_y)
    shapes = []
    for edge in drawable.edges:
        (x1, y1), (x2, y2) = at[edge.source], at[edge.target]
        dash = " stroke-dasharray='5 3'" if edge.conditional else ""
        if y2 > y1:
            shapes.append(f"<line x1='{x1 + box_w / 2}' y1='{y1 + box_h}' x2='{x2 + box_w / 2}' y2='{y2}' "
                          f"stroke='#778' marker-end='url(#arrow)'{dash}/>")
        else:  # a loop back up: bend it out to the side
            sx, ex = x1 + box_w, x2 + box_w
            shapes.append(f"<path d='M{sx} {y1 + box_h / 2} C{sx + 60} {y1} {ex + 60} {y2 + box_h} {ex} "
                          f"{y2 + box_h / 2}' fill='none' stroke='#a77' marker-end='url(#arrow)'{dash}/>")
    for key, (x, y) in at.items():
        label = names[key].strip("_")
        shapes.append(f"<rect x='{x}' y='{y}' width='{box_w}' height='{box_h}' rx='6' fill='#eef3fb' "
                      f"stroke='#4c78a8'/><text x='{x + box_w / 2}' y='{y + 19}' text-anchor='middle'>"
                      f"{escape(label[:22])}</text>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width + 80}' height='{height}' role=img "
            f"aria-label='graph of {escape(pattern)}'><defs><marker id='arrow' viewBox='0 0 10 10' refX='10' "
            f"refY='5' markerWidth='7' markerHeight='7' orient='auto'><path d='M0 0L10 5L0 10z' fill='#778'/>"
            f"</marker></defs>{''.join(shapes)}</svg>"
            "<p class=meta>dashed: a conditional edge (routing, review loops, replanning, gates)</p>")


def gantt_svg(data: RunData) -> str:
    """One row per agent, one bar per model call, on the run's wall-clock axis: overlapping bars are parallel work."""
    calls = sorted(data.calls, key=lambda c: c.started)
    if not calls:
        return "<p class=meta>no model calls were recorded</p>"
    agents = sorted({c.agent for c in calls}, key=lambda a: min(c.started for c in calls if c.agent == a))
    start, end = calls[0].started, max(c.ended for c in calls)
    span = max(end - start, 1e-3)
    label_w, plot_w, row_h = 140, 760, 24
    scale = plot_w / span
    shapes = []
    for row, agent in enumerate(agents):
        y = 24 + row * row_h
        shapes.append(f"<text x='0' y='{y + 15}'>{escape(agent[:18])}</text>")
        colour = _PALETTE[row % len(_PALETTE)]
        for c in calls:
            if c.agent != agent:
                continue
            x, w = label_w + (c.started - start) * scale, max((c.ended - c.started) * scale, 2)
            fill = "#bbb" if c.cached else ("#e45756" if not c.ok else colour)
            tip = f"{c.agent} {c.task or ''} {c.model} {c.ended - c.started:.2f} s" + (" cached" if c.cached else "")
            shapes.append(f"<rect x='{x:.1f}' y='{y + 3}' width='{w:.1f}' height='{row_h - 8}' fill='{fill}'>"
                          f"<title>{escape(tip)}</title></rect>")
    height = 24 + len(agents) * row_h + 24
    for i in range(5):
        x = label_w + plot_w * i / 4
        shapes.append(f"<line x1='{x}' y1='16' x2='{x}' y2='{height - 20}' stroke='#dde'/>"
                      f"<text x='{x}' y='{height - 4}' text-anchor='middle'>{span * i / 4:.2f} s</text>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{label_w + plot_w + 40}' height='{height}' role=img "
            f"aria-label='timeline'>{''.join(shapes)}</svg>"
            "<p class=meta>one bar per model call; grey: answered from the cache; red: failed</p>")


def usage_table(data: RunData) -> str:
    """Calls, tokens and dollars per agent, with a bar for each agent's share of the tokens."""
    used, agents = totals(data.calls)
    if not agents:
        return "<p class=meta>no model calls were recorded</p>"
    most = max(u.tokens for u in agents.values()) or 1
    rows = [f"<tr><td>{escape(agent)}</td><td class=n>{u.calls}</td><td class=n>{u.cached}</td>"
            f"<td class=n>{u.input_tokens:,}</td><td class=n>{u.output_tokens:,}</td><td class=n>{u.tokens:,}</td>"
            f"<td class=n>{_money(u.usd)}</td><td style='width:200px'><div class=bar "
            f"style='width:{100 * u.tokens / most:.0f}%'></div></td></tr>" for agent, u in sorted(agents.items())]
    rows.append(f"<tr><th>total</th><th class=n>{used.calls}</th><th class=n>{used.cached}</th>"
                f"<th class=n>{used.input_tokens:,}</th><th class=n>{used.output_tokens:,}</th>"
                f"<th class=n>{used.tokens:,}</th><th class=n>{_money(used.usd)}</th><th></th></tr>")
    return ("<table><tr><th>agent</th><th>calls</th><th>cached</th><th>input</th><th>output</th><th>tokens</th>"
            f"<th>cost</th><th>share</th></tr>{''.join(rows)}</table>")


def decision_log(data: RunData) -> str:
    """Every routing, delegation, review, replanning, conflict and gate decision, in order, with its reason."""
    chosen = [m for m in data.messages if m.kind in DECISIONS]
    if not chosen:
        return "<p class=meta>no decisions were journaled</p>"
    return "<ol class=log>" + "".join(f"<li>{escape(describe(m))}</li>" for m in chosen) + "</ol>"


def _money(usd: Any) -> str:
    return "cost unknown" if usd is None else f"${usd:,.4f}"
