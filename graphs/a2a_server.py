"""`troupe serve`: a team as an A2A agent, on a2a-sdk's server (JSON-RPC over HTTP, protocol 1.0).

- The agent card (`/.well-known/agent-card.json`) names the team and lists one skill per role: its first capability
  line as description, its capabilities as tags.
- A message that names no task starts a run: an A2A task whose id is the run's thread id (`troupe show TASK_ID`).
  The run is driven by `graphs.runtime.Runner`, durable in its database as `troupe run`'s; its stream (the plan and
  every protocol message, the CLI's lines) comes as `working` status updates.
- A gate (final approval, plan, a subtask's authorization, an escalation) is the `input-required` state: the question
  as text, the request as data. The task's next message answers it: "approve", "reject: REASON" (a comment may
  follow "approve:" too), or a data part with the fields of `state.team.Decision` (approved, comment, edit). With
  `auto_approve` the server answers every gate itself, as `troupe run --auto-approve` does.
- The run's result is the task's artifact ("result") and the task `completed`; a person's rejection ends it
  `rejected`; a run that stopped (a node failed, out of budget) ends it `failed`, saying how to resume it.

A message the team cannot take (no task text, an unusable answer, a task whose run waits for none) gets a JSON-RPC
error before anything changes; an unknown task gets the SDK's task-not-found error. A2A's task records are kept in
memory: after a restart, a run waiting at its gate is answered with `troupe approve THREAD`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from graphs.commands import settle
from graphs.console import approval_text, describe, printable
from graphs.errors import TroupeError
from graphs.runtime import EDIT_GATES, Outcome, Runner, check_input
from graphs.views import View
from state.context import RunContext
from state.roles import Team
from state.team import Decision
from tools.a2a_client import MISSING

try:
    import uvicorn
    from a2a.helpers import get_data_parts, get_message_text, new_data_part
    from a2a.server.agent_execution import AgentExecutor, RequestContext, SimpleRequestContextBuilder
    from a2a.server.context import ServerCallContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        Message,
        Part,
        SendMessageRequest,
        Task,
        TaskState,
        TaskStatus,
    )
    from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, TransportProtocol
    from a2a.utils.errors import InvalidParamsError
    from starlette.applications import Starlette
except ImportError:
    raise TroupeError(f"troupe serve: {MISSING}") from None

APPROVE = frozenset({"approve", "approved", "accept", "yes", "ok", "lgtm"})
REJECT = frozenset({"reject", "rejected", "decline", "no"})
HOW_TO_ANSWER = ("answer 'approve' or 'reject: REASON', or send a data part with a decision: "
                 '{"approved": true|false, "comment": "...", "edit": {...}}')
GATE_HINTS = {"plan": " (an edit is the changed plan)",
              "escalation": " (approve retries the subtask, reject skips it, an edit changes its fields first)"}
RPC_PATH = "/"


def agent_card(team: Team, pattern: str, url: str, *, auto_approve: bool = False) -> AgentCard:
    """The card of `team` running `pattern`, served at `url`: one skill per role."""
    skills = [AgentSkill(id=r.name, name=r.name.replace("_", " "), tags=r.capabilities,
                         description=f"{', '.join(r.capabilities)}: {_shortened(r.prompt)}") for r in team.roles]
    gates = "the server approves at its gates" if auto_approve else "its gates ask for input (input-required)"
    return AgentCard(
        name=team.name, description=f"{team.description} (troupe: the {pattern} pattern over {len(team.roles)} "
        f"roles; {gates})", version=_version(), skills=skills,
        capabilities=AgentCapabilities(streaming=True), default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain"],
        supported_interfaces=[AgentInterface(url=url, protocol_binding=TransportProtocol.JSONRPC,
                                             protocol_version=PROTOCOL_VERSION_CURRENT)])


def decision_of(message: Message) -> Decision:
    """The answer at a gate a message gives: a data part with a decision's fields, else 'approve' / 'reject: why'."""
    for data in get_data_parts(message.parts):
        if isinstance(data, dict):
            try:
                return Decision.model_validate(data)
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(map(str, first["loc"])) or "decision"
                raise ValueError(f"unusable decision ({field}: {first['msg']}): {HOW_TO_ANSWER}") from None
    text = get_message_text(message).strip()
    found = re.match(r"(\w*)\W*(.*)", text, re.S)
    word, comment = (found[1].lower(), found[2].strip()) if found else ("", "")
    if word in APPROVE or word in REJECT:
        return Decision(approved=word in APPROVE, comment=comment)
    raise ValueError(f"unusable answer {printable(text[:60])!r}: {HOW_TO_ANSWER}")


