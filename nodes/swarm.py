"""The swarm's agents: peers that hand work to each other, with no controller above them.

`peer` plays the agent that has the work now (the top frame): its chat model is bound with its role's tools
and the hand-off tools `handoff_tools` makes (`transfer_to_<peer>` for every other peer, `return_to_<caller>`
when it was handed work and must give a result back). Its ordinary tool calls run first and their outputs are
kept in its frame, so a hand-off in the same reply loses nothing; then the hand-offs are carried out with
`Command`: one transfer goes to the `peer` node again with the new agent on top, several go out at once as
`Send`s to `helper` and all their results come back to the agent that handed off (the join is the `returns`
channel). Every hand-off and return is journaled; a chain longer than `max_handoffs` trips the circuit breaker:
the turn ends "escalated" with the whole chain in a BLOCKER. Loop detection (`stop_on_repeat`, on by default)
trips it at once, with a "loop detected" CHECKPOINT first, when a pair hands the work back and forth
(A -> B -> A -> B) or a hand-off repeats one of the turn's earlier ones: the same agent handing the same peers the
same request (A -> B -> C -> A -> B). A model that raises or hangs past its retries fails its own part only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_config
from langgraph.errors import NodeError
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, Send
from pydantic import BaseModel, ValidationError

from nodes import scope
from nodes.briefs import prompt
from nodes.guard import flag, screen
from nodes.kit import Kit
from nodes.router import failure_of
from nodes.worker import agent_turn, call_tool
from state.channels import Payload, parse
from state.context import RunContext
from state.loops import earlier, loop_detected, signature
from state.protocol import AnyMessage, ArtifactMsg, Blocker, CheckpointMsg, Progress, TaskAssign
from state.roles import Role, Team
from state.swarm import (
    KEPT_CHARS,
    KEPT_OUTPUTS,
    RETURN_PREFIX,
    TRANSFER_PREFIX,
    Frame,
    GiveBack,
    HelperOrder,
    PeerResult,
    Swarm,
    SwarmSettings,
    SwarmState,
    ToolOutput,
    Transfer,
    loop_in,
)
from state.untrusted import DATA_RULE, fence
from tools.workspace import workspace_config

INSTRUCTIONS = """You are one of a team of peers; nobody directs you. Do the request below if it is yours: write \
your deliverable to the file named in "path" with write_file. Hand work on when it is a peer's: transfer_to_<peer> \
hands the whole request over (come_back false: they answer the user) or a part of it (come_back true: their result \
comes back to you and you carry on). Call several transfer tools in one reply to hand parts to several peers at \
once; you get all their results back under "results". If "caller" is set, give your result back with \
return_to_<caller> when you are done. "kept" is what your own tools answered earlier. Otherwise reply with the \
final answer to the user.
""" + DATA_RULE


def swarm_for(kit: Kit, team: Team, overrides: Mapping[str, Any]) -> Swarm:
    """The team file's `patterns.swarm` section with `build()` keywords over it, resolved against the team."""
    return Swarm.of(team, kit.settings(team, "swarm", SwarmSettings, overrides))


def handoff_tools(swarm: Swarm, team: Team, me: str, *, caller: str | None, transfers: bool = True) -> list[BaseTool]:
    """The hand-off tool factory: `transfer_to_<peer>` for every other peer, `return_to_<caller>` if handed work."""
    made = [_handoff(f"{TRANSFER_PREFIX}{name}", f"Hand work to {name} ({', '.join(team.role(name).capabilities)}).",
                     Transfer) for name in swarm.peers if transfers and name != me]
    if caller:
        made.append(_handoff(f"{RETURN_PREFIX}{caller}", f"Give your result back to {caller}, who handed you this "
                             "work.", GiveBack))
    return made


def _handoff(name: str, description: str, schema: type[BaseModel]) -> BaseTool:
    async def carried_out_by_the_node(**_: Any) -> str:  # the peer node acts on the call; the tool never runs
        return "hand-off noted"

    return StructuredTool.from_function(coroutine=carried_out_by_the_node, name=name, description=description,
                                       args_schema=schema)


