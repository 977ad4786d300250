"""The router's agents: the router (a cheap model) that sends a request on, and the escalation agent.

`router` classifies the request into one route (a team role) with a confidence; below the threshold the
runner-up answers too, as a second opinion. After every round of answers it checks whether another route
must take the request on (at most `max_hops` rounds); a round whose specialists all failed is handed to the
next best route by keywords. `merger` makes two or more answers into one, `escalation` decides whether a
person must take over (the run then stops at `approval_gate` with `handover_request`), `finish` settles
the result. Every decision is journaled with its reason and confidence. A model that fails, hangs or answers
garbage costs its own part (keyword routing, the best single answer, a person's look), never the run.

Routing cannot loop: a request goes on only to routes not asked yet, at most `max_hops` times. A router that names
a route already asked is not obeyed: that would ask the same specialist the same question again, so the routing
ends there with a "loop detected" CHECKPOINT that says so (structural, hence no setting to turn it off).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from langchain_core.exceptions import OutputParserException
from langgraph.errors import NodeError
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import BaseModel, ValidationError

from nodes import scope
from nodes.briefs import prompt
from nodes.guard import fenced
from nodes.kit import Kit
from state.channels import Payload, parse, payload
from state.context import RunContext
from state.loops import loop_detected
from state.plan import PlannedTask, TaskRecord, TaskStatus
from state.protocol import AnyMessage, CheckpointMsg, Progress, TaskAssign
from state.roles import ModelRole, Team
from state.router import (
    Desk,
    Escalation,
    EscalationRecord,
    HandOn,
    Hop,
    MergedAnswer,
    Route,
    RouterSettings,
    RouterState,
)
from state.team import Handoff, WorkOrder
from state.untrusted import DATA_RULE, fence

S = TypeVar("S", bound=BaseModel)
NAME = "router"

ROUTER_PROMPT = """You are the router of a team: you send each request to the one specialist best placed to \
answer it and say how sure you are. You decide from what the request says, quickly and literally."""

ROUTE_INSTRUCTIONS = """Choose the route for the request below from "routes" (each with the keywords of what it \
handles). Give your confidence (0..1), the reason (the words or facts that decided it), and the runner-up route \
with its confidence."""

HAND_ON_INSTRUCTIONS = """The routes under "answered" have answered the request below. If a part of the request \
is still unanswered and one of the routes under "left" handles it, name that route; else give route null.
""" + DATA_RULE

ANSWER_CRITERIA = ["Answers the request directly", "Says what happens next and who does it"]


def desk_for(kit: Kit, team: Team, settings: Mapping[str, Any]) -> Desk:
    """The team file's `patterns.router` section with `build()` keywords over it, resolved against the team."""
    return Desk.of(team, kit.settings(team, "router", RouterSettings, settings))


async def ask(kit: Kit, runtime: Runtime[RunContext], schema: type[S], *, agent: str, model_role: ModelRole,
              system: str, instructions: str, brief: dict[str, Any]) -> tuple[S | None, str]:
    """One structured decision: (the answer, "") or (None, why it is unusable)."""
    chat = await kit.model(model_role, runtime, agent=agent, attempt=scope.attempt(runtime))
    try:
        answer = await chat.with_structured_output(schema).ainvoke(prompt(system, instructions, brief))
        return schema.model_validate(answer), ""
    except (ValidationError, OutputParserException) as exc:
        return None, f"unusable answer: {str(exc).splitlines()[0][:160]}"


def failure_of(error: NodeError) -> str:
    """A failed node's error in one short line, for the journal."""
    return f"{type(error.error).__name__}: {str(error.error).splitlines()[0][:160] if str(error.error) else ''}"


