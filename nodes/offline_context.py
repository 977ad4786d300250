"""How the offline model plays the shared context: what a worker records and echoes, and how the supervisor
settles conflicts.

A worker with the context tools echoes the records of its brief in its artifact ("## Shared context", the
contracts with their fields) and its memory ("## Conventions"); a persistent specialist with nothing in its
memory remembers `CONVENTION`. Told to: 'constraint' records `CONSTRAINT` (touching frontend work) in its first
round; 'drift' gives a contract's last field another name in its first draft (`user_id` -> `user_object`); 'naming'
writes the contract's names in camelCase in its first draft. The supervisor has the reporting worker adapt its
overlapping edit, and updates a contract to every field both sides use.
"""

from __future__ import annotations

import re
from typing import Any

from nodes.offline_roles import Answer, Play
from state.untrusted import unfence

CONSTRAINT = {"kind": "constraint", "title": "no WebSockets", "touches": ["frontend"],
              "text": "The host has no WebSockets: use server-sent events (SSE) for live updates."}
CONVENTION = "Error responses are JSON objects {\"error\": {\"code\", \"message\"}}; timestamps are ISO 8601 strings."


def calls(brief: dict[str, Any], names: set[str], answered: dict[str | None, str], mode: str | None
          ) -> list[dict[str, Any]]:
    """The context-tool calls a worker makes alongside its first tool calls."""
    out = []
    first = brief.get("round", 1) == 1
    if mode == "constraint" and first and "record_context" in names and "record_context" not in answered:
        out.append({"name": "record_context", "args": dict(CONSTRAINT)})
    if "remember_convention" in names and not brief.get("memory") and "remember_convention" not in answered:
        out.append({"name": "remember_convention", "args": {"note": CONVENTION}})
    return out


def echo(brief: dict[str, Any], mode: str | None) -> list[str]:
    """The artifact's lines about the shared context and the worker's memory."""
    lines: list[str] = []
    first = brief.get("round", 1) == 1
    for r in brief.get("context", []):
        if r["kind"] == "contract":
            fields = list(r["fields"])
            if first and mode == "drift":
                last = fields[-1]
                fields[-1] = re.sub(r"_id$", "_object", last) if last.endswith("_id") else f"{last}_ref"
            elif first and mode == "naming":
                fields = [_camel(f) for f in fields]
            lines.append(f"- contract {r['title']}: {{{', '.join(fields)}}}")
        else:
            lines.append(f"- {r['kind']} {r['title']}: {unfence(r['text'])}")
    out = ["## Shared context", "", *lines, ""] if lines else []
    if brief.get("memory"):
        out += ["## Conventions", "", *(f"- {unfence(n)}" for n in brief["memory"]), ""]
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def conflict_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """A `ConflictDecision`: the reporting worker adapts its edit (nothing either side wrote is lost)."""
    return {"action": "adapt", "reason": f"{brief.get('reported_by', 'the reporting worker')} rebases its edit on "
            "the file as it is now, so neither side's work is lost"}


def contract_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """A `ContractDecision`: the contract grows by what the work uses that it lacks; with nothing new, it stands."""
    contract, work = brief["contract"], brief["work"]
    extra = [f for f in work.get("uses", []) if f not in contract["fields"]]
    if not extra:
        return {"action": "keep", "reason": "the work uses nothing the contract lacks: it must keep the contract"}
    return {"action": "update", "fields": [*contract["fields"], *extra],
            "reason": f"both sides' needs are kept: {', '.join(contract['fields'])} for those who build on it, "
                      f"{', '.join(extra)} that {work['by']} needs"}


ANSWERS: dict[str, Answer] = {"ConflictDecision": conflict_answer, "ContractDecision": contract_answer}
