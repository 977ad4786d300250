"""How the offline model plays the teams pattern's orchestrator (structured answers by schema name).

Every team offered gets a brief: the task, narrowed to what the team's capabilities cover. 'disagree'
and 'lie' leave the last team out (a lead who keeps work to fewer teams), so the run still goes on.
"""

from __future__ import annotations

from typing import Any

from nodes.offline_roles import Answer, Play


def delegation_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """A `Delegation`: one assignment per team offered, in the order offered."""
    task: str = brief["task"].strip().rstrip(".")
    teams: list[dict[str, Any]] = brief["teams"]
    if play.mode in ("disagree", "lie") and len(teams) > 1:
        teams = teams[:-1]
    assignments = [{"team": t["name"],
                    "brief": f"{task}: the {t['name']} team's part."}
                   for t in teams]
    summary = f"Split '{task}' between {len(assignments)} teams: {', '.join(a['team'] for a in assignments)}."
    return {"summary": summary, "assignments": assignments}


ANSWERS: dict[str, Answer] = {"Delegation": delegation_answer}
