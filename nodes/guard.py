"""The guard: what troupe (not a model) journals when an agent's text reads like orders to other agents.

Every pattern passes one agent's text to another only fenced (`state.untrusted.fence`); the guard screens that
text with `state.untrusted.suspicions` and journals a PROGRESS from "guard" naming what it found, so a person
sees it in `troupe show`. It changes nothing else: the text still goes on, as fenced data.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from nodes.scope import read_text
from state.protocol import Progress
from state.untrusted import fence, suspicions

GUARD = "guard"
"""Who journals that an agent's output was flagged: troupe, not a model."""


def screen(texts: Mapping[str, str], whose: str = "its") -> str:
    """What in an agent's texts (by what each is: 'artifact', 'summary', ...) reads like instructions to agents
    (empty: nothing); `whose` names the agent ("critic's")."""
    said = [f"{whose} {what} reads like instructions to agents ({', '.join(found)})"
            for what, text in texts.items() if (found := suspicions(text))]
    return "; ".join(said)


async def screen_file(path: Path, summary: str) -> str:
    """`screen` of a worker's artifact (read off the event loop; unreadable: empty) and its summary."""
    return screen({"artifact": await read_text(path), "summary": summary})


def flag(flagged: str, *, recipient: str, correlation_id: str, rnd: int = 1) -> Progress:
    """The journal entry for what `screen` found."""
    return Progress(sender=GUARD, recipient=recipient, correlation_id=correlation_id,
                    note=f"flagged round {rnd}: {flagged}; passed on only as fenced data")


def fenced(text: str | None, source: str) -> str | None:
    """What an agent said, fenced as data (None or empty: as it is)."""
    return fence(text, source) if text else text
