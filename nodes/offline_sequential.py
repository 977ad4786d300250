"""How the offline model plays the sequential pattern's roles (structured answers by schema name).

A checking stage passes the earlier stage's artifact when it addresses every acceptance criterion
(a seeded share of first drafts miss one, so some runs loop back); 'disagree' never passes (once the work
addresses every criterion it disputes the first one, the same finding every round: a loop the pipeline's loop
detection stops), 'lie' turns the honest verdict around.
"""

from __future__ import annotations

from typing import Any

from nodes.offline_roles import Answer, Play
from state.untrusted import unfence


def check_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """A `StageCheck`: the criteria the artifact does not address are the findings."""
    criteria: list[str] = brief["acceptance_criteria"]
    artifact = unfence(brief["artifact"]).lower()
    findings = [f"Not addressed: {c}" for c in criteria if c.lower() not in artifact]
    passed = not findings
    if play.mode == "disagree":
        passed, findings = False, findings or [f"{play.agent} disputes that it meets: {criteria[0]}"]
    elif play.mode == "lie":
        passed, findings = not passed, [] if findings else [f"Unsupported claim in {brief['path']}"]
    summary = (f"{play.agent}: {brief['stage']}'s work can go on." if passed
               else f"{play.agent}: back to {brief['stage']}: {'; '.join(findings)}")
    return {"passed": passed, "findings": findings, "summary": summary}


ANSWERS: dict[str, Answer] = {"StageCheck": check_answer}
