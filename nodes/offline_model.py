"""The offline default model: a real chat model that needs no network and no key.

It reads the JSON brief our nodes put in their prompts and answers as its role would
(see `nodes.offline_roles`): with tool calls when tools are bound, with structured output
through `with_structured_output`, with token usage, an optional simulated latency, and
injectable failures for tests. It is labelled as what it is: a stand-in, not an LLM.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import tool_call as create_tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from nodes import (
    offline_consensus,
    offline_context,
    offline_debate,
    offline_event_driven,
    offline_hierarchical,
    offline_parallel,
    offline_roles,
    offline_router,
    offline_sequential,
    offline_swarm,
    offline_teams,
)
from nodes.json_tools import CATALOGUE, RESULTS
from nodes.offline_roles import Answer, Play
from nodes.schemas import openai_schemas
from state.context import MODES
from state.untrusted import unfence
from tools.context_tools import CONTEXT_TOOL_NAMES
from tools.reports import REPORT_TOOL_NAMES

OFFLINE_LABEL = "offline model (deterministic stand-in, no LLM)"
WORKSPACE = ("write_file", "read_file")
STRUCTURED: dict[str, Answer] = {
    "PlanDraft": offline_roles.plan_answer,
    "ReviewVerdict": offline_roles.review_answer,
    **offline_sequential.ANSWERS,
    **offline_parallel.ANSWERS,
    **offline_router.ANSWERS,
    **offline_debate.ANSWERS,
    **offline_consensus.ANSWERS,
    **offline_event_driven.ANSWERS,
    **offline_teams.ANSWERS,
    **offline_hierarchical.ANSWERS,
    **offline_context.ANSWERS,
}
"""Structured-output schema name -> how the offline model answers it."""
_BRIEF = re.compile(r"```json\s*(\{.*\})\s*```", re.S)


class InjectedFailure(ConnectionError):
    """Raised by the offline model when a test told it to fail (retryable, like a dropped connection)."""


class OfflineChatModel(BaseChatModel):
    """Deterministic role-playing chat model. Same seed, same answers."""

    role: str = "worker"
    seed: int = 7
    latency: float = 0.0
    draft_flaw_rate: float = 0.4
    fail: str | None = None
    """One of MODES ('raise', 'timeout', 'malformed', 'disagree', 'lie', 'complex', 'finding', 'critical', 'inject');
    with ':N' only while `attempt` <= N."""
    attempt: int = 1
    """The caller's attempt number (a node's retry count), for ':N' failures."""
    model_name: str = "offline"
    """The name it answers under ('offline', or 'offline:NAME' for a spec of that name), as prices know it."""

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """Everything that changes its answers: what the model cache keys a call on."""
        return {"model_name": self.model_name, "role": self.role, "agent": self.name, "seed": self.seed,
                "draft_flaw_rate": self.draft_flaw_rate, "fail": self.fail,
                "attempt": self.attempt}

    @property
    def _llm_type(self) -> str:
        return "troupe-offline"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=openai_schemas(tools), tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        mode = self._failure_mode()
        if mode == "timeout":
            time.sleep(3600)
        time.sleep(self.latency)
        return self._answer(messages, kwargs.get("tools") or [], mode)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        mode = self._failure_mode()
        if mode == "timeout":
            await asyncio.sleep(3600)
        await asyncio.sleep(self.latency)
        return self._answer(messages, kwargs.get("tools") or [], mode)

    def _failure_mode(self) -> str | None:
        if not self.fail:
            return None
        mode, _, upto = self.fail.partition(":")
        if upto and self.attempt > int(upto):
            return None
        if mode == "raise":
            raise InjectedFailure(f"offline model told to fail for {self.name or self.role!r} (attempt {self.attempt})")
        if mode not in MODES:
            raise ValueError(f"unknown offline failure mode {mode!r}: use one of {', '.join(MODES)} (':N' optional)")
        return mode

    def _answer(self, messages: list[BaseMessage], tools: list[dict[str, Any]], mode: str | None) -> ChatResult:
        brief = _brief(messages)
        names = [t["function"]["name"] for t in tools]
        calls: list[dict[str, Any]] = []
        content = ""
        if mode == "malformed":
            if names:
                calls = [{"name": names[0], "args": {"unexpected": "<<garbage>>"}}]
            else:
                content = "<<garbage>>"
        elif names and names[0] == "JsonTurn":  # a worker asking its tool calls as JSON (`nodes.json_tools`)
            calls = [{"name": "JsonTurn", "args": self._json_turn(brief, messages, mode)}]
        elif names and names[0] in STRUCTURED:
            play = Play(agent=self.name or self.role, seed=self.seed, mode=mode)
            calls = [{"name": names[0], "args": STRUCTURED[names[0]](brief, play)}]
        elif self.role == "worker" and offline_swarm.plays_peer(tools):  # a swarm peer: hands off, returns, answers
            calls, content = offline_swarm.turn(brief, tools, messages, Play(self.name or self.role, self.seed, mode))
        elif self.role == "worker":
            calls, content = _work(brief, tools, _answered(messages), seed=self.seed, flaw_rate=self.draft_flaw_rate,
                                   mode=mode)
            if mode == "no-tools" and calls:  # like a small real model: the calls written out, none made
                calls, content = [], "\n".join(json.dumps({"name": c["name"], "arguments": c["args"]}) for c in calls)
        elif self.role == "synthesizer" and "tasks" in brief:
            content = offline_roles.report(brief)
        else:
            content = f"[{OFFLINE_LABEL}] {self.role}: noted."
        message = AIMessage(content=content, response_metadata={"model_name": self.model_name, "finish_reason": "stop"})
        message.tool_calls = [
            create_tool_call(name=c["name"], args=c["args"], id="call_" + hashlib.sha256(
                json.dumps(c, sort_keys=True).encode()).hexdigest()[:12]) for c in calls
        ]
        prompt_tokens = sum(count_tokens(_text(m)) for m in messages)
        out_tokens = count_tokens(content + "".join(json.dumps(c["args"]) for c in calls))
        message.usage_metadata = {
            "input_tokens": prompt_tokens,
            "output_tokens": out_tokens,
            "total_tokens": prompt_tokens + out_tokens,
        }
        return ChatResult(generations=[ChatGeneration(message=message)])


    def _json_turn(self, brief: dict[str, Any], messages: list[BaseMessage], mode: str | None) -> dict[str, Any]:
        """A worker's turn as `JsonTurn`: the tools from the catalogue in the last message, what they answered
        from the results messages; then the same work as with native tool calls."""
        tools = [{"function": f} for f in json.loads(_text(messages[-1]).split(CATALOGUE, 1)[1])]
        answered: dict[str | None, str] = {}
        for m in messages:
            text = _text(m)
            if isinstance(m, HumanMessage) and text.startswith(RESULTS):
                for name, result in _RESULT.findall(text.removeprefix(RESULTS)):
                    answered[name] = unfence(result)
        def turn(known: dict[str | None, str]) -> tuple[list[dict[str, Any]], str]:
            return _work(brief, tools, known, seed=self.seed, flaw_rate=self.draft_flaw_rate, mode=mode)

        calls, content = turn(answered)
        delivered = [c for c in calls if c["name"] == "write_file" and c["args"]["path"] == brief.get("path")]
        if delivered:  # the deliverable goes in "artifact"; the summary is what it says once the file is written
            content = turn({**answered, "write_file": "written"})[1]
        return {"artifact": delivered[0]["args"]["content"] if delivered else "", "summary": content,
                "tool_requests": [{"tool": c["name"], "args": c["args"]} for c in calls if c not in delivered]}


_RESULT = re.compile(r"^([\w.-]+) \((?:success|error)\): (.*?)(?=^[\w.-]+ \((?:success|error)\): |\Z)", re.S | re.M)


def _answered(messages: list[BaseMessage]) -> dict[str | None, str]:
    """What each tool the model called answered so far, by tool name."""
    called = {c["id"]: c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    return {m.name or called.get(m.tool_call_id): str(m.text) for m in messages if isinstance(m, ToolMessage)}


def _work(brief: dict[str, Any], tools: list[dict[str, Any]], answered: dict[str | None, str], *, seed: int,
          flaw_rate: float, mode: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """A worker's turn: first every tool of its own once, then the artifact with their results, then a summary.

    The report tools are not its own: it calls them only when told to. 'complex' (a first-round subtask that
    is not itself a part of a split one): report_complexity, then an answer without writing anything;
    'finding' (first round): report_finding once, alongside its first tool calls, then the work as usual;
    'inject': the same with an injected finding (`offline_hierarchical.injected_finding`), and orders for other
    agents in its artifact and summary.
    """
    names = {t["function"]["name"] for t in tools}
    sub = brief.get("subtask") or {}
    first_round = bool(sub) and brief.get("round", 1) == 1
    if mode == "complex" and first_round and not sub.get("split_from") and "report_complexity" in names:
        if "report_complexity" not in answered:
            return [{"name": "report_complexity", "args": offline_hierarchical.complexity_report(brief)}], ""
        return [], f"Stopped without writing: {sub.get('id', 'the subtask')} is bigger than planned and will be split."
    reports = []
    if mode in ("finding", "inject") and first_round and "report_finding" in names and "report_finding" not in answered:
        finding = (offline_hierarchical.finding_for(brief) if mode == "finding"
                   else offline_hierarchical.injected_finding())
        reports = [{"name": "report_finding", "args": {"finding": finding}}]
    reports += offline_context.calls(brief, names, answered, mode)
    own = [t["function"] for t in tools if t["function"]["name"] not in (*WORKSPACE, *REPORT_TOOL_NAMES,
                                                                          *CONTEXT_TOOL_NAMES)
           and t["function"]["name"] not in answered]
    if own and "write_file" not in answered:
        calls = [{"name": f["name"], "args": offline_roles.tool_args(f.get("parameters", {}), brief)} for f in own]
        return reports + calls, ""
    if "write_file" in names and "write_file" not in answered:
        results = {name: text for name, text in answered.items()
                   if name and name not in (*WORKSPACE, *REPORT_TOOL_NAMES, *CONTEXT_TOOL_NAMES)}
        body, _ = offline_roles.draft(brief, seed=seed, flaw_rate=flaw_rate, tool_results=results, mode=mode,
                                      shared=offline_context.echo(brief, mode))
        body += offline_hierarchical.INJECTED_TAIL if mode == "inject" else ""
        return [*reports, {"name": "write_file", "args": {"path": brief["path"], "content": body}}], ""
    if reports:
        return reports, ""
    said = offline_roles.summary(brief, brief.get("path", "the artifact"))
    return [], f"{said} {offline_hierarchical.INJECTION} \x1b[2J" if mode == "inject" else said


def count_tokens(text: str) -> int:
    """A tokenizer-free estimate (~4 characters a token), so counting never needs a download."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else json.dumps(message.content)


def _brief(messages: list[BaseMessage]) -> dict[str, Any]:
    """The latest JSON brief of the conversation (a later message without one, e.g. "answer again", keeps it);
    without any, the last human message as the task."""
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    for m in reversed(humans):
        found = _BRIEF.findall(_text(m))
        if found:
            return json.loads(found[-1])
    return {"task": _text(humans[-1])} if humans else {}


