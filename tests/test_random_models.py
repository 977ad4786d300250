"""A model that keeps the shape and talks nonsense: seeded random, schema-valid answers over real HTTP.

The generator must emit only instances pydantic accepts (else the fuzz tests would test the generator), and
whole hierarchical and teams runs on it must end — completed, or stopped at an escalation — never crash or hang.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
from fuzz_openai_server import FuzzServer, RandomModel, random_instance
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from graphs.runtime import Outcome, Runner
from state.context import RunContext
from state.plan import AmendDraft, FindingDecision, PlanDraft, SplitDraft
from state.team import Decision, ReviewVerdict
from state.teams import Delegation
from tools.workspace import WORKSPACE_TOOLS

TASK = "Build a REST API for todo management"
SEEDS = range(1, 6)
RUN_TIMEOUT = 90.0  # seconds per run
MAX_ANSWERS = 25  # interrupts answered per run at most
APPROVE = frozenset({"approval", "authorize", "plan"})


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"] = "dog"
    name: str = Field(min_length=2, max_length=5)


class Node(BaseModel):
    label: str
    children: list[Node] = Field(default_factory=list, max_length=3)


class Everything(BaseModel):
    """Every construct pydantic's schemas use that the generator claims to handle."""

    short: str = Field(min_length=3, max_length=8)
    colour: Colour
    mode: Literal["a", "b", "c"]
    count: int = Field(gt=-2, lt=3)
    even: int = Field(multiple_of=2, ge=0, le=10)
    both: int = Field(ge=-5, gt=0, le=4)
    ratio: float = Field(gt=0.0, lt=1.0)
    tags: list[str] = Field(min_length=2, max_length=4)
    unique: set[int] = Field(min_length=2, max_length=3)
    pair: tuple[int, str]
    scores: dict[str, int] = Field(default_factory=dict, max_length=2)
    maybe: Cat | None = None
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]
    either: int | str
    tree: Node
    when: datetime
    ident: UUID
    where: Path
    flag: bool = False