class CheckedRequests(SimpleRequestContextBuilder):
    """Refuses what the team cannot take before any task exists or changes: a new task needs a task text a run can
    store; a message to a task must answer the gate its run waits at."""

    def __init__(self, runner: Runner, ctx: RunContext) -> None:
        super().__init__()
        self.runner, self.ctx = runner, ctx

    async def build(self, context: ServerCallContext, params: SendMessageRequest | None = None,
                    task_id: str | None = None, context_id: str | None = None,
                    task: Task | None = None) -> RequestContext:
        if params is not None:
            try:
                if task_id:
                    await self._check_answer(task_id, params.message)
                else:
                    check_input(get_message_text(params.message), self.ctx)
            except (TroupeError, ValueError) as exc:
                raise InvalidParamsError(message=str(exc)) from None
        return await super().build(context, params, task_id, context_id, task)

    async def _check_answer(self, task_id: str, message: Message) -> None:
        outcome = await self.runner.outcome(await self.runner.info(task_id))
        if outcome.status != "awaiting_approval":
            raise ValueError(f"task {task_id} waits for no input: its run is {outcome.status}")
        if decision_of(message).edit is not None and outcome.gate not in EDIT_GATES:
            raise ValueError(f"task {task_id} waits at its {outcome.gate} gate, which takes no edit: an edit answers "
                             "a plan gate (a changed plan) or an escalation (subtask fields to change)")


class Feed(View):
    """A run's stream as the lines of A2A status updates: the plan, each protocol message, the gates met."""

    interactive = False

    def __init__(self) -> None:
        super().__init__()
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()

    def show(self, event: str, payload: Any) -> None:
        if event == "message":
            self.line(describe(payload))
        elif event == "plan":
            self.line("plan: " + "; ".join(f"{t.id} {t.assignee}: {t.title}" for t in payload.tasks))

    def line(self, text: str) -> None:
        self.lines.put_nowait(printable(text))

    def gate(self, request: Any) -> None:
        self.line(f"gate: {request.get('question', 'approve?') if isinstance(request, dict) else request}")

    async def streaming(self, call: Awaitable[Outcome], updater: TaskUpdater) -> Outcome:
        """Await `call`, sending each line as a `working` status update meanwhile (all of them, even if it fails)."""
        pump = asyncio.create_task(self._pump(updater))
        try:
            outcome = await call
        except asyncio.CancelledError:  # the server stops: the run stopped after its last step
            pump.cancel()
            raise
        except Exception:
            await self._drained(pump)
            raise
        await self._drained(pump)
        return outcome

    async def _pump(self, updater: TaskUpdater) -> None:
        while (text := await self.lines.get()) is not None:
            await updater.start_work(updater.new_agent_message([Part(text=text)]))

    async def _drained(self, pump: asyncio.Task[None]) -> None:
        self.lines.put_nowait(None)
        await pump


