"""The consensus pattern's settings, state, ballots and decision rule.

Safety (why an outcome can be trusted). n voters answer; at most f of them may be faulty: they lie
(all the same way, the worst case), return garbage, fail or hang. m faulty voters show as missing
votes, so at most f - m of the answers can be lies. An answer A is *safe* when, whichever f - m of
the answering voters are the liars, A still holds a strict majority of the honest voters' weight:

    2 * W(A) - W(answered) > the weight of A's f - m heaviest supporters       (and m <= f)

With every weight 1 that is `votes(A) > (n + f) / 2 - m`. So a safe answer is always the honest
majority's answer while at most f voters are faulty, and it needs n >= 3f + 1: then n - f honest
voters who agree decide even when f lie or fail. Beyond f, a lie is reported only where the liars
outnumber the honest voters who answered: at n = 3f + 1, f + 1 coordinated liars (indeed up to 2f)
leave *no safe consensus*, not their answer. (tests/test_consensus.py checks this for every n <= 12.)

The rule adds to that test: `majority` counts each voter once; `weighted` counts `weights[role]`
(default 1), and the f heaviest voters must carry less than a third of the weight (n >= 3f + 1 by
weight); `quorum` also needs at least `quorum` x n matching votes (default 2/3, at most n - f).
Confidence is reported, never counted: a liar is confident.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict  # pydantic builds schemas (Studio's input form) only from this one on 3.11

from state.roles import Team, TeamError

Rule = Literal["majority", "weighted", "quorum"]
DEFAULT_QUORUM = 2 / 3


class ConsensusSettings(BaseModel):
    """The team file's `patterns.consensus` section, overridden by `build()` keywords."""

    model_config = ConfigDict(extra="forbid")

    voters: int | list[str] | None = Field(
        default=None, description="How many voters (the team's roles in turn, repeats numbered 'qa_2'), or the roles "
                                  "by name (a role named twice votes twice); default: every role once.")
    rule: Rule = Field(default="majority", description="How votes count: majority, weighted or quorum.")
    weights: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Rule 'weighted': weight by role name (default 1).")
    quorum: float | None = Field(default=None, gt=0.5, le=1,
                                 description="Rule 'quorum': the share of all voters that must agree (default 2/3).")
    faults: int | None = Field(default=None, ge=0, description="Faulty voters tolerated, f (default (n - 1) // 3).")

    @field_validator("voters", mode="before")
    @classmethod
    def _voters(cls, value: object) -> object:
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError("give a number of voters (at least 1) or a list of role names")


class Ballot(BaseModel):
    """One voter's answer, given without seeing anyone else's."""

    answer: str = Field(description="The answer alone, as short as possible: the option itself when the question "
                                    "names options, a number, a name, yes or no.")
    confidence: float = Field(ge=0, le=1, description="How sure you are, from 0 to 1.")
    rationale: str = Field(description="One sentence on why.")


class VoteOrder(TypedDict):
    """What one voter is sent: the question and who it is, nothing of the others."""

    voter: str
    role: str
    question: str


class Vote(TypedDict):
    """A voter's counted vote, or why it has none."""

    answer: str | None
    """The normalized answer compared in the tally (`nodes.voter.normalize`); None: no vote (see `fault`)."""
    said: str
    confidence: float
    fault: str | None


class Verdict(TypedDict):
    """The tally's decision. Answers appear as their first voter spelled them."""

    outcome: str | None
    """The safe answer; None: no safe consensus."""
    leading: str | None
    tally: dict[str, int]
    """Answer -> votes, the leading answer first."""
    weight: dict[str, float]
    agreement: float
    """Votes for the most-voted answer / all voters (missing votes count against it)."""
    dissenters: dict[str, str]
    """Voters who answered otherwise, with their answers."""
    faulty: dict[str, str]
    """Voters without a vote, with the reason."""
    rule: Rule
    voters: int
    faults: int
    needed: str
    """What an outcome needed, in words."""
    reason: str
    """Why the leading answer is safe, or why there is no safe consensus."""


def merge_votes(left: dict[str, Vote] | None, right: dict[str, Vote]) -> dict[str, Vote]:
    return {**(left or {}), **right}


class ConsensusInput(TypedDict):
    task: str


class ConsensusOutput(TypedDict, total=False):
    status: Literal["voting", "completed"]
    result: str | None
    verdict: Verdict | None


class ConsensusState(TypedDict, total=False):
    """Checkpointed state: one short vote per voter and the verdict; rationales live in the journal."""

    task: str
    votes: Annotated[dict[str, Vote], merge_votes]
    verdict: Verdict | None
    status: Literal["voting", "completed"]
    result: str | None


@dataclass(frozen=True)
class Electorate:
    """The voters of a run and how their votes count (settings resolved against the team)."""

    voters: dict[str, str]
    """Agent name -> role name, in voting order."""
    rule: Rule
    faults: int
    weights: dict[str, float]
    """Agent name -> weight (1 unless the rule is 'weighted')."""
    quorum_votes: int = 0


