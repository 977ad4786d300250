"""Text of a run for the terminal: one line per protocol message, the approval request and a person's answer to it.

Text that came from a task, a team or a model passes `printable` on its way out: a control character or escape
sequence in it is shown as an escape (`\\x1b[2J`), never sent to the terminal raw, so it cannot clear the screen,
retitle the window, rewrite earlier lines or reorder what is read.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from graphs.errors import TroupeError
from state.plan import Plan
from state.protocol import AnyMessage, Kind
from state.team import Decision

_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""C0 controls but newline and tab, DEL, C1 controls, bidi overrides and isolates, lone surrogates."""


def printable(text: str) -> str:
    """`text` safe for a terminal: every character `_UNPRINTABLE` matches becomes a visible escape ('\\x1b',
    '\\u202e'); newlines and tabs stay, so multi-line text still reads as lines."""
    return _UNPRINTABLE.sub(lambda m: ascii(m[0])[1:-1], text)


def id_width(plan: Plan) -> int:
    """Column width for a plan's task ids (T1 ... or longer names, as teams of teams use)."""
    return max([4, *(len(t.id) + 2 for t in plan.tasks)])


def describe(m: AnyMessage) -> str:
    """One line for one protocol message, safe for a terminal (`printable`)."""
    return printable(_described(m))


def _described(m: AnyMessage) -> str:
    head = f"[{m.sender} -> {m.recipient}] {m.kind.value} {m.correlation_id}"
    match m.kind:
        case Kind.TASK_ASSIGN:
            extra = f" (round {m.round}: {'; '.join(m.feedback)})" if m.feedback else ""
            return f"{head}: {m.title}{extra}" + (f" [why: {m.reason}]" if m.reason else "")
        case Kind.PROGRESS:
            return f"{head}: {m.note}"
        case Kind.BLOCKER:
            return f"{head}: {m.reason}"
        case Kind.ARTIFACT:
            return f"{head}: {m.path} (round {m.round})"
        case Kind.REVIEW_REQUEST:
            return f"{head}: {m.path}"
        case Kind.REVIEW_RESULT:
            verdict = "approved" if m.approved else "changes requested"
            return f"{head}: {verdict} - {m.feedback}"
        case Kind.CONFLICT:
            return f"{head}: {m.topic} - {m.description}"
        case Kind.REPLAN:
            return f"{head}: {m.action}: {m.reason}" + (f" -> {', '.join(m.tasks)}" if m.tasks else "")
        case Kind.CHECKPOINT:
            return f"{head}: {m.label}" + (f" - {m.note}" if m.note else "")
        case Kind.EVENT:
            return f"{head}: {m.topic}#{m.seq} {m.payload}" + (f" (caused by {m.cause})" if m.cause else "")
        case _:
            return f"{head}: {m.model_dump_json(exclude={'id', 'sender', 'recipient', 'correlation_id', 'kind'})}"


def approval_text(request: dict[str, Any]) -> str:
    """What a person is asked at an interrupt: the question, the tasks (if any) and any details; at a plan gate
    each task's dependencies, at an escalation the subtask an edit would change. Safe for a terminal (`printable`)."""
    after = {t["id"]: t.get("depends_on") for t in (request.get("plan") or {}).get("subtasks", [])}
    tasks = request.get("tasks", [])
    width = max([4, *(len(t["id"]) + 2 for t in tasks)])
    lines = [request["question"]]
    lines += [f"  {t['id']:<{width}}{t['status']:<10}{t['assignee']:<12} {t['title']}"
              + (f" (after {', '.join(after[t['id']])})" if after.get(t["id"]) else "")
              + (f" -> {t['artifact']}" if t.get("artifact") else "") + (f" ({t['reason']})" if t.get("reason") else "")
              for t in tasks]
    details = str(request.get("details") or "")
    summary = (request.get("plan") or {}).get("summary")
    if request.get("kind") == "escalation":
        lines += ["  attempts:", *(f"    {line}" for line in details.splitlines()),
                  *_fields("subtask", request.get("subtask", {}))]
    else:
        if summary and summary not in details:
            lines.append(f"  plan: {summary}")
        lines += [f"  {line}" for line in details.splitlines()]
    if request.get("error"):
        lines.append(f"  note: {request['error']}")
    return printable("\n".join(lines))


def _fields(title: str, fields: dict[str, Any]) -> list[str]:
    """`title:` then one indented line per field; a list field as one '- item' line per item."""
    lines = [f"  {title}:"]
    for key, value in fields.items():
        if isinstance(value, list):
            lines += [f"    {key}:", *(f"      - {item}" for item in value)]
        else:
            lines.append(f"    {key}: {value}")
    return lines


_YES, _EDIT = {"y": "y", "yes": "y"}, {"e": "e", "edit": "e"}
_PROMPTS: dict[str, tuple[str, dict[str, str], str | None]] = {
    "plan": ("approve? [y/N/e] ", _YES | _EDIT, "n"),
    "escalation": ("retry, skip or edit? [r/s/e] ", {"r": "y", "retry": "y", "s": "n", "skip": "n"} | _EDIT, None),
}
"""By interrupt kind: the question, what each answer means (y, n or e), the meaning of any other answer (None:
ask again). Other kinds: approve? [y/N]."""
_EDITED = {"plan": ("plan", "plan-edit.yaml"), "escalation": ("subtask", "subtask-edit.yaml")}
"""By interrupt kind: the request's field an edit starts from, and the file in the workspace it is edited in."""


def ask(request: dict[str, Any], workspace: Path) -> Decision | None:
    """A person's answer at the terminal (None: the input ended). At a plan gate or an escalation, 'e' writes the
    plan or the subtask as YAML in the run's workspace, opens $VISUAL or $EDITOR on it (none: waits for Enter while
    the person edits it) and sends what it then holds as the edit; an unusable file asks again."""
    kind = str(request.get("kind", "approval"))
    prompt, answers, default = _PROMPTS.get(kind, ("approve? [y/N] ", _YES, "n"))
    try:
        while True:
            if (answer := answers.get(input(prompt).strip().lower(), default)) is None:
                continue
            edit = _edit(request[_EDITED[kind][0]], workspace / _EDITED[kind][1]) if answer == "e" else None
            if answer != "e" or edit is not None:
                return Decision(approved=answer != "n", comment=input("comment (optional): ").strip(), edit=edit)
    except EOFError:
        return None


def read_edit(path: Path) -> dict[str, Any]:
    """The mapping a YAML or JSON edit file holds: a changed plan, or the subtask fields to change."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TroupeError(f"cannot read the edit file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise TroupeError(f"the edit file {path} is not YAML or JSON{where}: "
                          f"{getattr(exc, 'problem', None) or exc}; fix it and answer again") from None
    if not isinstance(data, dict):
        raise TroupeError(f"the edit file {path} holds {type(data).__name__ if data is not None else 'nothing'}"
                          ", not a mapping: a changed plan at a plan gate, subtask fields at an escalation")
    return data


def _edit(data: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """`data` written to `path` as YAML, edited by the person, read back (None: unusable, said why)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    try:
        code = subprocess.run([*shlex.split(editor), str(path)], check=False).returncode if editor else None
    except (OSError, ValueError) as exc:
        print(f"cannot start the editor ({editor}): {exc}")
        code = None
    if code is None:
        input(f"edit {path}, then press Enter ")
    elif code:
        print(f"the editor ({editor}) exited with {code}: nothing sent")
        return None
    try:
        return read_edit(path)
    except TroupeError as exc:
        print(exc)
        return None
