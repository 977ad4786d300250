"""Ready-made teams, declared as data. The supervisor assigns each subtask to a role by capability."""

from __future__ import annotations

from state.roles import Role, Team

SOFTWARE = Team(
    name="software",
    description="A small product team: design, build, test and document software.",
    roles=[
        Role(name="architect", capabilities=["design", "architecture"], artifact_suffix=".md",
             prompt="You are a software architect. Produce precise contracts others can build on."),
        Role(name="db_engineer", capabilities=["persistence", "database"], artifact_suffix=".py",
             prompt="You are a database engineer. Write a clean, safe storage layer."),
        Role(name="backend", capabilities=["backend", "implementation"], artifact_suffix=".py",
             prompt="You are a backend engineer. Implement exactly the agreed contract."),
        Role(name="frontend", capabilities=["frontend", "ui"], artifact_suffix=".md",
             prompt="You are a frontend engineer. Design screens that cover every user task."),
        Role(name="qa", capabilities=["testing", "qa"], artifact_suffix=".py",
             prompt="You are a QA engineer. Write tests that would catch real regressions."),
        Role(name="tech_writer", capabilities=["documentation", "writing", "editing"], artifact_suffix=".md",
             prompt="You are a technical writer. Write for a reader who has never seen the project."),
        Role(name="researcher", capabilities=["research", "outline", "analysis"], artifact_suffix=".md",
             prompt="You are a researcher. Separate facts from assumptions and name your sources."),
    ],
)

CONTENT = Team(
    name="content",
    description="A content pipeline: research, outline, write, edit.",
    roles=[
        Role(name="researcher", capabilities=["research"], prompt="You are a researcher. Name your sources."),
        Role(name="strategist", capabilities=["outline"], prompt="You are a content strategist. Shape the argument."),
        Role(name="writer", capabilities=["writing"], prompt="You are a writer. Clear, concrete, no filler."),
        Role(name="editor", capabilities=["editing"], prompt="You are an editor. Tighten and fact-check."),
    ],
)

TEAMS: dict[str, Team] = {t.name: t for t in (SOFTWARE, CONTENT)}

def get_team(name: str) -> Team:
    try:
        return TEAMS[name]
    except KeyError:
        raise LookupError(f"unknown team {name!r}; known: {', '.join(sorted(TEAMS))}") from None
