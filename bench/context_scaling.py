"""Context scaling: a worker's prompt tokens as the team grows, scoped context vs the whole history.

For each team size N, runs the hierarchical pattern offline (deterministic model, no network) with N roles of
made-up capabilities (skill_01..skill_NN), so the planner chains N subtasks, T2 building on T1 and so on. The team
file seeds the shared context store with 3 records per role (a decision, a contract, a constraint), each touching
only that role's capability: the store holds 3N records and the journal grows with every step, while each worker
has 3 records that concern it. The run stops at the approval gate.

- scoped: troupe as it is. The input tokens of every worker model call (model_role "worker"), as recorded in
  the run's store (`tools.usage.read_calls`), as counted by the offline model (`count_tokens`, ~4 chars a token).
- whole history: each worker's brief is rebuilt from the plan, the board and the journal exactly as
  `nodes.worker` builds it (role, subtask, round, feedback, fenced inputs, path, scoped "context"), and checked
  against its recorded first call; then "context" gets every record in the store when its TASK_ASSIGN was posted
  and "history" every journal message before that TASK_ASSIGN (as JSON). Both briefs go through `nodes.briefs.prompt`
  with the worker's instructions, counted with `count_tokens`; each of the worker's calls is counted as recorded
  plus the difference (its later tool-loop turns resend the same brief; what it wrote is left as it was).

    python bench/context_scaling.py [--agents 2 5 10 15 20] [--plot context_scaling.png]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from graphs.runtime import Runner
from nodes.briefs import prompt
from nodes.offline_model import count_tokens
from nodes.shared_context import entry
from nodes.worker import SHARED_INSTRUCTIONS, WORK_INSTRUCTIONS
from state.context import RunContext
from state.protocol import TaskAssign
from state.records import AnyRecord, ConstraintRecord, ContractRecord, DecisionRecord
from state.roles import Role, Team
from state.untrusted import fence
from tools.context_store import read_records, scoped
from tools.usage import read_calls

TASK = "Assemble the field notes of the survey"
INSTRUCTIONS = WORK_INSTRUCTIONS + SHARED_INSTRUCTIONS  # the hierarchical pattern's workers use the shared context


def team_of(n: int) -> Team:
    roles = [Role(name=f"agent_{i:02d}", capabilities=[f"skill_{i:02d}"], prompt=f"You are specialist {i:02d}.")
             for i in range(1, n + 1)]
    records: list[AnyRecord] = []
    for i in range(1, n + 1):
        skill = [f"skill_{i:02d}"]
        records += [
            DecisionRecord(title=f"skill {i:02d} format", touches=skill, reason="Readers compare sites side by side.",
                           text=f"The skill {i:02d} part is a table of findings with one row per site."),
            ContractRecord(title=f"skill {i:02d} row", touches=skill, fields=["site_id", "finding", "confidence"],
                           text=f"Each skill {i:02d} row has site_id, finding and confidence, in that order."),
            ConstraintRecord(title=f"skill {i:02d} sources", touches=skill,
                             text=f"Skill {i:02d} findings cite only the survey's own field sheets."),
        ]
    return Team(name="scaling", description="a chain of specialists", roles=roles, context=records)


def tokens(system: str, brief: dict[str, Any]) -> int:
    return sum(count_tokens(m.text) for m in prompt(system, INSTRUCTIONS, brief))


async def measure(n: int) -> dict[str, Any]:
    team = team_of(n)
    with tempfile.TemporaryDirectory() as tmp:
        async with Runner.open(Path(tmp) / "bench.sqlite") as runner:
            t0 = time.perf_counter()
            outcome = await runner.start("hierarchical", TASK, RunContext(workspace_root=tmp, draft_flaw_rate=0.0),
                                         team=team, thread_id="t")
            wall = time.perf_counter() - t0
            calls = [c for c in await read_calls(runner.store, "t") if c.model_role == "worker"]
            journal = await runner.journal("t")
            records = await read_records(runner.store, "t", team.name)
    plan, board = outcome.values["plan"], outcome.values["board"]
    scoped_tokens, whole_tokens, mismatched = [], [], 0
    for i, msg in enumerate(journal):
        if not isinstance(msg, TaskAssign):
            continue
        task, role = plan.get(msg.correlation_id), team.role(msg.recipient)
        inputs = [{"task_id": d, "title": plan.get(d).title, "path": board[d].artifact or "",
                   "summary": fence(board[d].summary or "", f"{d} summary")} for d in task.depends_on]
        known = [r for r in records if r.updated <= msg.timestamp]
        brief = {"role": role.name, "subtask": task.model_dump(exclude={"assignee", "model"}), "round": msg.round,
                 "feedback": msg.feedback, "inputs": inputs, "path": role.artifact_path(task.id, task.capability)}
        if found := scoped(known, task.id, task.capability, role.name):
            brief["context"] = [entry(r) for r in found]
        whole = brief | {"context": [entry(r) for r in known],
                         "history": [m.model_dump(mode="json") for m in journal[:i]]}
        mine = [c.input_tokens for c in calls if c.task == task.id and c.agent == role.name]
        mismatched += bool(mine) and mine[0] != tokens(role.prompt, brief)
        extra = tokens(role.prompt, whole) - tokens(role.prompt, brief)
        scoped_tokens += mine
        whole_tokens += [t + extra for t in mine]
    return {"agents": n, "records": len(records), "journal": len(journal), "scoped": scoped_tokens,
            "whole": whole_tokens, "mismatched": mismatched, "wall": wall, "status": outcome.status}


def plot(rows: list[dict[str, Any]], path: str) -> None:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"\nmatplotlib is not installed: no plot written to {path}")
        return
    agents = [r["agents"] for r in rows]
    for key, label in (("scoped", "scoped context (troupe)"), ("whole", "whole history")):
        plt.plot(agents, [statistics.median(r[key]) for r in rows], marker="o", label=label)
    plt.xlabel("agents in the team")
    plt.ylabel("worker prompt tokens (median)")
    plt.legend()
    plt.savefig(path, dpi=120)
    print(f"\nplot written to {path}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 5, 10, 15, 20])
    parser.add_argument("--plot", help="write a PNG plot here (needs matplotlib)")
    args = parser.parse_args()
    print(f"{'agents':>6} {'records':>7} {'journal':>7} {'worker calls':>12} {'scoped median (max)':>20} "
          f"{'whole history median (max)':>27} {'ratio':>6} {'run (s)':>7}")
    rows = []
    for n in args.agents:
        r = await measure(n)
        rows.append(r)
        scoped_mid, whole_mid = statistics.median(r["scoped"]), statistics.median(r["whole"])
        scoped_cell, whole_cell = f"{scoped_mid:.0f} ({max(r['scoped'])})", f"{whole_mid:.0f} ({max(r['whole'])})"
        print(f"{n:>6} {r['records']:>7} {r['journal']:>7} {len(r['scoped']):>12} {scoped_cell:>20} {whole_cell:>27} "
              f"{whole_mid / scoped_mid:>5.1f}x {r['wall']:>7.2f}")
        if r["mismatched"] or r["status"] != "awaiting_approval":
            print(f"       warning: {r['mismatched']} rebuilt briefs differ from the recorded call; run {r['status']}")
    first, last = rows[0], rows[-1]
    print(f"\ngrowth {first['agents']} -> {last['agents']} agents:")
    for key, label in (("scoped", "scoped"), ("whole", "whole history")):
        mid, top = (f(last[key]) / f(first[key]) for f in (statistics.median, max))
        print(f"  {label:<13} median {mid:.2f}x, max {top:.2f}x")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    asyncio.run(main())
