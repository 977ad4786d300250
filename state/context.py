"""Run settings: passed to every run as LangGraph's `context`, read by nodes through the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class RunContext:
    """Settings of one run. Stored with the run so that a resume uses the same ones."""

    team: str = "software"
    """Name of the team (built-in, user or $TROUPE_TEAMS) for a graph built without one; the runner sets it
    to the name of the team a run was started with."""

    model: str = "offline"
    """Default model spec for every agent: 'offline', 'openai:<model name>' or '<provider>:<model name>'."""

    models: dict[str, str] = field(default_factory=dict)
    """Specs by model role or agent name, e.g. {'planner': 'openai:gpt-4o', 'qa': 'openai:gpt-4o-mini'}."""

    base_url: str | None = None
    """OpenAI-compatible endpoint for 'openai:' specs (None: the client's default)."""

    seed: int = 7
    """Seed of the offline model: same seed, same run."""

    latency: float = 0.0
    """Simulated seconds per offline model call."""

    draft_flaw_rate: float = 0.4
    """Share of first drafts the offline model leaves short of an acceptance criterion."""

    fail: dict[str, str] = field(default_factory=dict)
    """Offline failure injection by model role or agent name: 'raise', 'timeout' or 'malformed'; ':N' fails
    attempts 1..N only."""

    max_review_rounds: int = 3
    """Work rounds a subtask gets before an unresolved review fails it."""

    max_tool_turns: int = 4
    """Model turns a worker gets to use its tools before it must answer."""

    approve_plan: bool = False
    """Hierarchical runs: a person approves, edits or rejects the plan before any worker starts (`--approve-plan`)."""

    workspace_root: str = "workspaces"
    """Folder under which each run gets a workspace named after its thread."""
