"""How the offline model plays the parallel pattern's roles (structured answers by schema name).

`Split`: a task that names several items ("Compare Notion, Asana and Trello for a 10-person team")
gets one part per item, for the team's analysis skill; any other task one part per suitable
capability (the planner's templates without their dependencies, else one per role).
"""

from __future__ import annotations

import re
from typing import Any

from nodes.offline_roles import Answer, Play, plan

_LISTING = re.compile(r"^\s*(?:please\s+)?(?:compare|evaluate|assess|review|analy[sz]e|benchmark|rank|contrast|"
                      r"research)\s+(?P<items>.+?)(?:\s+(?P<context>(?:for|in|on|as|by|across|against|when)\s+.+))?"
                      r"\s*[.?!]?\s*$", re.I)
_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|vs\.?|versus)\s+", re.I)
_ANALYSIS = ("analysis", "research", "evaluation", "review")
"""Capabilities an item's assessment asks for, best first."""


def items_of(task: str) -> tuple[list[str], str]:
    """'Compare Notion, Asana and Trello for a 10-person team' -> (['Notion', 'Asana', 'Trello'], 'for a ...')."""
    m = _LISTING.match(task)
    if not m:
        return [], ""
    items = [i.strip(" .") for i in _SEPARATOR.split(m["items"]) if i.strip(" .")]
    return (items, m["context"] or "") if len(items) >= 2 else ([], "")


def split_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    task: str = brief["task"]
    items, context = items_of(task)
    if not items:
        parts = [{k: v for k, v in s.items() if k != "depends_on"} for s in plan(brief)["subtasks"]]
        return {"summary": f"Split '{task}' into {len(parts)} independent parts, one per skill it needs.",
                "parts": parts}
    skills = [c for role in brief.get("roles", []) for c in role.get("capabilities", [])]
    capability = next((c for c in _ANALYSIS if c in skills), skills[0] if skills else "analysis")
    fit = context or "for the task at hand"
    parts = [
        {
            "id": f"T{i}",
            "title": f"Assess {item} {fit}".strip(),
            "description": f"Evaluate {item} on its own: strengths, weaknesses, pricing and limits, and how "
                           f"well it suits the need ({fit}). Leave the comparison to the synthesis.",
            "capability": capability,
            "acceptance_criteria": [f"Lists the strengths and weaknesses of {item}",
                                    f"States the pricing and limits of {item}",
                                    f"Rates how well {item} fits: {fit}"],
        }
        for i, item in enumerate(items, start=1)
    ]
    return {"summary": f"One analyst per item ({', '.join(items)}), each on its own; the synthesis compares them.",
            "parts": parts}


ANSWERS: dict[str, Answer] = {"Split": split_answer}
