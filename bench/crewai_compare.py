"""CrewAI, bare LangGraph and troupe side by side: the same 3-agent pipeline (researcher -> writer -> editor) on a fake
model that answers at once, so a run's wall time is the framework's own overhead; and each one's import time.

- CrewAI: a sequential `Crew` of 3 agents and 3 tasks on a `crewai.BaseLLM` subclass returning canned text, in its own
  venv (`--venv`, default ~/.cache/troupe/bench/crewai-venv; made with `python3 -m venv` and `pip install crewai` on
  first use, not a project dependency), driven by a small script in a subprocess that prints JSON. Telemetry and
  tracing off, sockets blocked (the attempts are counted), its data folders in a temporary one.
- bare LangGraph: a StateGraph of 3 nodes in a line, each one call of langchain_core's `GenericFakeChatModel`;
  without a checkpointer and with an `InMemorySaver`.
- troupe: the `sequential` pattern, 3 stages and no check, on the offline model (latency 0, no model cache); compiled
  with an in-memory checkpointer and store, and through `Runner` (durable SQLite, the CLI's path). It makes 7 model
  calls a run, not 3: each stage's worker writes its artifact with a tool call, then answers; the synthesizer reports.

Per run: median (min-max) of `--runs` runs after 2 warm-ups. Import: median (min-max) of 5 fresh interpreters.

    python bench/crewai_compare.py [--runs 20] [--no-crewai] [--venv DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

sys.path.insert(0, str(Path(__file__).parent))
from common import Spread, machine, measure, plot, table

from graphs import sequential
from graphs.runtime import Runner, serializer
from nodes.offline_model import OfflineChatModel
from state.context import RunContext
from state.roles import Role, Team

ROOT, WARMUPS, IMPORTS = Path(__file__).parent.parent, 2, 5
TASK, ROLES = "Write a blog post about solar power", ("researcher", "writer", "editor")
TEAM = Team(name="bench3", description="Three stages, no check.", patterns={"sequential": {"checks": {}}},
            roles=[Role(name=n, capabilities=[c], prompt=f"You are the team's {n}.")
                   for n, c in zip(ROLES, ("research", "writing", "editing"), strict=True)])
QUIET = {"CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true", "CREWAI_TRACING_ENABLED": "false"}
CREW = r'''
import json, socket, sys, time
connects = []
def blocked(self, address):
    connects.append(str(address))
    raise OSError("network blocked by the benchmark")
socket.socket.connect = socket.socket.connect_ex = blocked
import crewai
from crewai import Agent, BaseLLM, Crew, Process, Task

class Canned(BaseLLM):
    calls: int = 0
    def call(self, messages, tools=None, callbacks=None, available_functions=None, from_task=None, from_agent=None,
             response_model=None):
        self.calls += 1
        return "Thought: I now know the final answer\nFinal Answer: canned text"
    def get_input_tokens_count(self, messages, tools=None, response_model=None):
        return sum(len(str(m)) for m in messages) // 4

llm = Canned(model="canned")
agents = [Agent(role=r, goal=f"Do the {r}'s part", backstory=f"The team's {r}.", llm=llm) for r in sys.argv[3:]]
crew = Crew(agents=agents, process=Process.sequential, tasks=[
    Task(description=f"{a.role}: {sys.argv[2]}", expected_output="text", agent=a) for a in agents])
walls = []
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter()
    crew.kickoff()
    walls.append(time.perf_counter() - t0)
print(json.dumps({"version": crewai.__version__, "walls": walls, "calls": llm.calls, "connects": connects}))
'''


def crewai(venv: Path, runs: int) -> tuple[Path | None, tuple[str, int, Spread] | None]:
    """CrewAI's venv python and its row, installing it on first use; a line says how it went (or why not)."""
    python, installed = venv / ("Scripts" if os.name == "nt" else "bin") / "python", None
    try:
        if not python.exists() or subprocess.run([python, "-c", "import crewai"], capture_output=True).returncode:
            print(f"installing CrewAI into {venv} (first use) ...", flush=True)
            t0 = time.perf_counter()
            venv.parent.mkdir(parents=True, exist_ok=True)
            for cmd in (["python3", "-m", "venv", str(venv)],
                        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "crewai"]):
                subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=1800)
            installed = time.perf_counter() - t0
    except (OSError, subprocess.SubprocessError) as exc:
        lines = str(getattr(exc, "stderr", None) or exc).strip().splitlines() or ["?"]
        why = next((line for line in lines if "ERROR" in line), lines[-1])
        print(f"CrewAI left out: installing it into {venv} failed: {why}")
        return None, None
    with tempfile.TemporaryDirectory() as tmp:  # CrewAI's data folders (task outputs db, key) in a temporary one
        env = {**os.environ, **QUIET, "XDG_DATA_HOME": tmp, "XDG_CONFIG_HOME": tmp}
        out = subprocess.run([python, "-c", CREW, str(WARMUPS + runs), TASK, *ROLES], capture_output=True, text=True,
                             env=env, cwd=tmp, stdin=subprocess.DEVNULL, timeout=900)
    if out.returncode:
        print(f"CrewAI left out: its run failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
        return python, None
    got = json.loads(out.stdout.strip().splitlines()[-1])
    how = f"installed in {installed:.0f} s" if installed is not None else "venv already there"
    print(f"CrewAI {got['version']} ({how}: {venv}); network connects it tried: {len(got['connects'])}")
    return python, (f"CrewAI {got['version']}, Process.sequential", got["calls"] // (WARMUPS + runs),
                    Spread(tuple(got["walls"][WARMUPS:])))


class Line(TypedDict, total=False):
    topic: str
    text: str


def bare_graph() -> StateGraph[Line]:
    """researcher -> writer -> editor, each one fake model call on the task and the stage before's text."""
    model = GenericFakeChatModel(messages=itertools.cycle(["canned text"]))

    def stage(role: str) -> Any:  # a LangGraph node (its protocol names the parameter `state`)
        async def node(state: Line) -> Line:
            answer = await model.ainvoke(f"You are the {role}. {state['topic']}\n{state.get('text', '')}")
            return {"text": str(answer.content)}
        return node

    g = StateGraph(Line)
    for before, role in zip((START, *ROLES), ROLES, strict=False):
        g.add_node(role, stage(role))
        g.add_edge(before, role)
    g.add_edge(ROLES[-1], END)
    return g


async def timed(run: Callable[[int], Awaitable[Any]], runs: int) -> Spread:
    """`run(i)` for the warm-ups, then measured `runs` times (i: a fresh thread id's number)."""
    n = itertools.count()
    await measure(lambda: run(next(n)), WARMUPS)
    return await measure(lambda: run(next(n)), runs)


async def in_process(runs: int, workspace: str) -> list[tuple[str, int, Spread]]:
    """(setting, model calls a run, per-run wall) of bare LangGraph and troupe."""
    calls = [0]
    answer = OfflineChatModel._answer

    def counted(self: OfflineChatModel, messages: list[BaseMessage], tools: list[dict[str, Any]], mode: str | None
                ) -> ChatResult:
        calls[0] += 1
        return answer(self, messages, tools, mode)

    OfflineChatModel._answer = counted  # type: ignore[method-assign]
    ctx = RunContext(workspace_root=workspace, latency=0.0, cache=False)
    bare, saved = bare_graph().compile(), bare_graph().compile(checkpointer=InMemorySaver())
    ours = sequential.build(team=TEAM).compile(checkpointer=InMemorySaver(serde=serializer()), store=InMemoryStore())
    rows = [("bare LangGraph, no checkpointer", 3, await timed(lambda i: bare.ainvoke({"topic": TASK}), runs)),
            ("bare LangGraph, InMemorySaver", 3, await timed(lambda i: saved.ainvoke(
                {"topic": TASK}, {"configurable": {"thread_id": f"b{i}"}}), runs))]

    async def troupe_mem(i: int) -> None:
        out = await ours.ainvoke({"task": TASK}, {"configurable": {"thread_id": f"m{i}"}}, context=ctx)
        assert out["status"] == "completed", out["status"]

    async with Runner.open(Path(workspace) / "bench.sqlite") as runner:
        async def troupe_db(i: int) -> None:
            outcome = await runner.start("sequential", TASK, ctx, team=TEAM, thread_id=f"r{i}")
            assert outcome.status == "completed", outcome.status

        for name, run in (("troupe sequential, InMemorySaver", troupe_mem), ("troupe sequential, Runner", troupe_db)):
            calls[0] = 0
            spread = await timed(run, runs)
            rows.append((name, calls[0] // (WARMUPS + runs), spread))
    OfflineChatModel._answer = answer  # type: ignore[method-assign]
    return rows


async def import_times(python: Path | None) -> list[tuple[str, Spread]]:
    """Wall seconds of `IMPORTS` fresh `python -c "import ..."` each (CrewAI's in its venv, when there is one)."""
    ours, env = Path(sys.executable), {**os.environ, **QUIET}
    cases = [("python -c pass", ours, "pass"), ("import langgraph.graph", ours, "import langgraph.graph"),
             ("import graphs.sequential (troupe)", ours, "import graphs.sequential")]
    cases += [("import crewai (its venv)", python, "import crewai")] if python else []
    return [(name, await measure(lambda py=py, code=code: asyncio.to_thread(  # type: ignore[misc]
        subprocess.run, [py, "-c", code], check=True, cwd=ROOT, env=env), IMPORTS)) for name, py, code in cases]


def ms(s: Spread) -> str:
    return Spread(tuple(v * 1000 for v in s.values)).show(1)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--no-crewai", action="store_true", help="skip CrewAI (no venv, no install)")
    p.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "troupe" / "bench" / "crewai-venv")
    args = p.parse_args()
    python, row = (None, None) if args.no_crewai else crewai(args.venv, args.runs)
    if args.no_crewai:
        print("CrewAI skipped (--no-crewai)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = ([row] if row else []) + await in_process(args.runs, tmp)
    base = next(s for name, _, s in rows if name.startswith("bare LangGraph, no"))
    print(f"\n3-agent sequential pipeline, fake model, {args.runs} runs after {WARMUPS} warm-ups; {machine()}")
    print(table(["framework, setting", "model calls/run", "per run, ms median (min-max)", "x bare LangGraph"],
                [[name, calls, ms(s), f"{s.median / base.median:.1f}"] for name, calls, s in rows]))
    print(f"\nimport time, {IMPORTS} fresh interpreters each")
    print(table(["command", "s median (min-max)"], [[name, s.show(2)] for name, s in await import_times(python)]))
    plot("crewai_compare", "3-agent pipeline on a fake model: per-run overhead", "run", "wall per run (ms)",
         {name: (range(1, len(s.values) + 1), [v * 1000 for v in s.values]) for name, _, s in rows}, logy=True)


if __name__ == "__main__":
    asyncio.run(main())