@dataclass
class Move:
    """What one agent's turn came to: kept tool outputs, files, and a hand-off, a return or an answer."""

    kept: list[ToolOutput] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    give_back: str | None = None
    answer: str = ""


async def play(kit: Kit, runtime: Runtime[RunContext], team: Team, role: Role, brief: dict[str, Any],
               handoffs: list[BaseTool]) -> Move:
    """Run the agent's model with its tools until it hands off, gives back or answers (at most max_tool_turns)."""
    root = await scope.workspace(runtime)
    if role.name in kit.agents:  # an agent the caller brought does its part and answers; it cannot hand off
        files, summary, _ = await agent_turn(kit.agents[role.name], role, brief, workspace_config(root, get_config()))
        return Move(files=files, answer=summary or (f"wrote {', '.join(files)}" if files else ""))
    config = workspace_config(root, get_config())
    by_name = {t.name: t for t in handoffs}
    move = Move()
    async with kit.role_tools(team, role) as own:
        chat = await kit.model(role.model_role, runtime, agent=role.name, role=role, attempt=scope.attempt(runtime))
        model = chat.bind_tools([*own.values(), *handoffs])
        messages = prompt(role.prompt, INSTRUCTIONS, brief)
        for _ in range(scope.settings(runtime).max_tool_turns):
            reply = await model.ainvoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                move.answer = reply.text.strip()
                break
            for call in reply.tool_calls:  # ordinary tools first: their outputs are kept whatever else happens
                if call["name"] not in by_name:
                    result = await call_tool(own.get(call["name"]), call, sorted([*own, *by_name]), config)
                    messages.append(result)
                    move.kept.append(ToolOutput(tool=call["name"], output=str(result.text)[:KEPT_CHARS]))
                    if isinstance(result.artifact, dict) and "sha256" in result.artifact:
                        move.files[result.artifact["path"]] = result.artifact["sha256"]
            for call in reply.tool_calls:
                if call["name"] in by_name:
                    messages.append(_take(move, call))
            if move.transfers or move.give_back is not None:
                break
    return move


def _take(move: Move, call: Any) -> ToolMessage:
    """Record one hand-off call on the move; bad arguments become an error the model can correct."""
    try:
        if call["name"].startswith(RETURN_PREFIX):
            move.give_back = GiveBack.model_validate(call["args"]).result
        else:
            move.transfers[call["name"].removeprefix(TRANSFER_PREFIX)] = Transfer.model_validate(call["args"])
    except ValidationError as exc:
        return ToolMessage(f"bad arguments: {str(exc).splitlines()[0]}", tool_call_id=call["id"], status="error")
    return ToolMessage("hand-off noted", tool_call_id=call["id"], name=call["name"])


def brief_for(swarm: Swarm, team: Team, task: str, frame: Frame, chain: list[str], turn: int) -> dict[str, Any]:
    """The agent's whole, scoped view: its request, its caller, its peers' skills, what came back to it.

    What other peers wrote (a request that is not the person's task, their results) is fenced as data."""
    role = team.role(frame["agent"])
    request = frame["request"]
    return {"me": role.name, "capabilities": list(swarm.peers[role.name]), "task": task,
            "request": request if request == task else fence(request, f"hand-off to {role.name}"),
            "caller": frame["caller"], "peers": {p: list(k) for p, k in swarm.peers.items() if p != role.name},
            "chain": chain, "kept": frame["kept"],
            "results": [r | {"result": fence(r["result"], f"{r['agent']}, its result")} for r in frame["results"]],
            "path": f"T{turn}-{role.name}{role.artifact_suffix}"}


