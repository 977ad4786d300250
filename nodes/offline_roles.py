"""How the offline model plays each role: deterministic, plausible answers to our briefs.

Each function takes the JSON brief a node put in its prompt and returns what a capable
model would: a plan, an artifact, a review verdict or a report. Nothing here is random
beyond a `random.Random` seeded from the run's seed and the subtask, so a seed replays a run.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from state.untrusted import unfence

Answer = Callable[[dict[str, Any], "Play"], dict[str, Any]]
"""How the offline model fills one structured-output schema, from the brief and who is asking."""


@dataclass(frozen=True)
class Play:
    """Who the offline model is answering for, and how."""

    agent: str
    """The asking agent's name (or model role)."""
    seed: int
    mode: str | None = None
    """None, or how to misbehave: 'disagree' (take the contrary view), 'lie' (answer wrongly, confidently), or a
    behaviour of `nodes.offline_model.MODES` ('complex', 'finding', 'critical')."""


def plan_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """A `PlanDraft`; told to 'lie', one that keeps the schema but makes no sense (see `nonsense`)."""
    honest = plan(brief)
    return nonsense(honest, brief.get("roles", [])) if play.mode == "lie" else honest


def review_answer(brief: dict[str, Any], play: Play) -> dict[str, Any]:
    """A `ReviewVerdict`. 'critical': the first round of subtask T1's artifact has a security problem that must
    be fixed first; 'disagree': never approves, and names the same unmet criterion every round."""
    if play.mode == "critical" and brief.get("path", "").startswith("T1-") and brief.get("round", 1) == 1:
        verdict = review(brief)
        return {**verdict, "approved": False, "critical": CRITICAL,
                "feedback": f"Critical: {CRITICAL} {verdict['feedback']}"}
    if play.mode == "disagree":
        first = brief["acceptance_criteria"][0]
        return {"approved": False, "unmet_criteria": [first], "feedback": f"Not addressed yet: {first}"}
    return review(brief)


CRITICAL = ("Security: user passwords are stored in plain text; hash them (bcrypt or argon2) before any other "
            "work goes on.")
"""The critical problem a reviewer told to flag one ('critical') reports."""


def nonsense(draft: dict[str, Any], roles: list[dict[str, Any]]) -> dict[str, Any]:
    """A plan a careless model might answer, schema-valid: the last subtask's dependencies name a role and
    capabilities instead of ids, the second depends on an id that does not exist, the first and the second
    depend on each other, the one before last has a capability no role has, and the last takes its id."""
    subs = [{**s, "depends_on": list(s["depends_on"])} for s in draft["subtasks"]]
    if len(subs) == 1:
        subs.append({**subs[0], "title": subs[0]["title"] + " (the rest)", "depends_on": []})
    first, second, before_last, last = subs[0], subs[1], subs[-2], subs[-1]
    by_id = {s["id"]: s for s in subs}
    owner = next((r["name"] for r in roles if first["capability"] in r.get("capabilities", [])), first["capability"])
    names = [owner] + [by_id[d]["capability"] for d in last["depends_on"] if d != first["id"] and d in by_id]
    last["depends_on"] = list(dict.fromkeys(names))
    second["depends_on"].append("T99")
    first["depends_on"].append(second["id"])
    if len(subs) > 2 and first["id"] not in second["depends_on"]:
        second["depends_on"].insert(0, first["id"])
    before_last["capability"] += " engineering"
    last["id"] = before_last["id"]
    return {"summary": draft["summary"], "subtasks": subs}


# (capability, title, description, depends_on capabilities, acceptance criteria)
_Step = tuple[str, str, str, tuple[str, ...], tuple[str, ...]]

