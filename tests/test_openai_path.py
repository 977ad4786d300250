"""The real-model path over real HTTP: ChatOpenAI against the OpenAI-compatible offline server."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from nodes.models import get_model
from state.context import RunContext
from state.plan import PlanDraft

try:
    from openai_server import OpenAICompatServer
except ImportError:  # tests/ became a package
    from tests.openai_server import OpenAICompatServer  # type: ignore[no-redef]

TASK = "Build a REST API for todo management"


class ReviewVerdict(BaseModel):
    """The reviewer's judgement of an artifact."""

    approved: bool
    unmet_criteria: list[str]
    feedback: str


def write_file(path: str, content: str) -> str:
    """Write an artifact to the workspace."""
    return f"wrote {path}"


def brief(payload: dict[str, Any]) -> str:
    return "Here is your brief:\n```json\n" + json.dumps(payload) + "\n```"


SUBTASK = {
    "id": "T1",
    "title": "Design the data model and API contract for todo management",
    "description": "Decide resources and endpoints.",
    "capability": "design",
    "depends_on": [],
    "acceptance_criteria": ["Lists every resource", "Defines error responses"],
}


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


def chat(server: OpenAICompatServer, model: str, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=server.url, api_key="sk-test", max_retries=0, **kwargs)


def test_structured_output_default_method_sends_json_schema(server: OpenAICompatServer) -> None:
    plan = chat(server, "gpt-4o").with_structured_output(PlanDraft).invoke(TASK)

    assert isinstance(plan, PlanDraft)
    assert len(plan.subtasks) >= 4
    assert {s.capability for s in plan.subtasks} >= {"design", "backend", "testing"}
    (request,) = server.requests
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["name"] == "PlanDraft"
    assert "tools" not in request


def test_structured_output_function_calling_sends_forced_tool(server: OpenAICompatServer) -> None:
    artifact = "# Contract\n- [x] Lists every resource\n- [x] Defines error responses\n"
    prompt = brief({"artifact": artifact, "acceptance_criteria": ["Lists every resource", "Defines error responses"]})
    verdict = chat(server, "reviewer").with_structured_output(ReviewVerdict, method="function_calling").invoke(prompt)

    assert verdict == ReviewVerdict(approved=True, unmet_criteria=[], feedback="Meets every acceptance criterion.")
    (request,) = server.requests
    assert [t["function"]["name"] for t in request["tools"]] == ["ReviewVerdict"]
    assert request["tool_choice"] == {"type": "function", "function": {"name": "ReviewVerdict"}}
    assert "response_format" not in request


def test_reviewer_role_inferred_from_tool_name(server: OpenAICompatServer) -> None:
    prompt = brief({"artifact": "nothing useful", "acceptance_criteria": ["Covers invalid input"]})
    verdict = chat(server, "gpt-4o").with_structured_output(ReviewVerdict, method="function_calling").invoke(prompt)

    assert isinstance(verdict, ReviewVerdict)
    assert not verdict.approved
    assert verdict.unmet_criteria == ["Covers invalid input"]


def test_worker_tool_call_then_summary(server: OpenAICompatServer) -> None:
    llm = chat(server, "worker").bind_tools([write_file])
    messages: list[Any] = [HumanMessage(brief({"subtask": SUBTASK, "path": "T1-design.md", "round": 2}))]

    first = llm.invoke(messages)
    assert isinstance(first, AIMessage)
    (call,) = first.tool_calls
    assert call["name"] == "write_file"
    assert call["args"]["path"] == "T1-design.md"
    assert "- [x] Lists every resource" in call["args"]["content"]
    assert first.response_metadata["finish_reason"] == "tool_calls"

    messages += [first, ToolMessage("wrote T1-design.md", tool_call_id=call["id"])]
    second = llm.invoke(messages)
    assert not second.tool_calls
    assert "Wrote T1-design.md" in second.content
    sent = server.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == call["id"] == sent[2]["tool_call_id"]


def test_stream_assembles_content_and_usage(server: OpenAICompatServer) -> None:
    report = {"task": TASK, "plan_summary": "Four steps.",
              "tasks": [{"id": "T1", "title": "Design", "assignee": "architect", "status": "done", "path": "T1.md"}]}
    chunks = list(chat(server, "synthesizer", stream_usage=True).stream(brief(report)))

    assert len(chunks) > 3  # really streamed in pieces
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert isinstance(full, AIMessageChunk)
    assert isinstance(full.content, str) and full.content.startswith(f"# {TASK}")
    assert "T1 Design (architect, done) -> `T1.md`" in full.content
    assert full.usage_metadata is not None and full.usage_metadata["total_tokens"] > 0
    (request,) = server.requests
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}


def test_astream_tool_call_chunks(server: OpenAICompatServer) -> None:
    llm = chat(server, "worker", stream_usage=True).bind_tools([write_file])

    async def collect() -> AIMessageChunk | None:
        full: AIMessageChunk | None = None
        async for c in llm.astream(brief({"subtask": SUBTASK, "path": "T1-design.md"})):
            assert isinstance(c, AIMessageChunk)
            full = c if full is None else full + c
        return full

    full = asyncio.run(collect())

    assert full is not None and full.usage_metadata and full.usage_metadata["total_tokens"] > 0
    (call,) = full.tool_calls
    assert call["name"] == "write_file" and call["args"]["path"] == "T1-design.md"
    assert server.requests[0]["stream"] is True


# langchain-openai model_dumps the SDK's final ParsedChatCompletion while streaming (langchain-ai/langchain#35538).
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_streamed_structured_output(server: OpenAICompatServer) -> None:
    chunks = list(chat(server, "planner").with_structured_output(PlanDraft).stream(TASK))

    assert isinstance(chunks[-1], PlanDraft) and len(chunks[-1].subtasks) >= 4
    assert server.requests[0]["stream"] is True
    assert server.requests[0]["response_format"]["type"] == "json_schema"


def test_get_model_talks_to_the_server(server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = get_model("planner", RunContext(model="openai:planner", base_url=server.url), agent="supervisor")

    assert isinstance(model, ChatOpenAI)
    plan = model.with_structured_output(PlanDraft).invoke(TASK)
    assert isinstance(plan, PlanDraft) and len(plan.subtasks) >= 4
    assert server.requests[0]["model"] == "planner"


def test_model_field_picks_the_role_and_usage_is_reported(server: OpenAICompatServer) -> None:
    answer = chat(server, "router").invoke("hello")

    assert answer.text.endswith("router: noted.")
    assert answer.response_metadata["token_usage"]["total_tokens"] > 0
    assert answer.usage_metadata is not None and answer.usage_metadata["input_tokens"] > 0


def test_models_endpoint_and_bad_json(server: OpenAICompatServer) -> None:
    with urllib.request.urlopen(server.url + "/models") as r:
        assert [m["id"] for m in json.load(r)["data"]] == ["planner", "worker", "reviewer", "synthesizer", "router"]

    bad = urllib.request.Request(server.url + "/chat/completions", data=b"{not json", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad)
    assert err.value.code == 400
    assert json.load(err.value)["error"]["type"] == "invalid_request_error"
    assert server.requests == []
