"""A one-stage team whose worker pays through an "external service" and may die doing it (for test_effects).

Run as `python effects_team.py DB WORKSPACES start|resume MODE`; it prints the run's status, its journaled
effects and its artifact as one JSON line. The ledger (the external service) is the file $EFFECTS_LEDGER,
outside the workspace; $EFFECTS_MARKER marks that the one crash already happened. MODE:

- "effect": `pay` is an effect; `crash`, called right after it in the same turn, kills the process once;
- "plain": the same with `pay` not an effect (LangGraph alone: the payment is repeated);
- "inside": `pay` is an effect and kills the process right after paying, before its record says done;
- "keyed": the same, with `pay` taking the call's `idempotency_key` (written to the ledger).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphs.runtime import Runner
from nodes.offline_model import OfflineChatModel
from state.context import RunContext
from state.roles import Role, Team
from tools.effects import effect, read_effects

THREAD = "pay"
TEAM = Team(name="payers", description="Pays an invoice.", patterns={"sequential": {"stages": ["payer"]}},
            roles=[Role(name="payer", capabilities=["paying"], prompt="You pay invoices.",
                        tools=["write_file", "pay", "crash"])])


def _pay(amount: int, key: str = "") -> str:
    with open(os.environ["EFFECTS_LEDGER"], "a") as ledger:
        ledger.write(json.dumps({"amount": amount, "key": key, "pid": os.getpid()}) + "\n")
    return f"paid {amount}"


def _die_once() -> None:
    marker = Path(os.environ["EFFECTS_MARKER"])
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)


def tools(mode: str) -> list[Callable[..., Any]]:
    """The worker's own tools for one MODE: `pay`, then `crash`."""
    dies_paying = mode in ("inside", "keyed")

    def pay(amount: int) -> str:
        """Pay an invoice of `amount` euros."""
        paid = _pay(amount)
        if dies_paying:
            _die_once()
        return paid

    def pay_keyed(amount: int, idempotency_key: str) -> str:
        """Pay an invoice of `amount` euros."""
        paid = _pay(amount, idempotency_key)
        _die_once()
        return paid

    def crash() -> str:
        """Check that the payment went through."""
        if not dies_paying:
            _die_once()
        return "checked"

    pay_keyed.__name__ = "pay"
    paying = {"plain": pay, "keyed": effect(pay_keyed)}.get(mode) or effect(pay)
    return [paying, crash]


async def main(db: str, workspaces: str, command: str, mode: str) -> None:
    worker = OfflineChatModel(role="worker", draft_flaw_rate=0.0)
    async with Runner.open(Path(db), models={"worker": worker}, tools=tools(mode)) as runner:
        if command == "start":
            run = await runner.start("sequential", "Pay the supplier's invoice", RunContext(
                workspace_root=workspaces, latency=0), team=TEAM, thread_id=THREAD)
        else:
            run = await runner.resume(THREAD)
        board = run.values["board"]
        artifact = Path(workspaces, THREAD, next(iter(board.values())).artifact).read_text()
        effects = [r.model_dump() for r in await read_effects(runner.store, THREAD)]
        print(json.dumps({"status": run.status, "effects": effects, "artifact": artifact,
                          "rounds": [r.round for r in board.values()]}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