def router(kit: Kit, settings: Mapping[str, Any], *, specialist: str, merge: str, escalate: str
           ) -> tuple[Callable[..., Awaitable[Command]], Callable[..., Awaitable[Command]]]:
    """The route node and its error handler (used when the router's model raised or hung past its retries)."""

    async def decide(state: RouterState, runtime: Runtime[RunContext], failure: str | None) -> Command:
        team = await kit.team_for(runtime)
        desk = desk_for(kit, team, settings)
        task = (state.get("task") or "").strip()
        if not task:
            raise ValueError("the request is empty: say what the customer needs")
        hops = state.get("hops") or []
        if not hops:
            new, messages = await _classify(kit, runtime, desk, task, failure)
            return await _dispatch(runtime, team, task, new, [], messages, {}, specialist)
        board = state.get("board") or {}
        done = {h["id"]: {"status": TaskStatus.DONE} for h in hops if board[h["id"]].status == TaskStatus.IN_REVIEW}
        answered = [h for h in hops if board[h["id"]].artifact and board[h["id"]].status != TaskStatus.FAILED]
        hop, message = await _hand_on(kit, runtime, desk, task, hops, board, failure)
        if hop is not None:
            inputs = [Handoff(task_id=h["id"], title=f"{h['route']}'s answer", path=board[h["id"]].artifact or "",
                              summary=board[h["id"]].summary or "") for h in answered]
            return await _dispatch(runtime, team, task, [hop], inputs, [message], done, specialist)
        await scope.journal(runtime).post(message)
        if len(answered) >= 2:
            return Command(goto=merge, update={"board": payload(done)})
        text = await read_answer(runtime, board[answered[0]["id"]].artifact) if answered else None
        return Command(goto=escalate, update={"board": payload(done), "answer": text})

    async def route(state: RouterState, runtime: Runtime[RunContext]) -> Command:
        return await decide(state, runtime, None)

    async def route_failed(state: RouterState, error: NodeError, runtime: Runtime[RunContext]) -> Command:
        return await decide(state, runtime, failure_of(error))

    return route, route_failed


async def _classify(kit: Kit, runtime: Runtime[RunContext], desk: Desk, task: str, failure: str | None
                    ) -> tuple[list[Hop], list[AnyMessage]]:
    """The first routing: the route, and the runner-up as a second opinion when the router is unsure."""
    brief = {"request": task, "routes": {name: list(kw) for name, kw in desk.routes.items()}}
    choice, why = (None, failure) if failure else await ask(
        kit, runtime, Route, agent=NAME, model_role="router", system=ROUTER_PROMPT, instructions=ROUTE_INSTRUCTIONS,
        brief=brief)
    if choice is not None and choice.route not in desk.routes:
        why = f"it chose {choice.route!r}, which is not a route"
        choice = None
    if choice is None:  # the router failed: route by keywords, with a confidence that says how clear they are
        best = desk.ranked(task)
        hits = ", ".join(best[0].hits) or "no keyword matched"
        choice = Route(route=best[0].route, confidence=best[0].share, reason=f"keyword routing ({hits}): the "
                       f"router failed ({why})")
    scored = desk.ranked(task)
    others = [s for s in scored if s.route != choice.route]
    runner, runner_conf = choice.runner_up, choice.runner_up_confidence
    if runner not in desk.routes or runner == choice.route:
        runner, runner_conf = (others[0].route, others[0].share) if others else (None, 0.0)
    hops = [Hop(id="A1", route=choice.route, kind="routed", round=1, confidence=choice.confidence,
                reason=choice.reason)]
    note = f"routed to {choice.route} ({choice.confidence:.2f}): {choice.reason}"
    if runner:
        note += f"; runner-up {runner} ({runner_conf:.2f})"
    second = ""
    if runner and choice.confidence < desk.threshold:
        second = f"confidence {choice.confidence:.2f} < threshold {desk.threshold:.2f}: {runner} gives a second opinion"
    elif others and others[0].hits and not next(s for s in scored if s.route == choice.route).hits:
        runner, runner_conf = others[0].route, others[0].share  # a sure router against the request's own words
        second = f"no keyword of {choice.route} in the request, but {', '.join(map(repr, others[0].hits))} of " \
                 f"{runner}: {runner} gives a second opinion"
    if second and runner:
        hops.append(Hop(id="A2", route=runner, kind="second opinion", round=1, confidence=runner_conf, reason=second))
        note += f"; {second}"
    return hops, [CheckpointMsg(sender=NAME, recipient="team", correlation_id="routing", label="routed", note=note)]


