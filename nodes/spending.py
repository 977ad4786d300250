"""Budgets, enforced where every agent gets its model (`Kit.model`), so every pattern obeys them.

Before an agent's model is handed out: a spent run budget stops the run with an interrupt of kind 'budget' (the
checkpoint stays; `troupe resume THREAD --budget-tokens N` raises the cap and goes on); a spent agent budget fails
that agent's work (`BudgetSpent`: the pattern treats it as that agent's failure, the run goes on); past
`degrade_at` of either, a routine role gets the budget's cheap model. Each decision is journaled once. A node asks
once per step, so a run stops within the step that spent its budget (at most one agent turn over it).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from nodes import scope
from state.budget import Budget
from state.context import RunContext
from state.protocol import CheckpointMsg
from tools.usage import Meter

BUDGET = "budget"
"""The interrupt kind (and journal topic) of budget decisions."""


class BudgetSpent(RuntimeError):
    """An agent has spent its own budget: its work fails, the run goes on."""


async def admit(runtime: Runtime[RunContext], meter: Meter, budget: Budget, *, agent: str, model_role: str
                ) -> str | None:
    """Let `agent` call its model under the run's budget: stops the run or fails the agent when a cap is spent;
    returns the cheap model's spec when the agent should degrade to it (None: its own model)."""
    if not budget.capped:
        return None
    await meter.load()
    halt_if_spent(meter, budget)
    if meter.fraction(budget, agent) >= 1:
        cap = budget.agents[agent]
        await say(runtime, meter, f"spent:{agent}", f"{agent} spent its budget",
                  f"{_used(meter, agent)} of {cap.describe()}: its work fails, the run goes on")
        raise BudgetSpent(f"agent {agent!r} has spent its budget ({_used(meter, agent)} of {cap.describe()})")
    share = max(meter.fraction(budget), meter.fraction(budget, agent))
    if budget.cheap_model and model_role in budget.routine and share >= budget.degrade_at:
        await say(runtime, meter, "cheap", "degraded: cheaper model",
                  f"{share:.0%} of the budget used: routine roles ({', '.join(budget.routine)}) move to "
                  f"{budget.cheap_model}")
        return budget.cheap_model
    return None


def halt_if_spent(meter: Meter, budget: Budget) -> None:
    """Stop the run (an interrupt of kind 'budget') while its own cap is spent; a dollar cap needs known prices."""
    if budget.usd and meter.run.usd is None:
        raise BudgetSpent("a dollar budget cannot be kept: a model of this run has no known price; give it with "
                          "--price MODEL=IN/OUT or the team file's budget.prices, then resume")
    while meter.fraction(budget) >= 1:
        interrupt(stop_request(meter, budget))  # resumed with the cap unchanged: it stops again


def stop_request(meter: Meter, budget: Budget) -> dict[str, Any]:
    """What the budget interrupt says, for the runner and a person."""
    return {"kind": BUDGET, "question": f"The run has spent its budget: {_used(meter)} of {budget.describe()}.",
            "details": "Raise it to go on: troupe resume THREAD --budget-tokens N (or --budget-usd X).",
            "tokens": meter.run.tokens, "usd": meter.run.usd, "limit": {"tokens": budget.tokens, "usd": budget.usd}}


def _used(meter: Meter, agent: str | None = None) -> str:
    used = meter.run if agent is None else meter.agents[agent]
    return f"{used.tokens:,} tokens" + (f" (${used.usd:,.4f})" if used.usd else "")


async def say(runtime: Runtime[RunContext], meter: Meter, key: str, label: str, note: str) -> None:
    """Journal a budget decision once per run and process."""
    if key in meter.said:
        return
    meter.said.add(key)
    await scope.journal(runtime).post(CheckpointMsg(sender=BUDGET, recipient="team", correlation_id=BUDGET,
                                                    label=label, note=note))


async def narrowed(runtime: Runtime[RunContext], budget: Budget, width: int) -> int:
    """How many agents may work at once: `width`, halved (at least one) once `degrade_at` of the run's budget is
    used; said once."""
    meter = await _loaded(runtime, budget)
    share = meter.fraction(budget) if meter else 0.0
    if meter is None or share < budget.degrade_at or width <= 1:
        return width
    fewer = max(1, width // 2)
    await say(runtime, meter, "fewer", "degraded: fewer agents",
              f"{share:.0%} of the budget used: at most {fewer} agents at once (was {width})")
    return fewer


async def wrapping_up(runtime: Runtime[RunContext], budget: Budget) -> str | None:
    """Past `synthesize_at` of the run's budget: why no new work starts and the team assembles what it has (said
    once); None while there is room. A spent budget stops the run here (`halt_if_spent`): at 1.0 it never wraps
    up early."""
    meter = await _loaded(runtime, budget)
    if meter is None:
        return None
    halt_if_spent(meter, budget)
    if (share := meter.fraction(budget)) < budget.synthesize_at:
        return None
    why = f"the budget is nearly spent ({share:.0%} of {budget.describe()}): the team assembles what is done"
    await say(runtime, meter, "wrap-up", "degraded: early synthesis", why)
    return why


async def _loaded(runtime: Runtime[RunContext], budget: Budget) -> Meter | None:
    """The run's meter, counted (None: the run has no cap on its own spending)."""
    if not (budget.tokens or budget.usd):
        return None
    meter = Meter.of(runtime.store, scope.thread_of(runtime))
    await meter.load()
    return meter
