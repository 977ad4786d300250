"""Budgets, prices and usage: what a run may spend on model calls, what a call costs, what was spent.

A budget caps tokens and estimated dollars for the whole run and per agent. Near its end (`degrade_at`) the run
degrades: routine roles move to `cheap_model`, fewer agents work at once, and at `synthesize_at` the team
assembles what it has. A spent run budget stops the run resumably; a spent agent budget fails that agent's work.
Prices are dollars per million tokens, matched on the model's name (a dated name matches its family's entry).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from state.context import ModelRole, RunContext


class Price(BaseModel):
    """Dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


PRICES: dict[str, Price] = {
    name: Price(input=i, output=o) for name, (i, o) in {
        "offline": (0, 0),
        "gpt-4o": (2.5, 10), "gpt-4o-mini": (0.15, 0.6), "gpt-4.1": (2, 8), "gpt-4.1-mini": (0.4, 1.6),
        "gpt-4.1-nano": (0.1, 0.4), "gpt-5": (1.25, 10), "gpt-5-mini": (0.25, 2), "gpt-5-nano": (0.05, 0.4),
        "o3": (2, 8), "o3-mini": (1.1, 4.4), "o4-mini": (1.1, 4.4),
        "claude-opus-4": (15, 75), "claude-sonnet-4": (3, 15), "claude-haiku-4": (1, 5), "claude-3-5-haiku": (0.8, 4),
        "gemini-2.5-pro": (1.25, 10), "gemini-2.5-flash": (0.3, 2.5),
        "mistral-large": (2, 6), "mistral-small": (0.1, 0.3),
    }.items()
}
"""List prices as published by the providers in 2025 (override them: `--price`, a team file's `budget.prices`)."""


def price_of(model: str, prices: dict[str, Price] | None = None) -> Price | None:
    """The price of `model` ('gpt-4o-mini-2024-07-18', 'openai:gpt-4o', 'offline:mini'): an exact entry, else the
    longest entry its name starts with; `prices` go over the built-in table. None: no price is known."""
    table = {**PRICES, **(prices or {})}
    names = [model, model.partition(":")[2]] if ":" in model else [model]
    for name in names:
        if name in table:
            return table[name]
    family = [k for k in table for name in names if name.startswith(k + "-")]
    return table[max(family, key=len)] if family else None


ROUTINE: tuple[ModelRole, ...] = ("worker", "reviewer", "router")
"""Model roles whose work is routine: on degrading, they move to the budget's cheap model."""


class Limit(BaseModel):
    """A cap on tokens, estimated dollars or both (None: no cap)."""

    model_config = ConfigDict(extra="forbid")

    tokens: int | None = Field(default=None, gt=0)
    usd: float | None = Field(default=None, gt=0)

    def fraction(self, used: Usage) -> float:
        """How much of the cap is used: the larger share of tokens and dollars (0 without a cap)."""
        shares = [used.tokens / self.tokens] if self.tokens else []
        shares += [(used.usd or 0.0) / self.usd] if self.usd else []
        return max(shares, default=0.0)

    def describe(self) -> str:
        parts = [f"{self.tokens:,} tokens"] if self.tokens else []
        return " and ".join(parts + ([f"${self.usd:,.2f}"] if self.usd else [])) or "no cap"


class Budget(Limit):
    """A team file's `budget:` section, a `build(budget=...)` keyword, or the CLI's --budget-* flags."""

    agents: dict[str, Limit] = Field(default_factory=dict, description="Caps per agent name (a role, 'supervisor', "
                                     "'reviewer', ...): a spent one fails that agent's work, the run goes on.")
    degrade_at: float = Field(default=0.8, gt=0, le=1, description="Share of a cap after which the run degrades.")
    cheap_model: str | None = Field(default=None, description="The model spec routine roles move to on degrading.")
    routine: list[ModelRole] = Field(default_factory=lambda: list(ROUTINE),
                                     description="Model roles that move to the cheap model.")
    synthesize_at: float = Field(default=0.95, gt=0, le=1, description="Share of the run's cap after which no new "
                                 "work starts and the team assembles what it has (hierarchical, parallel).")
    prices: dict[str, Price] = Field(default_factory=dict, description="Prices over the built-in table.")

    @field_validator("prices", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        """A price may be written as [input, output]."""
        if isinstance(value, dict):
            return {k: {"input": v[0], "output": v[1]} if isinstance(v, list | tuple) and len(v) == 2 else v
                    for k, v in value.items()}
        return value

    @property
    def capped(self) -> bool:
        return bool(self.tokens or self.usd or any(a.tokens or a.usd for a in self.agents.values()))

    def over(self, other: Budget | None) -> Budget:
        """This budget with every field `other` sets explicitly taken from `other`."""
        if other is None:
            return self
        return self.model_copy(update={k: getattr(other, k) for k in other.model_fields_set})

    def for_run(self, ctx: RunContext) -> Budget:
        """The run's budget: this one under the run's settings (the CLI's flags and a resume's changes)."""
        update: dict[str, Any] = {k: v for k, v in {"tokens": ctx.budget_tokens, "usd": ctx.budget_usd,
                                                    "cheap_model": ctx.cheap_model}.items() if v is not None}
        if ctx.prices:
            update["prices"] = {**self.prices, **{k: Price(input=v[0], output=v[1]) for k, v in ctx.prices.items()}}
        return self.model_copy(update=update)

    def price(self, model: str) -> Price | None:
        return price_of(model, self.prices)


class Usage(BaseModel):
    """What model calls used: counts, tokens and estimated dollars (None: a call's model had no known price)."""

    calls: int = 0
    cached: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float | None = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, call: Call) -> None:
        """Count one call: a cached answer costs nothing; a failed call counts what it reported."""
        self.calls += 1
        self.cached += call.cached
        self.failed += not call.ok
        if call.cached:
            return
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.usd = None if self.usd is None or call.usd is None else self.usd + call.usd


class Call(BaseModel):
    """One model call of a run, as recorded in its store."""

    agent: str
    model: str = Field(description="The model's name as priced ('offline', 'gpt-4o-mini', ...).")
    model_role: str
    task: str | None = Field(default=None, description="The subtask, stage or event it was for, if known.")
    node: str | None = Field(default=None, description="The graph node it ran in.")
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float | None = 0.0
    started: float = Field(default_factory=time.time)
    ended: float = Field(default_factory=time.time)
    cached: bool = False
    ok: bool = True
    error: str | None = None
    degraded: bool = Field(default=False, description="Made on the budget's cheap model instead of its own.")
