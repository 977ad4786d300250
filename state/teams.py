"""The teams-of-teams pattern's state, the orchestrator's delegation schema and its settings."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator
from typing_extensions import TypedDict

from state.plan import PlannedTask
from state.team import WorkState


class Assignment(BaseModel):
    """One sub-team's part of the task."""

    team: str = Field(description="Name of the sub-team, one of the teams offered.")
    brief: str = Field(description="What this sub-team must deliver, as a task it can plan on its own.")


class Delegation(BaseModel):
    """What the orchestrator (planner model) returns: the task split into team assignments."""

    summary: str = Field(description="One or two sentences on how the work is split.")
    assignments: list[Assignment] = Field(min_length=1, description="At most one assignment per sub-team.")


class TeamsSettings(BaseModel):
    """`patterns.teams` of a team file (or `teams.build(...)` keywords)."""

    subteams: dict[str, str] = Field(
        default_factory=dict, description="Sub-team name -> team name or team file. Empty at the top: the team's "
        "roles split into two sub-teams.")
    max_depth: int = Field(default=3, ge=1, le=6, description="Levels of teams at most, the top counting as 1.")
    max_parallel: int = Field(default=1, ge=1, description="Sub-teams working at once (each may ask for approval).")
    approve: bool = Field(default=False, description="The orchestrator asks a person before it rolls results up.")

    @field_validator("subteams")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"bad sub-team name {name!r}: use letters, digits, '-' and '_'")
        return value


class TeamOrder(TypedDict):
    """The `Send` payload that starts one sub-team: its assignment (id = sub-team name, description = brief)."""

    assignment: PlannedTask


class TeamsState(WorkState, total=False):
    """Checkpointed state of one level: the assignments as a plan, one board entry per sub-team, the result."""
