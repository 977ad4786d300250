"""The orchestrator of a team of teams: splits the task into team assignments, delegates, rolls results up.

`delegator` asks the planner model for a `Delegation` (one brief per sub-team). `dispatcher` starts
pending sub-teams with `Send` (at most `max_parallel` at once) and, when every sub-team is done,
moves on to the approval gate or the synthesis. `team_runner` runs one sub-team as a subgraph
invoked from the node, so LangGraph checkpoints it under its own namespace: an interrupt inside
reaches the top run, `Command(resume=...)` at the top answers it, and a killed run resumes inside.
Each sub-team works in its own folder `<workspace>/<name>/<thread>/`; its SUMMARY.md is its hand-off.
Nothing here repeats: every sub-team is started once (see `graphs.teams` on loops).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from langgraph.errors import GraphBubbleUp
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from nodes import scope
from nodes.briefs import prompt
from nodes.kit import Kit
from nodes.plan_repair import ask_for_draft
from nodes.supervisor import PlanningError
from nodes.synthesizer import RESULT_FILE
from nodes.teams import load_team
from state.channels import Payload, parse, payload
from state.context import RunContext
from state.plan import TERMINAL, Plan, PlannedTask, TaskRecord, TaskStatus
from state.protocol import ArtifactMsg, Blocker, CheckpointMsg, Replan, TaskAssign
from state.roles import Team, TeamError
from state.team import plan_writes
from state.teams import Assignment, Delegation, TeamOrder, TeamsSettings, TeamsState

ORCHESTRATOR_PROMPT = """You lead several teams. You split a large task into one assignment per team that \
needs to take part, each a brief the team can plan and finish on its own."""

DELEGATE_INSTRUCTIONS = """Split the task below between the teams offered. Give each team that takes part one \
brief: what it must deliver, in one or two sentences. Name teams exactly as offered; at most one brief per team."""

SubgraphFactory = Callable[[Team, str], CompiledStateGraph[Any, Any, Any, Any]]
"""Builds and compiles the subgraph of sub-team `Team` named `str` (supplied by graphs.teams)."""


def label(path: tuple[str, ...], who: str = "orchestrator") -> str:
    """A journal name that shows where in the tree an agent sits, e.g. 'content/orchestrator'."""
    return "/".join((*path, who)) if path else who


def subteams(team: Team, settings: TeamsSettings, path: tuple[str, ...]) -> dict[str, Team]:
    """The sub-teams by name: loaded from `settings.subteams`, or (top level only) the roles split in two."""
    if settings.subteams:
        found: dict[str, Team] = {}
        for name, ref in settings.subteams.items():
            source = Path(ref) if ref.endswith((".yaml", ".yml")) else ref
            try:
                found[name] = load_team(source)
            except TeamError as exc:
                raise TeamError(f"{team.where('patterns', 'teams', 'subteams', name)}: {exc}") from None
        return found
    if path:
        return {}
    half = (len(team.roles) + 1) // 2
    parts = [team.roles[:half], team.roles[half:]] if len(team.roles) > 1 else [team.roles]
    rest = {k: v for k, v in team.patterns.items() if k != "teams"}
    return {f"{team.name}-{i}": Team(name=f"{team.name}-{i}", description=f"{team.description} (part {i})",
                                     roles=roles, mcp_servers=team.mcp_servers, patterns=rest)
            for i, roles in enumerate(parts, start=1)}


def check_tree(kit: Kit, team: Team, overrides: dict[str, Any], lineage: tuple[str, ...], max_depth: int) -> None:
    """Every sub-team loads, no team contains itself, and no branch is deeper than `max_depth` levels."""
    chain = (*lineage, team.name)
    if team.name in lineage:
        raise TeamError(f"teams: cycle: {' > '.join(chain)} (a team cannot contain itself)")
    if len(chain) > max_depth:
        raise TeamError(f"teams: {' > '.join(chain)} is {len(chain)} levels deep; max_depth is {max_depth}")
    settings = kit.settings(team, "teams", TeamsSettings, overrides)
    for sub in subteams(team, settings, lineage).values():
        if sub.patterns.get("teams", {}).get("subteams"):
            check_tree(kit, sub, {}, chain, max_depth)
        elif sub.name in chain:
            raise TeamError(f"teams: cycle: {' > '.join((*chain, sub.name))} (a team cannot contain itself)")
        elif len(chain) + 1 > max_depth:
            raise TeamError(f"teams: {' > '.join((*chain, sub.name))} is {len(chain) + 1} levels deep; "
                            f"max_depth is {max_depth}")


def delegator(kit: Kit, overrides: dict[str, Any], path: tuple[str, ...]) -> Callable[..., Awaitable[dict]]:
    """The delegate node: one assignment per sub-team taking part, as a plan with a board entry per team."""

    async def delegate(state: TeamsState, runtime: Runtime[RunContext]) -> dict:
        task = (state.get("task") or "").strip()
        if not task:
            raise PlanningError("the task is empty: say what the teams should do")
        team = await kit.team_for(runtime)
        settings = kit.settings(team, "teams", TeamsSettings, overrides)
        teams = await asyncio.to_thread(subteams, team, settings, path)
        brief = {"task": task, "teams": [{"name": n, "description": t.description,
                                          "capabilities": sorted({c for r in t.roles for c in r.capabilities})}
                                         for n, t in teams.items()]}
        draft, problems = await ask_for_draft(kit, runtime, Delegation,
                                              prompt(ORCHESTRATOR_PROMPT, DELEGATE_INSTRUCTIONS, brief), "a delegation",
                                              attempts=3)
        assignments, fixes = repair_delegation(draft, teams, task)
        if problems or fixes:
            await scope.journal(runtime).post(Replan(
                sender=label(path), recipient="teams", correlation_id=label(path, "plan"), action="repair",
                reason="; ".join([*problems, *fixes]), tasks=[a.team for a in assignments]))
        names = [a.team for a in assignments]
        summary = draft.summary if draft else f"Every team takes the whole task: {task}"
        tasks = [PlannedTask(id=a.team, title=a.brief.split(".")[0][:100], description=a.brief, capability="team",
                             acceptance_criteria=[f"{a.team} delivers its report"], assignee=a.team)
                 for a in assignments]
        await scope.journal(runtime).post(CheckpointMsg(
            sender=label(path), recipient=", ".join(names), correlation_id=label(path, "plan"),
            label="delegation ready", note=summary))
        return plan_writes(Plan(summary=summary, tasks=tasks)) | {
                "status": "working"}

    return delegate


def repair_delegation(draft: Delegation | None, teams: dict[str, Team], task: str
                      ) -> tuple[list[Assignment], list[str]]:
    """Usable assignments from the planner's answer, and what was fixed: a team name it misspelt is read as the
    closest one, unknown ones are dropped, two briefs for one team are joined; with none left (or no answer)
    every team gets the whole task."""
    fixes: list[str] = []
    briefs: dict[str, list[str]] = {}
    for a in draft.assignments if draft else []:
        name = a.team if a.team in teams else next(iter(get_close_matches(a.team, list(teams), n=1, cutoff=0.6)), None)
        if name is None:
            fixes.append(f"no team {a.team!r}: its brief dropped")
            continue
        if name != a.team:
            fixes.append(f"no team {a.team!r}: read as {name!r}")
        if name in briefs:
            fixes.append(f"two briefs for {name!r}: joined")
        if a.brief.strip():
            briefs.setdefault(name, []).append(a.brief.strip())
        else:
            briefs.setdefault(name, [])
    if not briefs:
        fixes.append("no usable assignment: every team takes the whole task")
        briefs = {name: [] for name in teams}
    return [Assignment(team=name, brief=" ".join(b) or task) for name, b in briefs.items()], fixes


def dispatcher(kit: Kit, overrides: dict[str, Any], path: tuple[str, ...]) -> Callable[..., Awaitable[Command]]:
    """The dispatch node: starts waiting sub-teams (up to max_parallel), then approval or synthesis."""

    async def dispatch(state: TeamsState, runtime: Runtime[RunContext]) -> Command:
        plan = state["plan"]
        assert plan is not None, "dispatch runs after delegate"
        settings = kit.settings(await kit.team_for(runtime), "teams", TeamsSettings, overrides)
        board = state["board"]
        free = settings.max_parallel - sum(r.status == TaskStatus.IN_PROGRESS for r in board.values())
        ready = [t for t in plan.tasks if board[t.id].status == TaskStatus.PENDING][:max(free, 0)]
        if ready:
            await scope.journal(runtime).post(*(TaskAssign(
                sender=label(path), recipient=label((*path, t.id), "supervisor"),
                correlation_id="/".join((*path, t.id)), title=t.description, round=1,
                reason=f"the orchestrator's brief for sub-team {t.id}") for t in ready))
            return Command(goto=[Send("team", payload(TeamOrder(assignment=t))) for t in ready],
                           update={"board": payload({t.id: TaskRecord(status=TaskStatus.IN_PROGRESS, round=1)
                                                     for t in ready})})
        if not all(r.status in TERMINAL for r in board.values()):
            raise RuntimeError(f"no team can progress: {({k: v.status.value for k, v in board.items()})}")
        done = sum(r.status == TaskStatus.DONE for r in board.values())
        finish = "approve" if settings.approve else "synthesize"
        await scope.journal(runtime).post(CheckpointMsg(
            sender=label(path), recipient="approver" if settings.approve else "synthesizer",
            correlation_id=label(path, "rollup"), label="teams finished", note=f"{done}/{len(board)} teams done"))
        return Command(goto=finish, update={"status": "awaiting_approval" if settings.approve else "working"})

    return dispatch


def team_runner(kit: Kit, subgraph: SubgraphFactory, overrides: dict[str, Any],
                path: tuple[str, ...]) -> Callable[..., Awaitable[dict]]:
    """The team node: runs one sub-team as a checkpointed subgraph; its report becomes the board's hand-off."""

    async def run_team(state: Payload, runtime: Runtime[RunContext]) -> dict:
        t = parse(TeamOrder, state)["assignment"]
        team = await kit.team_for(runtime)
        teams = await asyncio.to_thread(subteams, team, kit.settings(team, "teams", TeamsSettings, overrides), path)
        folder = await scope.workspace(runtime) / t.id
        ctx = replace(scope.settings(runtime), team=teams[t.id].name, workspace_root=str(folder))
        where = "/".join((*path, t.id))
        try:
            out = await subgraph(teams[t.id], t.id).ainvoke({"task": t.description}, context=ctx)
        except GraphBubbleUp:
            raise  # an interrupt inside the sub-team: it reaches the person at the top
        except Exception as exc:  # one team's failure is reported; the other teams go on
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            await scope.journal(runtime).post(Blocker(sender=label((*path, t.id), "supervisor"),
                                                      recipient=label(path), correlation_id=where, reason=reason))
            return {"board": payload({t.id: TaskRecord(status=TaskStatus.FAILED, round=1, reason=reason)})}
        if out.get("status") != "completed":
            reason = f"the sub-team ended {out.get('status')}, not completed"
            await scope.journal(runtime).post(Blocker(sender=label((*path, t.id), "supervisor"),
                                                      recipient=label(path), correlation_id=where, reason=reason))
            return {"board": payload({t.id: TaskRecord(status=TaskStatus.FAILED, round=1, reason=reason)})}
        result = out.get("result") or ""
        rel = f"{t.id}/{scope.thread_of(runtime)}/{RESULT_FILE}"
        summary = " ".join(result.split())[:300]
        await scope.journal(runtime).post(ArtifactMsg(
            sender=label((*path, t.id), "supervisor"), recipient=label(path), correlation_id=where, path=rel,
            sha256=hashlib.sha256(result.encode()).hexdigest(), summary=summary, round=1))
        return {"board": payload({t.id: TaskRecord(status=TaskStatus.DONE, round=1, artifact=rel, summary=summary)})}

    return run_team
