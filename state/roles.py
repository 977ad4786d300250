"""The agent registry's data: roles (who can do what) and teams (a named set of roles)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

ModelRole = Literal["planner", "worker", "reviewer", "synthesizer", "router"]
"""What an agent asks the model layer for; each can map to a different model."""

MODEL_ROLES: tuple[ModelRole, ...] = ("planner", "worker", "reviewer", "synthesizer", "router")


class Role(BaseModel):
    """A specialist the supervisor can assign subtasks to."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Unique agent name, e.g. 'backend'.")
    capabilities: list[str] = Field(min_length=1, description="Skills this role covers; the first is its main one.")
    model_role: ModelRole = Field(default="worker", description="Which model serves this agent.")
    prompt: str = Field(description="The role's system prompt.")
    tools: list[str] = Field(default_factory=lambda: ["write_file", "read_file"], description="Names of its tools.")
    artifact_suffix: str = Field(default=".md", description="File type of the artifacts it writes.")


class Team(BaseModel):
    """A named, ready-made set of roles."""

    name: str
    description: str
    roles: list[Role] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Team:
        names = [r.name for r in self.roles]
        if len(set(names)) != len(names):
            raise ValueError(f"team {self.name!r} has duplicate role names: {names}")
        return self

    def role(self, name: str) -> Role:
        for r in self.roles:
            if r.name == name:
                return r
        raise KeyError(f"team {self.name!r} has no role {name!r}")

    def for_capability(self, capability: str) -> Role:
        """The role whose main skill is `capability`, else the first that lists it."""
        cap = capability.strip().lower()
        ranked = sorted(self.roles, key=lambda r: r.capabilities[0] != cap)
        for r in ranked:
            if cap in r.capabilities:
                return r
        raise LookupError(f"no role in team {self.name!r} can do {capability!r}")

    def capabilities(self) -> list[str]:
        return sorted({c for r in self.roles for c in r.capabilities})