def electorate(team: Team, s: ConsensusSettings, where: Callable[[str], str] | None = None) -> Electorate:
    """The voters and the rule for `team`; a setting that cannot work raises TeamError naming it.

    `where(setting)` says where a setting came from (default: the team file's line).
    """
    where = where or (lambda name: team.where("patterns", "consensus", name))

    roles = [r.name for r in team.roles]
    if s.voters is None or isinstance(s.voters, int):
        picked = [roles[i % len(roles)] for i in range(len(roles) if s.voters is None else s.voters)]
    elif unknown := [v for v in s.voters if v not in roles]:
        raise TeamError(f"{where('voters')}: team {team.name!r} has no role {unknown[0]!r}; roles: {', '.join(roles)}")
    else:
        picked = list(s.voters)
    voters: dict[str, str] = {}
    for role in picked:
        seen = sum(r == role for r in voters.values())
        name = f"{role}_{seen + 1}" if seen else role
        if name in voters or (seen and name in roles):
            raise TeamError(f"{where('voters')}: numbered voter {name!r} clashes with the team's role of that name; "
                            "name the voters by role instead")
        voters[name] = role
    n = len(voters)
    f = (n - 1) // 3 if s.faults is None else s.faults
    if n < 3 * f + 1:
        raise TeamError(f"{where('faults')}: tolerating {f} faulty voters needs at least {3 * f + 1} voters "
                        f"(n >= 3f + 1), there are {n}: add voters or lower faults")
    for name, rule in (("weights", "weighted"), ("quorum", "quorum")):
        if getattr(s, name) not in (None, {}) and s.rule != rule:
            raise TeamError(f"{where(name)}: {name} counts only under rule {rule!r} (the rule is {s.rule!r})")
    if unknown := sorted(set(s.weights) - set(picked)):
        raise TeamError(f"{where('weights')}: no voter has role {unknown[0]!r}; voters' roles: "
                        f"{', '.join(dict.fromkeys(picked))}")
    weights = {agent: s.weights.get(role, 1.0) for agent, role in voters.items()}
    heaviest = sorted(weights.values(), reverse=True)[:f]
    if 3 * sum(heaviest) >= sum(weights.values()):
        raise TeamError(f"{where('weights')}: the {f} heaviest voters carry {sum(heaviest):g} of "
                        f"{sum(weights.values()):g}; to tolerate {f} faulty voters they must carry less than a third")
    quorum_votes = 0
    if s.rule == "quorum":
        quorum = s.quorum or DEFAULT_QUORUM
        quorum_votes = math.ceil(quorum * n - 1e-9)
        if quorum_votes > n - f:
            raise TeamError(f"{where('quorum')}: a quorum of {quorum:g} needs {quorum_votes} of {n} votes, but with "
                            f"{f} faulty voters only {n - f} are sure to come: lower quorum to {(n - f) / n:.2f} "
                            "or faults")
    return Electorate(voters=voters, rule=s.rule, faults=f, weights=weights, quorum_votes=quorum_votes)


def decide(e: Electorate, votes: Mapping[str, Vote]) -> Verdict:
    """Count the votes by the electorate's rule; the outcome is the leading answer only if it is safe."""
    answered = [a for a in e.voters if (v := votes.get(a)) and v["answer"]]
    faulty = {a: (votes[a]["fault"] if a in votes else None) or "no vote recorded" for a in e.voters
              if a not in answered}
    backers: dict[str, list[str]] = {}
    for agent in answered:
        backers.setdefault(str(votes[agent]["answer"]), []).append(agent)
    shown = {answer: votes[agents[0]]["said"] or answer for answer, agents in backers.items()}  # first spelling

    def strength(answer: str) -> tuple[float, int]:
        return sum(e.weights[a] for a in backers[answer]), len(backers[answer])

    ranked = sorted(backers, key=lambda a: (*(-x for x in strength(a)), a))
    tied = [shown[a] for a in ranked if strength(a) == strength(ranked[0])]
    leading = ranked[0] if len(tied) == 1 else None
    safe, needed, reason = _judge(e, backers[leading] if leading else [], answered, len(faulty))
    if len(tied) > 1:
        reason = f"a tie between {' and '.join(map(repr, tied))}"
    name = shown[leading] if leading else None
    return Verdict(
        outcome=name if safe else None, leading=name,
        tally={shown[a]: len(backers[a]) for a in ranked}, weight={shown[a]: strength(a)[0] for a in ranked},
        agreement=round(len(backers[ranked[0]]) / len(e.voters) if ranked else 0.0, 4),
        dissenters={a: votes[a]["said"] for a in answered if leading and a not in backers[leading]}, faulty=faulty,
        rule=e.rule, voters=len(e.voters), faults=e.faults, needed=needed, reason=reason,
    )


def _judge(e: Electorate, support: list[str], answered: list[str], missing: int) -> tuple[bool, str, str]:
    """(safe?, what an outcome needs, why) for the answer `support` voted for: the test in the module docstring."""
    n, f = len(e.voters), e.faults
    lies = max(f - missing, 0)
    top = sum(sorted((e.weights[a] for a in support), reverse=True)[:lies])
    given, held = sum(e.weights[a] for a in answered), sum(e.weights[a] for a in support)
    bar = (given + top) / 2
    unit = "votes" if e.rule != "weighted" else "weight"
    needed = f"more than {bar:g} of the {given:g} {unit} given" if missing <= f else f"at most {f} missing votes"
    if e.rule == "quorum":
        needed = f"at least {e.quorum_votes} of {n} votes and {needed}"
    if not support:
        return False, needed, "no voter gave an answer"
    if missing > f:
        return False, needed, f"{missing} voters gave no vote, more than the {f} faulty ones tolerated"
    if len(support) < e.quorum_votes:
        return False, needed, f"it has {len(support)} votes, short of the quorum of {e.quorum_votes}"
    if held <= bar + 1e-9:  # weights are floats: a tie in exact arithmetic is no majority
        return False, needed, (f"it has {held:g} {unit}: if {lies} of its voters lied, it might not be "
                               "the honest voters' majority")
    if lies:
        return True, needed, f"it is the honest voters' majority even if {lies} of its voters lied"
    if f == 0:
        return True, needed, "it holds a strict majority (f = 0: no faulty voter tolerated)"
    return True, needed, f"it is the majority of the voters who answered; the {missing} missing votes use up f = {f}"