_SOFTWARE: list[_Step] = [
    ("design", "Design the data model and API contract for {subject}",
     "Decide the resources, their fields and every endpoint, so the builders share one contract.", (),
     ("Lists every resource with its fields and types", "Specifies each endpoint with method, path and payloads",
      "Defines error responses and status codes")),
    ("persistence", "Implement the storage layer for {subject}",
     "A repository that stores the resources of the contract.", ("design",),
     ("Provides create, read, update and delete operations", "Keeps a schema for every resource in the contract",
      "Reports a missing record as a clear error")),
    ("backend", "Implement the {subject} endpoints",
     "Request handlers for every endpoint in the contract.", ("design",),
     ("Implements every endpoint in the contract", "Validates request bodies",
      "Returns the documented status codes")),
    ("frontend", "Build the user interface for {subject}",
     "Screens that let a person use every feature.", ("design",),
     ("Offers a screen for every user task", "Shows validation errors next to the field")),
    ("testing", "Write automated tests for {subject}",
     "Tests that exercise the endpoints and the storage layer.", ("persistence", "backend"),
     ("Covers every endpoint", "Covers invalid input", "Runs with one command")),
    ("documentation", "Write the README and API reference for {subject}",
     "What a new user reads first.", ("design", "backend"),
     ("Explains how to install and run", "Documents every endpoint with an example")),
]

_CONTENT: list[_Step] = [
    ("research", "Research the facts and sources for {subject}",
     "Collect the key facts, figures and sources.", (),
     ("Lists at least five key facts", "Names a source for every fact")),
    ("outline", "Outline the piece on {subject}", "Structure and argument.", ("research",),
     ("Has an introduction, body sections and a conclusion", "States the main message in one sentence")),
    ("writing", "Write the draft on {subject}", "The full text following the outline.", ("outline",),
     ("Follows the outline", "Uses every key fact from the research")),
    ("editing", "Edit the draft on {subject}", "Tighten, check facts and style.", ("writing", "research"),
     ("Fixes unclear sentences", "Checks every fact against its source")),
]

_GENERIC: list[_Step] = [
    ("research", "Analyse the problem: {subject}", "Understand the goal, the constraints and the options.", (),
     ("States the goal and constraints", "Compares at least two options")),
    ("design", "Propose a solution for {subject}", "Choose an option and plan its parts.", ("research",),
     ("Justifies the chosen option", "Breaks the solution into parts")),
    ("backend", "Carry out the solution for {subject}", "Produce the deliverable.", ("design",),
     ("Delivers every part of the design", "Notes any open issue")),
    ("documentation", "Document the outcome of {subject}", "What was done and how to use it.", ("backend",),
     ("Summarises the outcome", "Explains how to use the result")),
]

_ERRANDS: list[_Step] = [
    ("research", "Research the details: {subject}", "Dates, place, costs and requirements, with sources.", (),
     ("States the dates and the place", "Lists the costs with a source for each")),
    ("calendar", "Block the dates in the calendar: {subject}", "Find the days, block them and flag conflicts.",
     ("research",), ("Blocks the dates", "Lists every conflict and how to resolve it")),
    ("travel", "Book travel and a hotel: {subject}", "Journeys and a hotel within the blocked dates.",
     ("research", "calendar"), ("Gives the outbound and return journeys with times and prices",
                                "Names a hotel with its price per night")),
    ("finance", "Pay and record the costs: {subject}", "Registration, travel and hotel, within the budget.",
     ("travel",), ("Lists every payment with its amount", "Records the total against the budget")),
    ("email", "Send the confirmations: {subject}", "Tell everyone concerned what was arranged.", ("travel", "finance"),
     ("Drafts a confirmation to every party", "Summarises the itinerary")),
]

_INVESTMENT: list[_Step] = [
    ("financial_statements", "Analyse the financial statements: {subject}", "Revenue, margins, cash flow, debt.", (),
     ("Reports revenue, margin and cash flow trends", "Gives a valuation range")),
    ("sentiment", "Gauge market sentiment: {subject}", "News, analyst ratings and social signals.", (),
     ("Summarises recent news and ratings", "Rates sentiment as positive, neutral or negative")),
    ("competitive_intelligence", "Map the competition: {subject}", "Rivals, market share and moats.", (),
     ("Names the main rivals with market shares", "States the moat and the main threats")),
    ("regulatory", "Assess regulatory exposure: {subject}", "Pending rules, investigations and litigation.", (),
     ("Lists pending rules and investigations", "Rates the regulatory risk")),
    ("macro", "Assess the macroeconomic picture: {subject}", "Rates, inflation, FX and the cycle.", (),
     ("States the rate, inflation and FX exposure", "Says how the cycle affects the case")),
]