def peer(kit: Kit, overrides: Mapping[str, Any], *, helper: str, me: str
         ) -> tuple[Callable[..., Awaitable[Command]], Callable[..., Awaitable[Command]]]:
    """The active agent's node and its error handler (the agent's part fails, the run goes on)."""

    async def decide(state: SwarmState, runtime: Runtime[RunContext], failure: str | None) -> Command:
        team = await kit.team_for(runtime)
        swarm = swarm_for(kit, team, overrides)
        frames, turn, chain = list(state["frames"]), state["turn"], list(state["chain"])
        frame = Frame(**{**frames[-1], "results": [*frames[-1]["results"], *(state.get("returns") or [])]})
        journal, cid = scope.journal(runtime), f"turn-{turn}"
        if state.get("returns"):
            await journal.post(CheckpointMsg(sender=frame["agent"], recipient=frame["agent"], correlation_id=cid,
                                             label="results back", note=", ".join(
                                                 f"{r['agent']}: {r['result'][:80]}" for r in state["returns"])))
        move = Move() if failure is not None else await play(
            kit, runtime, team, team.role(frame["agent"]), brief_for(swarm, team, state["task"], frame, chain, turn),
            handoffs=handoff_tools(swarm, team, frame["agent"], caller=frame["caller"]))
        if failure is None and not (move.transfers or move.give_back or move.answer):
            failure = f"no usable answer in {scope.settings(runtime).max_tool_turns} model turns"
        frame["kept"] = [*frame["kept"], *move.kept][-KEPT_OUTPUTS:]
        frames[-1] = frame
        await _post_files(runtime, frame["agent"], frame["caller"] or "user", cid, turn, move)
        await _screen(runtime, frame["agent"], "+".join(move.transfers) or frame["caller"] or "user", cid, turn, move)
        if failure is not None:
            await journal.post(Blocker(sender=frame["agent"], recipient=frame["caller"] or "user", correlation_id=cid,
                                       reason=f"failed: {failure}"))
            if not frame["caller"]:  # nobody to give the failure back to: the turn fails, the first agent keeps it
                return Command(goto=END, update={"status": "failed", "frames": [], "returns": Overwrite([]),
                                                 "active": chain[0], "result": f"{frame['agent']} failed: {failure}"})
            move.give_back = f"{frame['agent']} failed: {failure}"
        if move.give_back is not None or (frame["caller"] and not move.transfers):
            return await _give_back(runtime, frames, move.give_back or move.answer, move, cid, me, ok=not failure)
        if move.transfers:
            return await _hand_off(runtime, swarm, state["task"], frames, chain, state.get("handoffs") or [],
                                   move.transfers, turn, me, helper)
        await journal.post(CheckpointMsg(sender=frame["agent"], recipient="user", correlation_id=cid,
                                         label="answered", note=f"{frame['agent']} answered turn {turn}; chain: "
                                                                f"{' -> '.join(chain)}"))
        return Command(goto=END, update={"status": "completed", "result": move.answer or "(no answer)",
                                         "active": frame["agent"], "frames": [], "returns": Overwrite([])})

    async def run(state: SwarmState, runtime: Runtime[RunContext]) -> Command:
        return await decide(state, runtime, None)

    async def failed(state: SwarmState, error: NodeError, runtime: Runtime[RunContext]) -> Command:
        return await decide(state, runtime, failure_of(error))

    return run, failed


async def _post_files(runtime: Runtime[RunContext], agent: str, to: str, cid: str, turn: int, move: Move) -> None:
    messages: list[AnyMessage] = [ArtifactMsg(sender=agent, recipient=to, correlation_id=cid, path=path, sha256=sha,
                                              summary=f"{agent}'s deliverable", round=turn)
                                  for path, sha in move.files.items()]
    await scope.journal(runtime).post(*messages)


async def _screen(runtime: Runtime[RunContext], agent: str, to: str, cid: str, turn: int, move: Move) -> None:
    """Journal a guard flag when what the agent hands on (requests, its result, its answer) reads like orders."""
    said = {"hand-off": "\n".join(t.request for t in move.transfers.values()), "result": move.give_back or "",
            "answer": move.answer}
    if flagged := screen(said, f"{agent}'s"):
        await scope.journal(runtime).post(flag(flagged, recipient=to, correlation_id=cid, rnd=turn))


