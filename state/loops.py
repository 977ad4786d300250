"""Loop detection the patterns share: the same step again, with nothing new, is a loop and not progress.

A step's `signature` is a short, stable digest of what makes it that step (who hands which request to whom, a
verdict's findings, a round's stances, an event's topic and payload), with case and spacing ignored and lists
compared as sets where order does not matter (the caller sorts them). `earlier` says where in a list of earlier
signatures it happened before, and `remember` keeps that list bounded: the checkpointed state holds a few short
strings, never the steps. A pattern that finds a loop stops it at once and journals a CHECKPOINT labelled
`LOOP_LABEL` with the reason (`loop_detected`), so `troupe show THREAD` says why the run stopped there.

Every pattern that can loop has a `stop_on_repeat` setting (on by default); off, only its hard bound
(`max_rounds`, `max_handoffs`, `max_events`, ...) stops a loop.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from state.protocol import CheckpointMsg

LOOP_LABEL = "loop detected"
"""The label of the CHECKPOINT a pattern journals when it stops a loop."""
SIGNATURE_CHARS = 12
STOP_ON_REPEAT = ("Stop as soon as a step repeats with nothing new (loop detection; on by default). False: only "
                  "the hard bound stops a loop.")
"""The description every pattern's `stop_on_repeat` setting carries."""

_SPACE = re.compile(r"\s+")


def _canonical(part: object) -> object:
    if isinstance(part, str):
        return _SPACE.sub(" ", part.casefold()).strip()
    if isinstance(part, dict):
        return {str(k): _canonical(v) for k, v in part.items()}
    if isinstance(part, list | tuple):
        return [_canonical(p) for p in part]
    if isinstance(part, set | frozenset):
        return sorted((_canonical(p) for p in part), key=repr)
    return part


def signature(*parts: object) -> str:
    """A short digest of the parts, the same in every process: 'Fix  X' and 'fix x' are the same step."""
    text = json.dumps([_canonical(p) for p in parts], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:SIGNATURE_CHARS]


def earlier(sig: str, seen: Sequence[str]) -> int | None:
    """The index in `seen` of the latest step with this signature, or None if it is new."""
    for i in range(len(seen) - 1, -1, -1):
        if seen[i] == sig:
            return i
    return None


def remember(seen: Sequence[str], sig: str, keep: int) -> list[str]:
    """`seen` with `sig` added, the latest `keep` only (the window the next step is compared with)."""
    return [*seen, sig][-keep:] if keep > 0 else []


def loop_detected(*, sender: str, recipient: str, correlation_id: str, reason: str) -> CheckpointMsg:
    """The journal entry for a loop stopped: what repeated, and what happens instead."""
    return CheckpointMsg(sender=sender, recipient=recipient, correlation_id=correlation_id, label=LOOP_LABEL,
                         note=reason)
