"""The parallel pattern's data: the planner's split, the pattern's settings and its graph state."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from state.loops import STOP_ON_REPEAT
from state.team import TeamState


class Part(BaseModel):
    """One independent sub-problem: it needs nothing from the other parts."""

    id: str = Field(description="Short unique id, e.g. 'T1'.")
    title: str = Field(description="Imperative one-line title.")
    description: str = Field(description="What to produce, on its own, without the other parts.")
    capability: str = Field(description="The skill needed, taken from the roles' capabilities.")
    acceptance_criteria: list[str] = Field(min_length=1, description="Checkable statements the result must satisfy.")


class Split(BaseModel):
    """What the planner returns: the task split into independent sub-problems (no dependencies)."""

    summary: str = Field(description="One or two sentences on how the task was split.")
    parts: list[Part] = Field(min_length=1, description="The independent sub-problems.")

    @model_validator(mode="after")
    def _unique(self) -> Split:
        ids = [p.id for p in self.parts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate part ids: {ids}")
        return self


class ParallelSettings(BaseModel):
    """The pattern's settings: team file `patterns: {parallel: {...}}`, then `build()` keywords."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(default=4, ge=1, description="Agents at work at the same time (one wave).")
    agent_timeout: float = Field(default=120.0, gt=0, description="Seconds one attempt of one agent may take.")
    review: bool = Field(default=False, description="Send each part's artifact to the reviewer before synthesis.")
    stop_on_repeat: bool = Field(default=True, description=STOP_ON_REPEAT + " Here (with review on): a part the "
                                 "reviewer sends back with the same unmet criteria as the round before fails at once.")


class ParallelState(TeamState, total=False):
    """The team's state plus the number of waves dispatched so far and, per part sent back by the reviewer, the
    signature of that verdict (`state.loops`): the same verdict again is a loop."""

    wave: int
    verdicts: dict[str, str]