async def _hand_on(kit: Kit, runtime: Runtime[RunContext], desk: Desk, task: str, hops: list[Hop],
                   board: Mapping[str, TaskRecord], failure: str | None) -> tuple[Hop | None, AnyMessage]:
    """After a round of answers: the next hop (bounded by max_hops), or None with why the routing is done."""
    rnd = hops[-1]["round"]
    latest = [h for h in hops if h["round"] == rnd]
    left = [r for r in desk.routes if r not in {h["route"] for h in hops}]
    failed = [h for h in latest if board[h["id"]].status == TaskStatus.FAILED]

    def done(why: str) -> tuple[None, AnyMessage]:
        return None, CheckpointMsg(sender=NAME, recipient="team", correlation_id="routing", label="routing done",
                                   note=why)

    if rnd > desk.max_hops:
        return done(f"no hand-on: max_hops ({desk.max_hops}) reached")
    if not left:
        return done("no hand-on: every route has answered")
    if len(failed) == len(latest):  # nobody answered this round: the next best route by keywords takes it on
        nxt = desk.ranked(task, left)[0]
        why = "; ".join(f"{h['route']} failed ({board[h['id']].reason})" for h in failed)
        route, confidence, reason = nxt.route, nxt.share, f"{why}: {nxt.route} is the next best route"
    else:
        answered = [{"route": h["route"], "summary": fenced(board[h["id"]].summary, f"{h['route']}, {h['id']}")}
                    for h in hops if board[h["id"]].status != TaskStatus.FAILED]
        brief = {"request": task, "routes": {r: list(desk.routes[r]) for r in desk.routes}, "answered": answered,
                 "left": left}
        check, why = (None, failure) if failure else await ask(
            kit, runtime, HandOn, agent=NAME, model_role="router", system=ROUTER_PROMPT,
            instructions=HAND_ON_INSTRUCTIONS, brief=brief)
        if check is None:
            return done(f"no hand-on: the router's check failed ({why})")
        asked = {h["route"]: h["id"] for h in hops}
        if check.route in asked:
            return None, loop_detected(sender=NAME, recipient="team", correlation_id="routing", reason=(
                f"the router named {check.route} ({check.confidence:.2f}: {check.reason}), which was already asked "
                f"this request ({asked[check.route]}): asking it again would repeat that hop, so the routing is done"))
        if check.route is None or check.route not in left:
            named = f" (it named {check.route!r}, not a route left)" if check.route else ""
            return done(f"handled ({check.confidence:.2f}): {check.reason}{named}")
        route, confidence, reason = check.route, check.confidence, check.reason
    hop = Hop(id=f"A{len(hops) + 1}", route=route, kind="hand-on", round=rnd + 1, confidence=confidence, reason=reason)
    note = f"{' + '.join(h['route'] for h in latest)} -> {route} ({confidence:.2f}): {reason} (hop {rnd} of " \
           f"{desk.max_hops})"
    return hop, CheckpointMsg(sender=NAME, recipient="team", correlation_id="routing", label="handed on", note=note)


async def _dispatch(runtime: Runtime[RunContext], team: Team, task: str, hops: list[Hop], inputs: list[Handoff],
                    messages: list[AnyMessage], board: dict[str, Any], specialist: str) -> Command:
    """Send each new hop's specialist a work order (in parallel); TASK_ASSIGN carries the reason and confidence."""
    sends = []
    for h in hops:
        role = team.role(h["route"])
        subtask = PlannedTask(
            id=h["id"], title=f"Answer: {task[:100]}", capability=role.capabilities[0], assignee=role.name,
            description=f"Answer the request as the {role.name} specialist. The request: {task}\nYou have it "
                        f"({h['kind']}, confidence {h['confidence']:.2f}) because: {h['reason']}",
            acceptance_criteria=ANSWER_CRITERIA)
        sends.append(Send(specialist, payload(WorkOrder(subtask=subtask, round=1, inputs=inputs))))
        messages.append(TaskAssign(sender=NAME, recipient=role.name, correlation_id=h["id"], round=1,
                                   title=f"{h['kind']} ({h['confidence']:.2f}): {h['reason']}",
                                   reason=f"{h['kind']} route, confidence {h['confidence']:.2f}: {h['reason']}"))
        board[h["id"]] = TaskRecord(status=TaskStatus.IN_PROGRESS, round=1)
    await scope.journal(runtime).post(*messages)
    return Command(goto=sends, update={"hops": hops, "board": payload(board), "status": "answering"})