class TeamAgent(AgentExecutor):
    """The team behind the card: each A2A task is one run, its thread id the task's id."""

    def __init__(self, runner: Runner, pattern: str, team: Team, ctx: RunContext, *, auto_approve: bool) -> None:
        self.runner, self.pattern, self.team, self.ctx, self.auto_approve = runner, pattern, team, ctx, auto_approve

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id and context.message
        thread, feed = context.task_id, Feed()
        updater = TaskUpdater(event_queue, thread, context.context_id)
        if context.current_task is None:
            await event_queue.enqueue_event(Task(id=thread, context_id=context.context_id, history=[context.message],
                                                 status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED)))
            await self._say(updater, TaskState.TASK_STATE_WORKING, f"team {self.team.name} ({self.pattern}) starts "
                            f"run {thread}")
            call = self.runner.start(self.pattern, get_message_text(context.message), self.ctx, team=self.team,
                                     thread_id=thread, listener=feed)
        else:
            decision = decision_of(context.message)  # checked by CheckedRequests
            await self._say(updater, TaskState.TASK_STATE_WORKING, f"answer taken: {_verdict(decision)}")
            call = self.runner.approve(thread, decision, listener=feed)
        try:
            outcome = await feed.streaming(self._settled(call, feed), updater)
        except TroupeError as exc:  # e.g. another process took the run over meanwhile
            await self._say(updater, TaskState.TASK_STATE_FAILED, str(exc))
            return
        except Exception as exc:  # a node failed after its retries: say so in the task; the run stays resumable
            first = str(exc).splitlines()[0] if str(exc) else ""
            await self._say(updater, TaskState.TASK_STATE_FAILED, f"run stopped: {type(exc).__name__}: {first}; it "
                            f"is saved: fix the cause, then `troupe resume {thread}`")
            return
        await self._report(updater, outcome)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Cancelling stops the run after its last finished step (`troupe resume TASK_ID` carries it on)."""
        assert context.task_id and context.context_id
        await self._say(TaskUpdater(event_queue, context.task_id, context.context_id), TaskState.TASK_STATE_CANCELED,
                        f"cancelled: the run stopped after its last finished step (`troupe resume {context.task_id}`)")

    async def _settled(self, call: Awaitable[Outcome], feed: Feed) -> Outcome:
        outcome = await call
        return await settle(self.runner, outcome, "auto", feed) if self.auto_approve else outcome

    async def _report(self, updater: TaskUpdater, outcome: Outcome) -> None:
        """Where the run ended, as the task's state: input-required, completed (with the result), rejected, failed."""
        thread = outcome.info.thread_id
        if outcome.status == "awaiting_approval":
            request = outcome.interrupt if isinstance(outcome.interrupt, dict) else {"question": str(outcome.interrupt)}
            hint = GATE_HINTS.get(outcome.gate or "", "")
            text = f"{approval_text({'question': 'Approve?', **request})}\n\nTo go on, {HOW_TO_ANSWER}{hint}."
            parts = [Part(text=text), new_data_part(to_jsonable_python({"gate": outcome.gate, "request": request}))]
            await updater.requires_input(updater.new_agent_message(parts))
        elif outcome.status in ("completed", "escalated"):
            if result := outcome.values.get("result"):
                await updater.add_artifact([Part(text=str(result))], name="result", metadata={"thread": thread},
                                           last_chunk=True)
            short = f"; not done: {outcome.shortfall}" if outcome.shortfall else ""
            await self._say(updater, TaskState.TASK_STATE_COMPLETED, f"{outcome.status} (run {thread}){short}")
        elif outcome.status == "rejected":
            decision = outcome.values.get("decision")
            why = f": {decision.comment}" if isinstance(decision, Decision) and decision.comment else ""
            await self._say(updater, TaskState.TASK_STATE_REJECTED, f"rejected at the gate{why} (run {thread})")
        else:
            how = (f"resume it with a larger budget: `troupe resume {thread} --budget-tokens N`"
                   if outcome.status == "out_of_budget" else f"`troupe resume {thread}` carries it on")
            error = f" ({outcome.error})" if outcome.error else ""
            await self._say(updater, TaskState.TASK_STATE_FAILED, f"run {outcome.status}{error}: {how}")

    @staticmethod
    async def _say(updater: TaskUpdater, state: TaskState, text: str) -> None:
        await updater.update_status(state, updater.new_agent_message([Part(text=printable(text))]))


async def serve_team(runner: Runner, pattern: str, team: Team, ctx: RunContext, *, host: str, port: int,
                     public_url: str | None = None, auto_approve: bool = False) -> int:
    """Serve `team` running `pattern` as an A2A agent on `host:port` (0: a free port) until stopped (Ctrl-C or
    SIGTERM); runs going on then stop after their last finished step, resumable with the CLI."""
    try:
        listening = socket.create_server((host, port))
    except OSError as exc:  # the port is taken, the address is not this machine's, ...
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise TroupeError(f"cannot listen on {host}:{port} ({why}): pick another --port or --host") from None
    with listening:
        bound = listening.getsockname()[1]
        url = public_url or f"http://{_host_in_url(host)}:{bound}{RPC_PATH}"
        card = agent_card(team, pattern, url, auto_approve=auto_approve)
        handler = DefaultRequestHandler(
            agent_executor=TeamAgent(runner, pattern, team, ctx, auto_approve=auto_approve),
            task_store=InMemoryTaskStore(), agent_card=card, request_context_builder=CheckedRequests(runner, ctx))
        app = Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, RPC_PATH)])
        server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                        timeout_graceful_shutdown=5))
        gates = "answered by the server (--auto-approve)" if auto_approve else "ask the client for input"
        print(f"troupe: serving team {team.name} ({pattern}) as an A2A agent at {url}\n"
              f"troupe: card at {url.rstrip('/')}/.well-known/agent-card.json; gates {gates}; runs in {runner.where}",
              flush=True)
        try:
            await server.serve(sockets=[listening])
        finally:
            await handler.aclose()
    print("troupe: stopped serving", file=sys.stderr)
    return 0


class _Server(uvicorn.Server):
    """uvicorn's server, which stops on SIGINT or SIGTERM and returns (uvicorn's own raises the signal again once
    stopped, which would cut the database's closing short)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        before = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def _verdict(decision: Decision) -> str:
    return ("approved" if decision.approved else "rejected") + (f" ({decision.comment})" if decision.comment else "")


def _shortened(text: str, most: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= most else flat[:most - 3].rstrip() + "..."


def _host_in_url(host: str) -> str:
    """How the card names the host: a wildcard address as this machine's name, an IPv6 address in brackets."""
    if host in ("", "0.0.0.0", "::"):
        return socket.getfqdn()
    return f"[{host}]" if ":" in host else host


def _version() -> str:
    try:
        return version("troupe")
    except PackageNotFoundError:
        return "0"