async def _give_back(runtime: Runtime[RunContext], frames: list[Frame], result: str, move: Move, cid: str, me: str,
                     *, ok: bool) -> Command:
    """Return control and the result to the agent that handed the work over."""
    done = frames.pop()
    caller = frames[-1]
    caller["results"] = [*caller["results"], PeerResult(agent=done["agent"], result=result, files=list(move.files),
                                                        ok=ok)]
    await scope.journal(runtime).post(Progress(sender=done["agent"], recipient=caller["agent"], correlation_id=cid,
                                               note=f"returned to {caller['agent']}: {result}"))
    return Command(goto=me, update={"frames": frames, "returns": Overwrite([])})


def _looping(swarm: Swarm, agent: str, chain: list[str], seen: list[str], sig: str,
             transfers: dict[str, Transfer]) -> str | None:
    """Why the hand-off that made `chain` is a loop (a pair handing back and forth, or a repeat), or None."""
    if not swarm.stop_on_repeat:
        return None
    if pair := loop_in(chain):
        return f"{pair[0]} and {pair[1]} keep handing the work back and forth"
    if (before := earlier(sig, seen)) is not None:
        return (f"hand-off {len(chain) - 1} repeats hand-off {before + 1}: {agent} hands {' and '.join(transfers)} "
                "the same request again")
    return None


async def _hand_off(runtime: Runtime[RunContext], swarm: Swarm, task: str, frames: list[Frame], chain: list[str],
                    seen: list[str], transfers: dict[str, Transfer], turn: int, me: str, helper: str) -> Command:
    """Carry out one hand-off (`Command` to the peer node) or several at once (a `Send` each), behind the breaker."""
    frame, cid = frames[-1], f"turn-{turn}"
    chain = [*chain, "+".join(transfers)]
    sig = signature(frame["agent"], sorted((name, t.request) for name, t in transfers.items()))
    journal = scope.journal(runtime)
    loop = _looping(swarm, frame["agent"], chain, seen, sig, transfers)
    if loop or len(chain) - 1 > swarm.max_handoffs:
        why = loop or f"more than max_handoffs ({swarm.max_handoffs}) hand-offs"
        path = " -> ".join(chain)
        if loop:
            await journal.post(loop_detected(sender=frame["agent"], recipient="user", correlation_id=cid, reason=(
                f"{loop}, so another hand-off (of at most {swarm.max_handoffs}) would not get the work done; the "
                f"turn stops here and a person takes over; chain: {path}")))
        await journal.post(Blocker(sender=frame["agent"], recipient="user", correlation_id=cid,
                                   reason=f"circuit breaker: {why}; chain: {path}"))
        return Command(goto=END, update={
            "status": "escalated", "chain": chain, "frames": [], "returns": Overwrite([]), "active": chain[0],
            "result": f"Escalated to a person: {why} (chain: {path}). Nobody answered the request."})
    seen = [*seen, sig]
    come_back = len(transfers) > 1 or any(t.come_back for t in transfers.values())
    await journal.post(*[TaskAssign(sender=frame["agent"], recipient=name, correlation_id=cid, round=turn,
                                    title=f"hand-off {len(chain) - 1} ({'come back' if come_back else 'hand over'}):"
                                          f" {t.reason} | {t.request}", reason=f"{frame['agent']}'s hand-off: "
                                    f"{t.reason}") for name, t in transfers.items()])
    if len(transfers) > 1:
        sends = [Send(helper, HelperOrder(agent=name, task=task, request=t.request, caller=frame["agent"],
                                          reason=t.reason, turn=turn)) for name, t in transfers.items()]
        return Command(goto=sends, update={"frames": frames, "chain": chain, "handoffs": seen,
                                           "returns": Overwrite([])})
    [(name, t)] = transfers.items()
    new = Frame(agent=name, request=t.request, caller=frame["agent"] if come_back else frame["caller"], kept=[],
                results=[])
    frames = [*frames, new] if come_back else [*frames[:-1], new]
    return Command(goto=me, update={"frames": frames, "chain": chain, "handoffs": seen,
                                    "active": frames[0]["agent"], "returns": Overwrite([])})