def specialist_failed(route: str) -> Callable[..., Awaitable[Command]]:
    """The specialist's error handler: a model that raised or hung past its retries fails this answer only.

    An error handler's writes do not follow the failed node's edges, so it goes on to `route` itself."""

    async def failed(state: Payload, error: NodeError, runtime: Runtime[RunContext]) -> Command:
        order = parse(WorkOrder, state)
        task, reason = order.subtask, failure_of(error)
        await scope.journal(runtime).post(Progress(sender=task.assignee, recipient=NAME, correlation_id=task.id,
                                                   note=f"failed: {reason}"))
        record = TaskRecord(status=TaskStatus.FAILED, round=order.round, reason=reason)
        return Command(goto=route, update={"board": payload({task.id: record})})

    return failed


async def read_answer(runtime: Runtime[RunContext], artifact: str | None) -> str:
    """An answer's text from the run's workspace (off the event loop)."""
    path = await scope.workspace(runtime) / (artifact or "")
    return (await asyncio.to_thread(path.read_text, encoding="utf-8")).strip()


# --- after the answers: merge them, decide whether a person takes over, settle the result ---

ESCALATION = "escalation"
SYNTHESIZER = "synthesizer"
ANSWER_FILE = "ANSWER.md"

MERGE_PROMPT = """You merge specialists' answers to one customer request into one answer: keep what they agree \
on, settle where they differ, and say nothing none of them said."""

MERGE_INSTRUCTIONS = """Merge the answers below into the one answer the customer gets. Say whether they agree.
""" + DATA_RULE

ESCALATION_PROMPT = """You are the escalation agent of a support team: you decide when a person must take over \
a request from the agents, following the policy exactly."""

ESCALATION_INSTRUCTIONS = """Under "policy" is when a person must take over. Decide for the request and the \
draft answer below, and give the policy point or fact that decided it.
""" + DATA_RULE

HANDOVER_QUESTION = "A person must take over this request: reply to the customer?"


def merger(kit: Kit, *, escalate: str) -> tuple[Callable[..., Awaitable[dict]], Callable[..., Awaitable[Command]]]:
    """The merge node (two or more answers made into one) and its error handler (keeps the most confident one)."""

    async def combine(state: RouterState, runtime: Runtime[RunContext], failure: str | None) -> dict:
        board = state["board"]
        hops = [h for h in state["hops"] if board[h["id"]].status == TaskStatus.DONE]
        texts = [await read_answer(runtime, board[h["id"]].artifact) for h in hops]
        brief = {"request": state["task"], "answers": [
            {"route": h["route"], "kind": h["kind"], "confidence": h["confidence"],
             "answer": fence(text, f"{h['route']}, {h['id']}")}
            for h, text in zip(hops, texts, strict=True)]}
        merged, why = (None, failure) if failure else await ask(
            kit, runtime, MergedAnswer, agent=SYNTHESIZER, model_role="synthesizer", system=MERGE_PROMPT,
            instructions=MERGE_INSTRUCTIONS, brief=brief)
        routes = " + ".join(h["route"] for h in hops)
        if merged is None:
            best = max(range(len(hops)), key=lambda i: hops[i]["confidence"])
            answer, note = texts[best], f"merge failed ({why}): kept {hops[best]['route']}'s answer"
        else:
            answer = merged.answer.strip()
            note = f"{routes} {'agree' if merged.agreed else 'differ'}: {merged.notes}"
        await scope.journal(runtime).post(CheckpointMsg(sender=SYNTHESIZER, recipient=NAME, correlation_id="answer",
                                                        label="answers merged", note=note))
        return {"answer": answer}

    async def merge(state: RouterState, runtime: Runtime[RunContext]) -> dict:
        return await combine(state, runtime, None)

    async def merge_failed(state: RouterState, error: NodeError, runtime: Runtime[RunContext]) -> Command:
        return Command(goto=escalate, update=await combine(state, runtime, failure_of(error)))

    return merge, merge_failed


