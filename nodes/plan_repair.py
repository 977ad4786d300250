"""Repairing what a planner model gets wrong, instead of stopping the run at "not a valid plan".

Real models answer schema-valid nonsense now and then: ids repeated or missing, dependencies on ids that
do not exist or on a role's name instead of an id, capabilities no role has, cycles. `normalize` turns such a
draft into planned tasks and says, one line per fix, what it changed; `ask_for_draft` feeds validation errors
(and the caller's own checks) back to the planner for a bounded number of asks; `fallback_plan` is the last
resort, one subtask doing the whole task.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, ValidationError

from nodes import scope
from nodes.kit import Kit
from state.context import RunContext
from state.plan import PlanDraft, PlannedTask, Subtask
from state.roles import Role, Team

D = TypeVar("D", bound=BaseModel)

MAX_PROBLEMS = 6
"""Problems of one answer fed back to the model (the first ones; the rest are usually the same mistake)."""

_STOP_WORDS = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "has",
    "have", "in", "into", "is", "it", "its", "of", "on", "or", "our", "so", "that", "the", "their", "them", "they",
    "this", "to", "we", "what", "when", "which", "who", "will", "with", "you", "your"})
_CUTOFF = 0.75
"""How alike (difflib's ratio) a capability must be to a known one or a role's name to be read as it."""


# --- normalize ---------------------------------------------------------------------------------------------------


def normalize(draft: PlanDraft, team: Team, *, existing: Sequence[PlannedTask] = (), id_prefix: str | None = None
              ) -> tuple[list[PlannedTask], list[str]]:
    """The draft's subtasks as planned tasks, each assigned to the team's role for its capability, and one note
    per fix made on the way.

    Fixed, in this order (notes in the same order, then by subtask): ids (missing or repeated ones, and ones
    already used by `existing` subtasks, are renamed; with `id_prefix='T3'` every id becomes T3.1, T3.2, ...);
    capabilities no role has (mapped to the closest role's); dependencies (on unknown ids: dropped; on a role's
    name or a capability: read as the subtasks of that role or capability, drafted ones first, else existing
    ones, unless the name is both and they share none; on the subtask itself: dropped; on `existing` ids:
    kept); cycles (the edge that closes one is dropped).
    """
    notes: list[str] = []
    subtasks = list(draft.subtasks)
    ids, aliases = _ids(subtasks, {t.id for t in existing}, id_prefix, notes)
    capabilities = [_capability(s, ids[i], team, notes) for i, s in enumerate(subtasks)]
    assignees = [assignee(team, c).name for c in capabilities]
    board = _Board(ids, aliases, [s.capability for s in subtasks], capabilities, assignees, existing, team)
    depends = [board.dependencies(i, s.depends_on, notes) for i, s in enumerate(subtasks)]
    _break_cycles(ids, depends, notes)
    tasks = [PlannedTask(**s.model_dump(exclude={"id", "capability", "depends_on"}), id=ids[i],
                         capability=capabilities[i], depends_on=depends[i], assignee=assignees[i])
             for i, s in enumerate(subtasks)]
    return tasks, notes


def _ids(subtasks: list[Subtask], taken: set[str], prefix: str | None, notes: list[str]
         ) -> tuple[list[str], dict[str, str]]:
    """The new id of every subtask, and what each draft id now stands for (a repeated id: its first subtask)."""
    raw = [s.id.strip() for s in subtasks]
    ids: list[str] = []
    aliases: dict[str, str] = {}
    used = set(taken)
    reserved = taken | set(raw)  # fresh names avoid every id the draft uses, so no rename hits a later subtask
    number = 0
    for i, (old, s) in enumerate(zip(raw, subtasks, strict=True)):
        if prefix:
            number += 1
            while f"{prefix}.{number}" in used:
                number += 1
            new = f"{prefix}.{number}"
            if old in aliases:
                notes.append(f"{old} is the id of two subtasks: dependencies on {old} mean {aliases[old]}, "
                             f"not {new} ({s.title!r})")
        elif not old:
            new = _free(reserved | used)
            notes.append(f"subtask {i + 1} ({s.title!r}) has no id: named {new}")
        elif not SAFE_ID.match(old):
            new = _free(reserved | used)
            notes.append(f"{old[:40]!r} is not a usable id (letters, digits, '.', '_', '-'; at most 32): "
                         f"renamed {new}")
        elif old in taken:
            new = _free(reserved | used)
            notes.append(f"{old} ({s.title!r}) is the id of an existing subtask: renamed {new}")
        elif old in used:
            new = _suffixed(old, reserved | used)
            notes.append(f"{old} is the id of two subtasks: the second ({s.title!r}) renamed {new}")
        else:
            new = old
        if old and old not in aliases:
            aliases[old] = new
        used.add(new)
        ids.append(new)
    return ids, aliases


SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")
"""An id that is safe in a file name (artifacts are named after their subtask) and short enough to read."""


def _free(used: set[str]) -> str:
    n = 1
    while f"T{n}" in used:
        n += 1
    return f"T{n}"


def _suffixed(old: str, used: set[str]) -> str:
    return next((old + c for c in "bcdefghijklmnopqrstuvwxyz" if old + c not in used), None) or _free(used)


def _capability(s: Subtask, task_id: str, team: Team, notes: list[str]) -> str:
    """The subtask's capability as a role of the team has it; one no role has is mapped to the closest role's."""
    wanted = s.capability.strip()
    known = {c.lower(): c for r in team.roles for c in r.capabilities}
    if wanted.lower() in known:
        return known[wanted.lower()]
    found, how = closest_capability(wanted, team)
    notes.append(f"{task_id}: no role has the capability {wanted!r}: mapped to {found!r} "
                 f"({assignee(team, found).name}), {how}")
    return found


def assignee(team: Team, capability: str) -> Role:
    """`team.for_capability`, and for a capability spelled with capitals in the team, the first role listing it."""
    try:
        return team.for_capability(capability)
    except LookupError:
        return next(r for r in team.roles if capability in r.capabilities)


def closest_capability(wanted: str, team: Team) -> tuple[str, str]:
    """The team's capability closest to `wanted`, and how it was found (for a note).

    A capability or role name spelled alike (difflib), else the role sharing the most words with it (in its
    capabilities, name and prompt, best first), else the first role's main capability.
    """
    key = _key(wanted)
    for r in team.roles:
        for c in r.capabilities:
            if _key(c) == key:
                return c, "the same words"
        if _key(r.name) == key:
            return r.capabilities[0], "the name of that role"
    names: dict[str, str] = {}
    for r in team.roles:
        names.update({c.lower(): c for c in r.capabilities if c.lower() not in names})
    roles = {r.name: r for r in team.roles if r.name not in names}
    close = difflib.get_close_matches(wanted.lower(), [*names, *roles], n=1, cutoff=_CUTOFF)
    if close:
        found = names.get(close[0]) or roles[close[0]].capabilities[0]
        return found, f"the closest spelling ({close[0]!r})"
    best, shared = _best_by_words(_words(wanted), team.roles, prompts=True)
    if best is not None:
        hit = next((c for c in best.capabilities if _overlap(_words(wanted), _words(c))), best.capabilities[0])
        return hit, f"the role sharing the most words ({', '.join(shared)})"
    return team.roles[0].capabilities[0], "no role is close: the first role's"


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "_", text.lower()).strip("_")


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP_WORDS and len(w) > 1]


def _alike(a: str, b: str) -> bool:
    """Words alike enough to count as shared: equal, or one a short inflection of the other (test/tests/testing)."""
    if a == b:
        return True
    common = len(next((a[:n] for n in range(min(len(a), len(b)), 0, -1) if a[:n] == b[:n]), ""))
    return common >= 4 and common >= min(len(a), len(b)) - 3


def _overlap(words: list[str], others: list[str]) -> list[str]:
    return [w for w in dict.fromkeys(words) if any(_alike(w, o) for o in others)]


def _best_by_words(words: list[str], roles: Sequence[Role], *, prompts: bool) -> tuple[Role | None, list[str]]:
    """The role sharing the most (weighted) words: capabilities count 3, the name 2, the prompt 1; ties: first."""
    best: tuple[int, Role | None, list[str]] = (0, None, [])
    for r in roles:
        parts = [(3, _words(" ".join(r.capabilities))), (2, _words(r.name))]
        if prompts:
            parts.append((1, _words(r.prompt)))
        score, shared = 0, []
        for weight, theirs in parts:
            hits = _overlap(words, theirs)
            score += weight * len(hits)
            shared += [w for w in hits if w not in shared]
        if score > best[0]:
            best = (score, r, shared)
    return best[1], best[2]


class _Board:
    """What a dependency can name: the draft's subtasks (by old id, new id, capability, role) and existing ones."""

    def __init__(self, ids: list[str], aliases: dict[str, str], drafted: list[str], capabilities: list[str],
                 assignees: list[str], existing: Sequence[PlannedTask], team: Team) -> None:
        self.ids, self.aliases, self.existing = ids, aliases, existing
        self.drafted = [c.strip().lower() for c in drafted]
        self.capabilities = [c.lower() for c in capabilities]
        self.assignees = assignees
        self.existing_ids = [t.id for t in existing]
        self.role_names = {r.name for r in team.roles}
        self.skills = {c.lower() for r in team.roles for c in r.capabilities}

    def dependencies(self, i: int, wanted: list[str], notes: list[str]) -> list[str]:
        me = self.ids[i]
        out: list[str] = []
        for raw in wanted:
            ref = raw.strip()
            found = self._resolve(me, ref, notes)
            if found == [me]:
                notes.append(f"{me} depends on itself: dropped")
                continue
            out += [d for d in found if d not in out and d != me]
        return out

    def _resolve(self, me: str, ref: str, notes: list[str]) -> list[str]:
        if ref in self.aliases:
            return [self.aliases[ref]]
        if ref in self.existing_ids:
            return [ref]
        same = [new for old, new in self.aliases.items() if old.lower() == ref.lower()]
        same += [t for t in self.existing_ids if t.lower() == ref.lower()]
        if ref and same:
            notes.append(f"{me} depends on {ref!r}: read as {same[0]}")
            return same[:1]
        return self._by_name(me, ref, notes)

    def _by_name(self, me: str, ref: str, notes: list[str]) -> list[str]:
        """A dependency naming a capability or a role: its subtasks (drafted first, else existing) if unambiguous."""
        name = ref.lower()
        kind = "a capability" if name in self.skills else "a role" if name in self.role_names else None
        if kind is None:
            drafted = [self.ids[j] for j, c in enumerate(self.drafted) if c == name]
            kind = "a capability" if drafted else None
        if kind is None:
            notes.append(f"{me} depends on unknown {ref!r}: dropped")
            return []
        for ids, caps, people in (
            (self.ids, [{c, d} for c, d in zip(self.capabilities, self.drafted, strict=True)], self.assignees),
            (self.existing_ids, [{t.capability.lower()} for t in self.existing], [t.assignee for t in self.existing]),
        ):
            by_skill = [t for t, c in zip(ids, caps, strict=True) if name in c and t != me]
            by_role = [t for t, a in zip(ids, people, strict=True) if a == name and t != me]
            if by_skill and by_role and not set(by_skill) & set(by_role):
                notes.append(f"{me} depends on {ref!r}, {kind} and not an id, which could mean "
                             f"{', '.join(by_skill)} or {', '.join(by_role)}: dropped")
                return []
            found = [t for t in ids if t in by_skill or t in by_role]  # both: they overlap, so both are meant
            if found:
                notes.append(f"{me} depends on {ref!r}, {kind} and not an id: read as {', '.join(found)}")
                return found
        notes.append(f"{me} depends on {ref!r}, {kind} and not an id, but no other subtask is of it: dropped")
        return []


def _break_cycles(ids: list[str], depends: list[list[str]], notes: list[str]) -> None:
    """Drop every dependency that closes a cycle. Dependencies on earlier subtasks are kept first (they cannot
    form a cycle among themselves); then dependencies on later ones, in order, unless one closes a cycle."""
    index = {t: i for i, t in enumerate(ids)}
    kept: dict[str, list[str]] = {t: [] for t in ids}
    forward: list[tuple[int, str]] = []
    for i, deps in enumerate(depends):
        for d in deps:
            if d in index and index[d] > i:
                forward.append((i, d))
            elif d in index:
                kept[ids[i]].append(d)
    for i, d in forward:
        path = _path(kept, d, ids[i])
        if path:
            notes.append(f"{ids[i]} depends on {d}, which closes a cycle ({' -> '.join([ids[i], *path])}): dropped")
            depends[i].remove(d)
        else:
            kept[ids[i]].append(d)


def _path(kept: dict[str, list[str]], start: str, goal: str) -> list[str]:
    """A chain of dependencies from `start` to `goal` (both included), else []."""
    stack: list[list[str]] = [[start]]
    seen = {start}
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        for d in reversed(kept.get(path[-1], [])):
            if d not in seen:
                seen.add(d)
                stack.append([*path, d])
    return []


# --- asking ------------------------------------------------------------------------------------------------------


async def ask_for_draft(kit: Kit, runtime: Runtime[RunContext], schema: type[D], messages: list[BaseMessage],
                        what: str, *, attempts: int, check: Callable[[D], list[str]] | None = None,
                        agent: str = "supervisor") -> tuple[D | None, list[str]]:
    """The planner model's structured answer, asked up to `attempts` times, and the problems seen on the way.

    An answer that does not fit `schema`, or that `check` finds problems with, goes back to the model with its
    problems ("answer again"); (None, problems) when no answer passed. The i-th ask (from 0) uses the model of
    attempt `scope.attempt(runtime) + i`. Model errors other than an unusable answer propagate (the node's
    retry policy handles them).
    """
    conversation = list(messages)
    problems: list[str] = []
    for i in range(max(1, attempts)):
        chat = await kit.model("planner", runtime, agent=agent, attempt=scope.attempt(runtime) + i)
        try:
            draft = schema.model_validate(await chat.with_structured_output(schema).ainvoke(conversation))
            found = check(draft) if check else []
        except (ValidationError, OutputParserException) as exc:
            found = describe(exc)
        else:
            if not found:
                return draft, problems
        problems += [f"answer {i + 1}: {p}" for p in found]
        listed = "\n".join(f"- {p}" for p in found[:MAX_PROBLEMS])
        conversation.append(HumanMessage(f"Your answer was not {what}; it had these problems:\n{listed}\n"
                                         f"Answer again with the whole answer, every problem fixed."))
    return None, problems


def describe(exc: Exception) -> list[str]:
    """One line per problem of an unusable structured answer."""
    if isinstance(exc, ValidationError):
        return [f"{'.'.join(str(p) for p in e['loc']) or 'the answer'}: {e['msg']}" for e in exc.errors()]
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return [first if len(first) <= 300 else first[:297] + "..."]


# --- last resort -------------------------------------------------------------------------------------------------


def fallback_plan(task: str, team: Team) -> list[PlannedTask]:
    """One subtask doing the whole task, for the role whose capabilities best match its words (else the first)."""
    role, _ = _best_by_words(_words(task), team.roles, prompts=False)  # capabilities and names only
    role = role or team.roles[0]
    words = _words(task)
    capability = next((c for c in role.capabilities if _overlap(words, _words(c))), role.capabilities[0])
    text = " ".join(task.split())
    title = text if len(text) <= 80 else text[:77].rstrip() + "..."
    return [PlannedTask(
        id="T1", title=title, capability=capability, assignee=role.name,
        description=f"The whole task, in one piece (the planner gave no usable plan): {text}",
        acceptance_criteria=[f"Accomplishes the task as stated: {text}",
                             "States the assumptions made and anything left open"],
    )]
