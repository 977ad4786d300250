"""The coherence checker: naming drift across a team's artifacts, a correctness lint, and fix-up instructions.

Naming. Two spellings are the same identifier when they have the same letters ignoring case, `_` and `-`
(`userId`, `UserID`, `user-id`, `user_id`). They are not drift when Python's conventions relate them: a snake_case
name, its UPPER_CASE constant and its exact PascalCase class (`user_id`, `USER_ID`, `UserId`; `todo_store`,
`TodoStore`), leading/trailing underscores ignored (`_user_id`). So `todo_store = TodoStore()` and a capitalized word
at the start of a sentence are fine, while `userId`, `UserID`, `userid` and `user-id` drift from `user_id`.
Only tokens that look like identifiers (with `_` or an inner capital) are compared among the artifacts; a plain word
or a hyphenated one (`well-known`, `end-to-end`: ordinary English in Markdown) counts only when it spells a
canonical name.

Lint. `ruff check --isolated` with `LINT_RULES`: E9 (files ruff cannot read or parse), F63 (invalid comparisons),
F7 (misplaced statements: `return`/`break` outside their block, ...), F82 (undefined names), F401 (unused imports),
F841 (unused locals); ruff reports a syntax error as code `invalid-syntax` (older ruffs: none, given here as
`syntax`). Ruff missing or failing raises `RuffError`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tools.verify import Failure

LINT_RULES = ("E9", "F63", "F7", "F82", "F401", "F841")
TOKEN = re.compile(r"(?<![\w-])[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z][A-Za-z0-9_]*)*")


@dataclass(frozen=True, slots=True)
class Drift:
    """`found` on `line` of `file` is `expected` spelled differently: the contract's name, or the majority's."""

    file: str
    found: str
    expected: str
    line: int
    kind: Literal["contract", "terminology"] = "contract"


@dataclass(frozen=True, slots=True)
class LintFinding:
    file: str
    line: int
    code: str
    message: str


class RuffError(RuntimeError):
    """Ruff is not installed, or did not produce its JSON report."""


def naming_drift(texts: Mapping[str, str], names: Iterable[str]) -> list[Drift]:
    """Spellings in `texts` ({path: content}) that drift from a canonical name, or from the artifacts' majority."""
    canonical: dict[str, str] = {}
    allowed: dict[str, set[str]] = {}
    for name in names:
        canonical.setdefault(_letters(name), name)
        allowed.setdefault(_letters(name), set()).add(_style(name))
    seen: list[tuple[str, int, str]] = []
    for path, text in texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            seen += [(path, number, t) for t in dict.fromkeys(TOKEN.findall(line))
                     if _letters(t) in canonical or (_looks_like_identifier(t) and "-" not in t)]
    drifts = [Drift(path, t, canonical[_letters(t)], number) for path, number, t in seen
              if _letters(t) in canonical and _style(t) not in allowed[_letters(t)]]
    files: dict[str, dict[str, set[str]]] = {}
    spelling: dict[str, str] = {}
    for path, _, t in seen:
        if _letters(t) not in canonical:
            files.setdefault(_letters(t), {}).setdefault(_style(t), set()).add(path)
            spelling.setdefault(_style(t), t.strip("_"))
    majority = {letters: max(styles, key=lambda s: len(styles[s])) for letters, styles in files.items()}
    drifts += [Drift(path, t, spelling[majority[_letters(t)]], number, "terminology") for path, number, t in seen
               if _letters(t) not in canonical and _style(t) != majority[_letters(t)]]
    return sorted(drifts, key=lambda d: (d.file, d.line, d.found, d.expected))


def _letters(token: str) -> str:
    return token.replace("_", "").replace("-", "").lower()


def _looks_like_identifier(token: str) -> bool:
    token = token.strip("_")
    return "_" in token or "-" in token or (any(c.isupper() for c in token[1:]) and any(c.islower() for c in token))


def _style(token: str) -> str:
    """The snake_case name a spelling stands for by Python's conventions; itself when it follows none."""
    token = token.strip("_")
    if re.fullmatch(r"[A-Z0-9_]+", token):
        return token.lower()
    if re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", token):
        return re.sub(r"(?<!^)(?=[A-Z])", "_", token).lower()
    return token


async def lint(root: Path, files: Sequence[str]) -> list[LintFinding]:
    """Ruff's findings (`LINT_RULES`) on the `.py` files among `files`, with workspace-relative names."""
    py = sorted(dict.fromkeys(f for f in files if f.endswith(".py")), key=len, reverse=True)
    if not py:
        return []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ruff", "check", "--output-format=json", "--isolated", "--no-cache",
        f"--select={','.join(LINT_RULES)}", "--", *py, cwd=root, env={"PATH": os.defpath},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        report = None
    if proc.returncode not in (0, 1) or not isinstance(report, list):
        raise RuffError(f"ruff failed (exit {proc.returncode}): {err.decode(errors='replace').strip()[-300:]}")
    findings = [LintFinding(next((f for f in py if item["filename"] == f or item["filename"].endswith(f"/{f}")),
                                 item["filename"]), item["location"]["row"], item["code"] or "syntax", item["message"])
                for item in report]
    return sorted(findings, key=lambda f: (f.file, f.line, f.code))


def fix_up(file: str, items: Sequence[Drift | LintFinding | Failure]) -> str:
    """Concise instructions for the worker who owns `file`, from the items about it ("" when there are none)."""
    renames: dict[tuple[str, str, str], list[int]] = {}
    steps: list[str] = []
    for item in (i for i in items if i.file == file):
        if isinstance(item, Drift):
            renames.setdefault((item.found, item.expected, item.kind), []).append(item.line)
        elif isinstance(item, LintFinding):
            steps.append(f"{item.code} line {item.line}: {item.message}")
        else:
            steps.append(f"{item.check} failure: {item.message}")
    why = {"contract": "the contract's name", "terminology": "the spelling the other artifacts use"}
    steps[:0] = [f"rename {found} to {expected} on line{'s' if len(lines) > 1 else ''} "
                 f"{', '.join(map(str, sorted(lines)))} ({why[kind]})"
                 for (found, expected, kind), lines in renames.items()]
    return "".join([f"Fix {file}:", *(f"\n- {step}" for step in steps)]) if steps else ""