def escalation(kit: Kit, settings: Mapping[str, Any], *, human: str, done: str
               ) -> tuple[Callable[..., Awaitable[Command]], Callable[..., Awaitable[Command]]]:
    """The escalation node and its error handler: a person takes over on an `escalate_on` word, when nobody
    could answer, when the escalation agent says so, or when it failed (a person looks rather than no one)."""

    async def judge(state: RouterState, runtime: Runtime[RunContext], failure: str | None) -> Command:
        desk = desk_for(kit, await kit.team_for(runtime), settings)
        task, answer = state["task"], state.get("answer")
        by, needs, reason = ESCALATION, True, ""
        if words := desk.triggers(task):
            by, reason = "escalate_on", f"the request mentions {', '.join(map(repr, words))} (escalate_on)"
        elif not answer:
            by, reason = NAME, "no specialist could answer the request"
        elif failure:
            reason = f"the escalation agent failed ({failure}); a person checks"
        else:
            brief = {"request": task, "draft_answer": fence(answer, "the specialists' answer"), "policy": desk.policy,
                     "routing": [{k: h[k] for k in ("route", "kind", "confidence")} for h in state["hops"]]}
            verdict, why = await ask(kit, runtime, Escalation, agent=ESCALATION, model_role="router",
                                     system=ESCALATION_PROMPT, instructions=ESCALATION_INSTRUCTIONS, brief=brief)
            needs, reason = (verdict.needs_human, verdict.reason) if verdict else (True, f"{why}; a person checks")
        await scope.journal(runtime).post(CheckpointMsg(
            sender=by, recipient="human" if needs else NAME, correlation_id="escalation",
            label="escalated" if needs else "not escalated", note=reason))
        record = EscalationRecord(needs_human=needs, reason=reason, by=by)
        if needs:
            return Command(goto=human, update={"escalation": record, "status": "awaiting_approval"})
        return Command(goto=done, update={"escalation": record})

    async def escalate(state: RouterState, runtime: Runtime[RunContext]) -> Command:
        return await judge(state, runtime, None)

    async def escalate_failed(state: RouterState, error: NodeError, runtime: Runtime[RunContext]) -> Command:
        return await judge(state, runtime, failure_of(error))

    return escalate, escalate_failed


def handover_request(state: RouterState) -> dict[str, Any]:
    """What the person is shown at the hand-over: the request, why, the routing and the draft answer."""
    escalated = state.get("escalation")
    routing = "; ".join(f"{h['route']} ({h['kind']}, {h['confidence']:.2f})" for h in state.get("hops") or [])
    details = [f"request: {state['task']}", f"why a person: {escalated['reason'] if escalated else '-'}",
               f"routing: {routing or '-'}", "draft answer:", state.get("answer") or "(none)", "",
               "approve with a comment: your comment is the reply; approve without one: the draft is the reply; "
               "reject: the request is closed unanswered"]
    return {"question": HANDOVER_QUESTION, "details": "\n".join(details),
            "answer": {"approved": "true|false", "comment": "your reply to the customer"}}


async def finish(state: RouterState, runtime: Runtime[RunContext]) -> dict:
    """The result: a person's reply if they wrote one, else the team's answer."""
    decision, answer = state.get("decision"), state.get("answer")
    answered = [h for h in state.get("hops") or [] if state["board"][h["id"]].status == TaskStatus.DONE]
    if decision and decision.by == "human" and decision.comment.strip():
        result, who = decision.comment.strip(), "a person (human)"
    else:
        result = answer or "No answer: no specialist could answer this request."
        who = " + ".join(f"{h['route']} ({h['confidence']:.2f})" for h in answered) or "nobody"
        who += f"; {decision.by} approved the draft" if decision else ""
    await scope.write_text(runtime, ANSWER_FILE, result + "\n")
    await scope.journal(runtime).post(CheckpointMsg(sender=NAME, recipient="user", correlation_id="result",
                                                    label="completed", note=f"answered by {who} ({ANSWER_FILE})"))
    return {"result": result, "status": "completed"}