_SOFTWARE_WORDS = re.compile(r"\b(api|rest|service|backend|endpoint|app|application|website|server|database|cli|"
                             r"library|sdk|microservice|crud|web)\b", re.I)
_CONTENT_WORDS = re.compile(r"\b(article|blog|post|essay|newsletter|story|guide|whitepaper|report)\b", re.I)
_LEADING = re.compile(r"^\s*(please\s+)?(build|create|make|write|implement|develop|design|draft|produce|set up|"
                      r"plan|organi[sz]e|prepare)\s+"
                      r"(me\s+)?(an?|the)?\s*", re.I)
_ERRAND_WORDS = re.compile(r"\b(attend|conference|trip|travel|visit|flight|hotel|booking|holiday|vacation|summit|"
                           r"event)\b", re.I)
_INVESTMENT_WORDS = re.compile(r"\b(invest|investment|investing|stock|shares|valuation|acquire|acquisition|portfolio|"
                               r"due diligence)\b", re.I)
_FRONTEND_WORDS = re.compile(r"\b(ui|frontend|front-end|website|web app|dashboard|screen)\b", re.I)


def subject_of(task: str) -> str:
    """'Build a REST API for todo management' -> 'todo management'."""
    text = _LEADING.sub("", task.strip().rstrip("."))
    m = re.search(r"\b(?:for|about|on|of)\s+(.+)$", text, re.I)
    return (m.group(1) if m else text).strip() or task.strip()


def plan(brief: dict[str, Any]) -> dict[str, Any]:
    """Decompose the task into subtasks the available roles can do."""
    task: str = brief["task"]
    steps = _fitted(task, brief.get("roles", []))
    subject = subject_of(task)
    ids = {cap: f"T{i}" for i, (cap, *_rest) in enumerate(steps, start=1)}
    subtasks = [
        {
            "id": ids[cap],
            "title": title.format(subject=subject),
            "description": desc,
            "capability": cap,
            "depends_on": [ids[d] for d in deps if d in ids],
            "acceptance_criteria": list(criteria),
        }
        for cap, title, desc, deps, criteria in steps
    ]
    summary = f"Split '{task}' into {len(subtasks)} subtasks; independent ones run in parallel."
    return {"summary": summary, "subtasks": subtasks}


def _fitted(task: str, roles: list[dict[str, Any]]) -> list[_Step]:
    """The steps of the first template the task's words call for that gives the team two or more steps to do
    (the generic template last), else one step per role."""
    available = {c for role in roles for c in role.get("capabilities", [])}
    software = [s for s in _SOFTWARE if s[0] != "frontend" or _FRONTEND_WORDS.search(task)]
    called = [steps for words, steps in ((_SOFTWARE_WORDS, software), (_CONTENT_WORDS, _CONTENT),
                                         (_ERRAND_WORDS, _ERRANDS), (_INVESTMENT_WORDS, _INVESTMENT))
              if words.search(task)]
    for steps in [*called, _GENERIC]:
        fitted = [s for s in steps if not available or s[0] in available]
        if len(fitted) >= 2:
            return fitted
    return _one_per_role(roles)


def _one_per_role(roles: list[dict[str, Any]]) -> list[_Step]:
    """A team none of whose skills fit a template: each role contributes its main skill, in turn."""
    steps: list[_Step] = []
    for role in roles:
        cap = role["capabilities"][0]
        skill = cap.replace("_", " ")
        steps.append((cap, f"Contribute the {skill} part of {{subject}}", f"The {skill} work the task needs.",
                      (steps[-1][0],) if steps else (), (f"Delivers the {skill} part", "States its assumptions")))
    return steps


