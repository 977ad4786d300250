"""How the offline model plays a consensus voter: one `Ballot` per voter, derived from the question alone.

Honest voters all give the same answer, so their agreement is the baseline a test perturbs:
- a comparison of two arithmetic expressions ("Which is larger, 2^10 or 10^3?") is worked out;
- a question that names options ("Postgres, MySQL or SQLite?") gets a pick seeded by the question;
- a yes/no question gets a seeded yes or no; anything else a seeded "approach A/B/C".
`lie` gives the one coordinated wrong answer (every liar the same: the worst case for the tally);
`disagree` is an honest dissenter: a wrong answer of its own, seeded by the agent's name, held loosely;
`inject` gives the honest answer with orders for the other agents as its reason (`offline_hierarchical.INJECTION`).
"""

from __future__ import annotations

import ast
import operator
import random
import re
from collections.abc import Callable
from typing import Any

from nodes.offline_hierarchical import INJECTION
from nodes.offline_roles import Answer, Play

_COMPARE = re.compile(r"\b(larger|greater|bigger|more|higher|smaller|less|lower|fewer)\b[\s,:]+(.+?)\s+or\s+(.+?)"
                      r"\s*\?*\s*$", re.I)
_YES_NO = re.compile(r"^\s*(is|are|was|were|should|shall|can|could|does|do|did|will|would|has|have|must)\b", re.I)
_STEM = re.compile(r"^\s*(which|what|who|where|when|how|should|shall|can|could|would|will|do|does|is|are)\b", re.I)
_SMALLER = {"smaller", "less", "lower", "fewer"}
_OPS: dict[type, Callable[[Any, Any], Any]] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                                                ast.Div: operator.truediv, ast.Pow: operator.pow}


def ballot_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """A voter's ballot: the shared honest answer, the coordinated lie, or an honest dissent."""
    question = str(brief.get("question") or brief.get("task") or "")
    honest, why, options = _honest(question, play.seed)
    wrong = [o for o in options if o != honest]
    if play.mode == "lie":
        return {"answer": wrong[0], "confidence": 0.99, "rationale": f"{wrong[0]}, without a doubt."}
    if play.mode == "disagree":
        pick = random.Random(f"{play.seed}:{play.agent}:{question}").choice(wrong)
        return {"answer": pick, "confidence": 0.55, "rationale": f"I lean towards {pick}, though not firmly."}
    return {"answer": honest, "confidence": 0.9, "rationale": INJECTION if play.mode == "inject" else why}


def _honest(question: str, seed: int) -> tuple[str, str, list[str]]:
    """(the honest answer, its rationale, every candidate answer) for a question."""
    rng = random.Random(f"{seed}:{question}")  # the agent is not in the seed: honest voters agree
    compared = _COMPARE.search(question)
    if compared:
        word, left, right = compared.group(1).lower(), compared.group(2).strip(), compared.group(3).strip()
        a, b = _value(left), _value(right)
        if a is not None and b is not None and a != b:
            pick = left if (a < b) == (word in _SMALLER) else right
            return pick, f"{left} = {a:g} and {right} = {b:g}, so {pick} is {word}.", [pick, right if pick == left
                                                                                         else left]
    options = options_of(question)
    if options:
        pick = rng.choice(options)
        return pick, f"{pick} fits the question best on balance (offline stand-in pick).", _first(pick, options)
    if _YES_NO.match(question):
        pick = rng.choice(["yes", "no"])
        return pick, f"On balance, {pick} (offline stand-in judgement).", _first(pick, ["yes", "no"])
    options = ["approach A", "approach B", "approach C"]
    pick = rng.choice(options)
    return pick, f"{pick} is the soundest option (offline stand-in judgement).", _first(pick, options)


def options_of(question: str) -> list[str]:
    """The options a question names: 'Which should we use: Postgres, MySQL or SQLite?' -> the three; else []."""
    text = question.strip().rstrip("?").strip()
    if " or " not in text or re.search(r"\bor not$", text, re.I):
        return []
    text = text.split(":", 1)[1] if ":" in text else text
    head, _, last = text.rpartition(" or ")
    parts = [p.strip() for p in head.split(",")]
    if len(parts) == 1:  # 'Should we use Postgres or MySQL': as many words before 'or' as after it
        parts = [" ".join(head.split()[-len(last.split()):])]
    elif _STEM.match(parts[0]):  # 'Which is better, tabs or spaces': the question before the first comma
        parts = parts[1:]
    options = [p for p in (*parts, last.strip()) if p]
    return options if len(set(options)) == len(options) >= 2 else []


def _first(pick: str, options: list[str]) -> list[str]:
    """The options with `pick` first and the others in their order (the first other is the coordinated lie)."""
    return [pick, *(o for o in options if o != pick)]


def _value(expr: str) -> float | None:
    """A small arithmetic expression's value ('2^10' -> 1024), or None if it is not one (never eval)."""
    try:
        tree = ast.parse(expr.replace("^", "**").replace(",", ""), mode="eval")
        return float(_eval(tree.body))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 1000 or abs(left) > 1e6):
            raise ValueError("too large to work out")
        return float(_OPS[type(node.op)](left, right))
    raise ValueError("not arithmetic")


ANSWERS: dict[str, Answer] = {"Ballot": ballot_answer}