MODELS: list[type[BaseModel]] = [PlanDraft, SplitDraft, AmendDraft, ReviewVerdict, FindingDecision, Delegation,
                                 Everything]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_random_instance_validates_against_its_model(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    seen = {json.dumps(random_instance(schema, seed=s, echo=["T1", "backend"]), default=str) for s in range(300)}
    for instance in map(json.loads, seen):
        model.model_validate(instance)
    assert len(seen) > 200, "the seed must change the instance"


def test_random_instances_reach_the_corners_of_a_schema() -> None:
    """Empty strings, several subtasks, dangling ids, both union branches, optional fields left out, deep trees."""
    plans = [PlanDraft.model_validate(random_instance(PlanDraft.model_json_schema(), seed=s, echo=["T1"]))
             for s in range(200)]
    subtasks = [t for p in plans for t in p.subtasks]
    assert any(t.title == "" for t in subtasks) and any(len(p.subtasks) >= 3 for p in plans)
    assert any(d not in {t.id for t in p.subtasks} for p in plans for t in p.subtasks for d in t.depends_on)
    assert any(d == "T1" for t in subtasks for d in t.depends_on), "ids sometimes echo the prompt"
    everything = [Everything.model_validate(random_instance(Everything.model_json_schema(), seed=s))
                  for s in range(200)]
    assert {e.pet.kind for e in everything} == {"cat", "dog"}
    assert {type(e.either) for e in everything} == {int, str}
    assert any(e.maybe is None for e in everything) and any(e.maybe is not None for e in everything)
    assert any("flag" not in random_instance(Everything.model_json_schema(), seed=s) for s in range(20))
    assert max(_depth(e.tree) for e in everything) >= 3
    verdicts = [random_instance(ReviewVerdict.model_json_schema(), seed=s) for s in range(200)]
    given = {f: [v[f] for v in verdicts if f in v] for f in ("critical", "feedback")}
    blank = {f: values.count("") / len(values) for f, values in given.items()}
    assert blank["critical"] > 0.4 > 0.2 > blank["feedback"], "'empty when there is none' is empty more often"


def _depth(node: Node) -> int:
    return 1 + max((_depth(c) for c in node.children), default=0)


@pytest.fixture
def server() -> Iterator[FuzzServer]:
    srv = FuzzServer(seed=11)
    with srv:
        yield srv


def chat(server: FuzzServer, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(model="random", base_url=server.url, api_key="sk-test", max_retries=0, **kwargs)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("model", [PlanDraft, ReviewVerdict, FindingDecision, Delegation], ids=lambda m: m.__name__)
def test_chat_openai_parses_every_structured_answer(server: FuzzServer, model: type[BaseModel], method: str) -> None:
    """ChatOpenAI sends OpenAI's strict schema (every property required); every answer parses into the model."""
    structured = chat(server).with_structured_output(model, method=method)  # type: ignore[arg-type]
    answers = [structured.invoke(f"{TASK}, take {n}") for n in range(15)]
    assert all(isinstance(a, model) for a in answers)
    assert len({json.dumps(a, default=str, sort_keys=True) for a in map(dict, answers)}) == 15
    assert len(server.requests) == 15


# langchain-openai model_dumps the SDK's final ParsedChatCompletion while streaming (langchain-ai/langchain#35538).
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_streamed_answers_carry_the_instance_and_usage(server: FuzzServer) -> None:
    plan = chat(server, streaming=True, stream_usage=True).with_structured_output(PlanDraft).invoke(TASK)
    assert isinstance(plan, PlanDraft) and server.requests[-1]["stream"] is True
    chunks = list(chat(server, stream_usage=True).stream(TASK))
    assert any(c.usage_metadata for c in chunks)


def test_offered_tools_get_a_valid_call_or_text(server: FuzzServer) -> None:
    tools = chat(server).bind_tools(list(WORKSPACE_TOOLS))
    replies = [tools.invoke(f"Write notes-{n}.md with write_file") for n in range(30)]
    calls = [c for r in replies for c in r.tool_calls]
    assert any(not r.tool_calls for r in replies) and calls, "both a tool call and plain text must occur"
    paths = [(n, c["args"]["path"]) for n, r in enumerate(replies) for c in r.tool_calls if "path" in c["args"]]
    assert any(p == f"notes-{n}.md" for n, p in paths) and any(p != f"notes-{n}.md" for n, p in paths)
    schemas = {t.name: t.tool_call_schema for t in WORKSPACE_TOOLS}
    for call in calls:
        schemas[call["name"]].model_validate(call["args"])  # type: ignore[union-attr]
    assert {c["name"] for c in calls} == {"write_file", "read_file"}
    forced = chat(server).bind_tools(list(WORKSPACE_TOOLS), tool_choice="read_file")
    assert all([c["name"] for c in forced.invoke(f"read, take {n}").tool_calls] == ["read_file"] for n in range(10))
    required = chat(server).bind_tools(list(WORKSPACE_TOOLS), tool_choice="required")
    assert all(required.invoke(f"any, take {n}").tool_calls for n in range(10))


def test_answers_are_deterministic_per_seed_and_content_and_repeats_vary() -> None:
    tool = convert_to_openai_tool(WORKSPACE_TOOLS[0])
    bodies = [{"model": "m", "messages": [{"role": "user", "content": f"ask {n}"}], "tools": [tool]}
              for n in (1, 2, 1)]

    def answers(seed: int, order: list[int]) -> list[Any]:
        model = RandomModel(seed)
        return [model.complete(bodies[i])["choices"] for i in order]

    first = answers(3, [0, 1, 2])
    assert first == answers(3, [0, 1, 2])
    assert first[0] != first[2], "the same request asked again gets a new answer"
    assert answers(3, [1, 0, 2]) == [first[1], first[0], first[2]], "the order of other requests does not matter"
    assert answers(4, [0, 1, 2]) != first


@dataclass
class Ending:
    """How one run ended, for the record."""

    status: str
    kind: str | None
    done: int
    total: int
    replans: int
    skipped: int
    journal: int
    error: str | None = None

    def line(self) -> str:
        end = f"{self.status}" + (f" at {self.kind}" if self.kind else "")
        return (f"{end}; subtasks done {self.done}/{self.total}; REPLAN x{self.replans}; escalations skipped "
                f"{self.skipped}; journal {self.journal} messages" + (f"; error: {self.error}" if self.error else ""))


def interrupt_kind(payload: Any) -> str:
    """The interrupt's `kind`; a gate that names none (today's approval gates) is an approval."""
    if isinstance(payload, dict):
        return str(payload.get("kind") or ("approval" if "question" in payload else "unknown"))
    return "unknown"


async def drive(runner: Runner, pattern: str, thread: str, ctx: RunContext) -> Ending:
    """Start a run and answer its interrupts (approve gates, skip escalations) until it ends or stays put."""
    out: Outcome = await runner.start(pattern, TASK, ctx, thread_id=thread)
    skipped = 0
    for _ in range(MAX_ANSWERS):
        kind = interrupt_kind(out.interrupt) if out.status == "awaiting_approval" else None
        if kind not in APPROVE and kind != "escalation":
            break
        skipped += kind == "escalation"
        decision = Decision(approved=kind != "escalation", by="auto", comment="" if kind in APPROVE else "skip")
        out = await runner.approve(thread, decision)
    journal = await runner.journal(thread)
    board = out.values.get("board") or {}
    return Ending(status=out.status, kind=interrupt_kind(out.interrupt) if out.interrupt is not None else None,
                  done=sum(r.status == "done" for r in board.values()), total=len(board),
                  replans=sum(m.kind == "REPLAN" for m in journal), skipped=skipped, journal=len(journal),
                  error=out.error)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("pattern", ["hierarchical", "teams"])
def test_runs_on_a_random_model_end_cleanly(pattern: str, seed: int, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Completed, or stopped at an escalation: never an exception, a failed run, a hang or a silent journal."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    thread = f"{pattern}-{seed}"

    async def go(url: str) -> Ending:
        ctx = RunContext(model="openai:random", base_url=url, workspace_root=str(tmp_path / "ws"),
                         max_review_rounds=2)
        async with Runner.open(tmp_path / "troupe.sqlite") as runner:
            return await asyncio.wait_for(drive(runner, pattern, thread, ctx), RUN_TIMEOUT)

    with FuzzServer(seed=seed) as srv:
        try:
            ending = asyncio.run(go(srv.url))
        except TimeoutError:
            pytest.fail(f"{thread}: no end within {RUN_TIMEOUT:.0f} s ({len(srv.requests)} model requests)")
        except Exception as exc:  # anything escaping the Runner is the failure this test looks for
            print(f"\n{thread}: raised {type(exc).__name__}: {exc}")
            pytest.fail(f"{thread}: an exception escaped the Runner:\n{traceback.format_exc()}")
    print(f"\n{thread} ({len(srv.requests)} model requests): {ending.line()}")
    assert ending.status != "failed", f"{thread}: the run failed: {ending.error}"
    assert ending.status == "completed" or (ending.status, ending.kind) == ("awaiting_approval", "escalation"), \
        ending.line()
    assert ending.journal >= 1
