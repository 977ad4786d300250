"""The sequential pipeline's settings, its resolved shape, its graph state and its check payloads.

Settings come from the team file's `patterns.sequential` section and `build()` keywords; `resolve`
checks them against the team and fills the defaults, so a bad name fails with one clear line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from state.loops import STOP_ON_REPEAT
from state.plan import PlannedTask
from state.roles import Team, TeamError, dotted
from state.team import TeamState

Loc = tuple[str | int, ...]
V = TypeVar("V")


class SequentialSettings(BaseModel):
    """What a team (or a `build()` call) may say about its pipeline; unset fields take defaults from the team."""

    model_config = ConfigDict(extra="forbid")

    stages: list[str] | None = Field(default=None, min_length=1,
                                     description="Role names in pipeline order (default: every role, in team order).")
    checks: dict[str, str] | None = Field(
        default=None, description="Checking stage -> the earlier stage it can send work back to (default: the last "
                                  "stage checks the one before it; {} for none).")
    needs: dict[str, list[str]] = Field(
        default_factory=dict, description="Stage -> earlier stages whose hand-offs it reads (default: the stage "
                                          "before it; a checking stage also reads the stage it checks).")
    criteria: dict[str, list[str]] = Field(
        default_factory=dict, description="Stage -> its acceptance criteria (default: derived from its role).")
    max_rounds: int = Field(default=2, ge=1, le=10, description="Verdicts one check gives: a failing verdict before "
                                                               "the last sends the work back; the last is final.")
    stop_on_repeat: bool = Field(default=True, description=STOP_ON_REPEAT + " Here: a check that fails with the "
                                 "same findings as its previous verdict is final at once (the stage is flagged).")


@dataclass(frozen=True)
class Pipeline:
    """Resolved settings: every stage a role of the team, every check and need pointing at an earlier stage."""

    stages: tuple[str, ...]
    checks: dict[str, str]
    needs: dict[str, tuple[str, ...]]
    criteria: dict[str, list[str]]
    max_rounds: int
    stop_on_repeat: bool = True

    def id(self, stage: str) -> str:
        """The stage's task id: 'S1' for the first stage."""
        return f"S{self.stages.index(stage) + 1}"

    def stage(self, task_id: str) -> str:
        return self.stages[int(task_id.removeprefix("S")) - 1]

    def rerun(self, target: str, checker: str) -> list[str]:
        """The stages that run again when `checker` sends `target` back: those after it, up to the checker."""
        return list(self.stages[self.stages.index(target) + 1: self.stages.index(checker) + 1])


def resolve(team: Team, settings: SequentialSettings, keywords: Collection[str] = ()) -> Pipeline:
    """Check the settings against `team` and fill in the defaults; `keywords` name the fields `build()` set."""
    where = _locator(team, keywords)
    roles = [r.name for r in team.roles]
    stages = tuple(settings.stages or roles)
    known, order = set(roles), {}  # order: each stage's index (the checks below are linear in the stages)
    for i, name in enumerate(stages):
        if name not in known:
            raise _error(where, ("stages", i), f"unknown stage {name!r}: team {team.name!r} has roles "
                                              f"{', '.join(roles)}")
        if name in order:
            raise _error(where, ("stages", i), f"stage {name!r} is listed twice; each role is one stage")
        order[name] = i
    checks = settings.checks if settings.checks is not None else (
        {stages[-1]: stages[-2]} if len(stages) > 1 else {})
    for checker, target in checks.items():
        _earlier(where, order, ("checks", checker), checker, [target], "can only send work back to an earlier stage")
    for stage, earlier in settings.needs.items():
        _earlier(where, order, ("needs", stage), stage, earlier, "can only read the hand-offs of earlier stages")
    for stage, items in settings.criteria.items():
        _earlier(where, order, ("criteria", stage), stage, [], "")
        if not items:
            raise _error(where, ("criteria", stage), "give at least one acceptance criterion")
    needs: dict[str, tuple[str, ...]] = {}
    for i, stage in enumerate(stages):
        wanted = {*settings.needs.get(stage, stages[i - 1:i]), *([checks[stage]] if stage in checks else [])}
        needs[stage] = tuple(sorted(wanted, key=order.__getitem__))
    return Pipeline(stages=stages, checks=dict(checks), needs=needs, criteria=dict(settings.criteria),
                    max_rounds=settings.max_rounds, stop_on_repeat=settings.stop_on_repeat)


def _earlier(where: Callable[[Loc], str], order: dict[str, int], loc: Loc, stage: str, earlier: list[str],
             why: str) -> None:
    """An error unless `stage` is a stage and each of `earlier` one before it (`order`: each stage's index)."""
    if stage not in order:
        raise _error(where, loc, f"{stage!r} is not a stage (stages: {', '.join(order)})")
    for other in earlier:
        if order.get(other, len(order)) >= order[stage]:
            what = "not a stage" if other not in order else "not earlier than it"
            raise _error(where, loc, f"{other!r} is {what}: {stage!r} {why} (stages: {', '.join(order)})")


def _locator(team: Team, keywords: Collection[str]) -> Callable[[Loc], str]:
    """Where a setting came from: a `build()` keyword, else the team file's `patterns.sequential` section."""

    def where(loc: Loc) -> str:
        if loc[0] in keywords:
            return f"build({loc[0]}=...): {dotted(loc)}"
        return team.where("patterns", "sequential", *loc)

    return where


def _error(where: Callable[[Loc], str], loc: Loc, message: str) -> TeamError:
    return TeamError(f"{where(loc)}: {message}")


def merge_counts(left: dict[str, V] | None, right: dict[str, V]) -> dict[str, V]:
    """Reducer: each check reports its own count (or verdict)."""
    return {**(left or {}), **right}


class SequentialState(TeamState, total=False):
    """The hierarchical state's keys (the stages are the plan's tasks, in order) plus each check's verdict count
    and the signature of its latest failing verdict (`state.loops`; "" after a pass)."""

    check_rounds: Annotated[dict[str, int], merge_counts]
    verdicts: Annotated[dict[str, str], merge_counts]


class CheckOrder(TypedDict):
    """What a checking stage judges: the earlier stage's task and artifact, in the check's `round`."""

    checker: PlannedTask
    target: PlannedTask
    path: str
    round: int
    last_verdict: str
    """The signature of this check's previous failing verdict ("" if none): the same again is a loop."""


class StageCheck(BaseModel):
    """A checking stage's verdict on an earlier stage's work."""

    passed: bool = Field(description="True only if the work can go on as it is.")
    findings: list[str] = Field(default_factory=list, description="Each problem, concretely; empty when it passes.")
    summary: str = Field(description="One line: the verdict and why.")