def tool_args(parameters: dict[str, Any], brief: dict[str, Any]) -> dict[str, Any]:
    """Arguments for one of a worker's own tools, made from its JSON schema: text from the subtask, small numbers."""
    sub = brief.get("subtask", {})
    text = sub.get("description") or sub.get("title") or brief.get("task", "")
    filler = {"string": text, "integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}
    props: dict[str, Any] = parameters.get("properties", {})
    return {name: filler.get(props[name].get("type", "string"), text) for name in parameters.get("required", [])
            if name in props}


def draft(brief: dict[str, Any], *, seed: int, flaw_rate: float,
          tool_results: dict[str, str] | None = None, mode: str | None = None,
          shared: list[str] | None = None) -> tuple[str, list[str]]:
    """The artifact a worker writes: its content and the criteria it really addresses.

    A seeded share of first drafts leaves one criterion out, so the review loop has work. What the
    worker's own tools answered goes into the artifact under "Tool results"; `shared` lines (the shared context it
    was given) after the substance. 'bug': a first storage layer with an off-by-one bug.
    """
    sub = brief["subtask"]
    criteria: list[str] = list(sub["acceptance_criteria"])
    rng = random.Random(f"{seed}:{sub['id']}:{sub['title']}")
    if brief.get("round", 1) == 1 and len(criteria) > 1 and rng.random() < flaw_rate:
        criteria.remove(rng.choice(criteria))
    lines = [f"# {sub['title']}", "", sub["description"], ""]
    if brief.get("inputs"):
        lines += ["Builds on: " + ", ".join(f"{i['task_id']} ({i['path']})" for i in brief["inputs"]), ""]
    if brief.get("feedback"):
        lines += ["Addressed review points: " + "; ".join(f.splitlines()[0] for f in brief["feedback"]), ""]
    resource = re.sub(r"\W+", "_", subject_of(sub["title"]).split()[0].lower()) or "item"
    text = " ".join([sub["title"], sub["description"], *sub["acceptance_criteria"]]).lower()
    api = "endpoint" in text or "contract" in text  # an API-shaped subtask gets API-shaped content
    code = brief.get("path", "").endswith(".py")
    if api and not code:
        lines += _sections(sub["capability"], resource)
    lines += shared or []
    if tool_results:
        lines += ["## Tool results", "", *(f"- {name}: {text}" for name, text in tool_results.items()), ""]
    lines += ["## Acceptance criteria", "", *(f"- [x] {c}: {_how(c, sub)}" for c in criteria)]
    body = "\n".join(lines) + "\n"
    if code:
        buggy = mode == "bug" and brief.get("round", 1) == 1
        body = '"""' + body + '"""\n' + ("\n" + _code(sub["capability"], resource, brief.get("inputs", []), buggy)
                                          if api else "")
    return body, criteria


def review(brief: dict[str, Any]) -> dict[str, Any]:
    """Check an artifact against its acceptance criteria: every criterion must be addressed."""
    artifact: str = brief["artifact"]
    unmet = [c for c in brief["acceptance_criteria"] if c.lower() not in artifact.lower()]
    if unmet:
        return {"approved": False, "unmet_criteria": unmet,
                "feedback": "Not addressed yet: " + "; ".join(unmet)}
    return {"approved": True, "unmet_criteria": [], "feedback": "Meets every acceptance criterion."}


def report(brief: dict[str, Any]) -> str:
    """The final assembly: what was delivered, where, and what is open (fenced data quoted without its fence)."""
    lines = [f"# {brief['task']}", "", brief.get("plan_summary", ""), "", "## Deliverables"]
    for t in brief["tasks"]:
        where = f" -> `{t['path']}`" if t.get("path") else ""
        lines.append(f"- {t['id']} {t['title']} ({t['assignee']}, {t['status']}){where}")
        if t.get("summary"):
            lines.append(f"  {unfence(t['summary'])}")
    open_items = [t for t in brief["tasks"] if t["status"] != "done"]
    lines += ["", "## Open items"]
    lines += [f"- {t['id']}: {unfence(t.get('reason') or t['status'])}" for t in open_items] or ["- none"]
    if brief.get("comment"):
        lines += ["", f"Approver's note: {brief['comment']}"]
    return "\n".join(lines) + "\n"


def summary(brief: dict[str, Any], path: str) -> str:
    sub = brief["subtask"]
    return f"Wrote {path}: {sub['title'].lower()}, covering {len(sub['acceptance_criteria'])} criteria."


def _how(criterion: str, sub: dict[str, Any]) -> str:
    return f"handled in this {sub['capability']} deliverable"


def _endpoints(resource: str) -> list[tuple[str, str, str, str, str]]:
    """One contract for every artifact: (method, path, handler, request, responses)."""
    one = f"/{resource}s/{{id}}"
    return [
        ("GET", f"/{resource}s", f"list_{resource}s", "-", "200 list"),
        ("POST", f"/{resource}s", f"create_{resource}", "{title}", "201 created; 422 invalid"),
        ("GET", one, f"get_{resource}", "-", "200; 404 missing"),
        ("PATCH", one, f"update_{resource}", "{title?, done?}", "200; 404 missing; 422 invalid"),
        ("DELETE", one, f"delete_{resource}", "-", "204; 404 missing"),
    ]


def _sections(capability: str, resource: str) -> list[str]:
    """The substance of a Markdown artifact, by the skill that wrote it."""
    endpoints = _endpoints(resource)
    if capability == "design":
        return ["## Resources", "", "| resource | fields |", "|---|---|",
                f"| {resource} | id: int, title: str, done: bool, created_at: datetime |", "",
                "## Endpoints", "", "| method | path | request | responses |", "|---|---|---|---|",
                *(f"| {m} | {p} | {req} | {res} |" for m, p, _, req, res in endpoints), "",
                "## Errors", "", '`{"error": {"code": "not_found" | "invalid", "message": str}}`', ""]
    if capability == "documentation":
        return ["## Install and run", "", "```sh", "pip install -e .", "python -m app", "```", "",
                "## API", "", *(f"- `{m} {p}` -> {res}" for m, p, _, _, res in endpoints), ""]
    if capability == "frontend":
        return ["## Screens", "", f"- {resource} list with a done toggle", f"- new {resource} form",
                f"- {resource} detail with edit and delete", ""]
    return []


def _code(capability: str, resource: str, inputs: list[dict[str, Any]], buggy: bool) -> str:
    """Python that does what the subtask says; the tests import the storage layer they build on, when it is
    Python ('bug': the storage layer's `get` is off by one)."""
    cls = resource.title().replace("_", "")
    if capability == "testing":
        module = next((i["path"].removesuffix(".py") for i in inputs if i["path"].endswith("_persistence.py")), None)
        if module is None:
            return "def test_contract_is_documented():\n    assert __doc__\n"
        return (f"from {module} import {cls}Store\n\n\ndef test_create_and_get():\n    store = {cls}Store()\n"
                f"    item = store.create({{'title': 'x'}})\n    assert store.get(item['id'])['title'] == 'x'\n")
    if capability == "persistence":
        key = "id - 1" if buggy else "id"
        return (f"class {cls}Store:\n    def __init__(self):\n        self._rows, self._next = {{}}, 1\n\n"
                f"    def create(self, data):\n        row = {{'id': self._next, **data}}\n"
                f"        self._rows[self._next], self._next = row, self._next + 1\n        return row\n\n"
                f"    def get(self, id):\n        if {key} not in self._rows:\n"
                f"            raise KeyError(f'{resource} {{id}} not found')\n        return self._rows[{key}]\n")
    routes = "".join(f"    ({m!r}, {p!r}): {h!r},\n" for m, p, h, _, _ in _endpoints(resource))
    return f"ROUTES = {{\n{routes}}}\n"