def helper(kit: Kit, overrides: Mapping[str, Any], *, me: str
           ) -> tuple[Callable[..., Awaitable[dict]], Callable[..., Awaitable[Command]]]:
    """A peer handed a part of the work in parallel: it does it and gives its result back (it does not hand on)."""

    async def run(state: Payload, runtime: Runtime[RunContext]) -> dict:
        order = parse(HelperOrder, state)
        team = await kit.team_for(runtime)
        swarm = swarm_for(kit, team, overrides)
        frame = Frame(agent=order["agent"], request=order["request"], caller=order["caller"], kept=[], results=[])
        brief = brief_for(swarm, team, order["task"], frame, [], order["turn"])
        move = await play(kit, runtime, team, team.role(order["agent"]), brief,
                          handoff_tools(swarm, team, order["agent"], caller=order["caller"], transfers=False))
        cid = f"turn-{order['turn']}"
        await _post_files(runtime, order["agent"], order["caller"], cid, order["turn"], move)
        await _screen(runtime, order["agent"], order["caller"], cid, order["turn"], move)
        result = move.give_back or move.answer
        if not result:
            result = f"failed: no usable answer in {scope.settings(runtime).max_tool_turns} model turns"
            await scope.journal(runtime).post(Blocker(sender=order["agent"], recipient=order["caller"],
                                                      correlation_id=cid, reason=result))
        await scope.journal(runtime).post(Progress(sender=order["agent"], recipient=order["caller"],
                                                   correlation_id=cid, note=f"returned to {order['caller']}: {result}"))
        return {"returns": [PeerResult(agent=order["agent"], result=result, files=list(move.files),
                                       ok=not result.startswith("failed:"))]}

    async def failed(state: Payload, error: NodeError, runtime: Runtime[RunContext]) -> Command:
        order = parse(HelperOrder, state)
        reason = failure_of(error)
        await scope.journal(runtime).post(Blocker(sender=order["agent"], recipient=order["caller"],
                                                  correlation_id=f"turn-{order['turn']}", reason=f"failed: {reason}"))
        result = PeerResult(agent=order["agent"], result=f"failed: {reason}", files=[], ok=False)
        return Command(goto=me, update={"returns": [result]})

    return run, failed


def enter(kit: Kit, overrides: Mapping[str, Any]) -> Callable[..., Awaitable[dict]]:
    """A new turn of the thread: it starts with the remembered active agent (the entry peer on the first turn)."""

    async def start(state: SwarmState, runtime: Runtime[RunContext]) -> dict:
        team = await kit.team_for(runtime)
        swarm = swarm_for(kit, team, overrides)
        task = (state.get("task") or "").strip()
        if not task:
            raise ValueError("the task is empty: say what the swarm should do")
        remembered = state.get("active")
        first = remembered if remembered in swarm.peers else swarm.entry
        turn = (state.get("turn") or 0) + 1
        how = f"remembered active agent {first}" if remembered in swarm.peers else f"entry peer {first}"
        await scope.journal(runtime).post(TaskAssign(sender="user", recipient=first, correlation_id=f"turn-{turn}",
                                                     round=turn, title=f"turn {turn} starts with the {how}: {task}",
                                                     reason=f"the {how}"))
        frame = Frame(agent=first, request=task, caller=None, kept=[], results=[])
        return {"task": task, "turn": turn, "active": first, "chain": [first], "handoffs": [], "frames": [frame],
                "returns": Overwrite([]), "status": "working", "result": None}

    return start
