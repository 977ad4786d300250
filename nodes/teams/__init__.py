"""Finding teams: the files shipped with troupe, the user's, and explicit paths.

A team named NAME is the file NAME.yaml (or .yml) in, from the highest precedence down: each folder
of `$TROUPE_TEAMS` (separated like PATH), the user's folder `$XDG_CONFIG_HOME/troupe/teams`
(default `~/.config/troupe/teams`), and the built-in teams beside this module. Nothing is cached:
a team file edited between two runs is read anew.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from state.roles import Team, TeamError
from state.team_file import read_team

BUILT_IN = Path(__file__).resolve().parent
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class TeamEntry:
    """A team file found by name, with where it comes from."""

    name: str
    path: Path
    origin: str
    """'built-in', 'user' or '$TROUPE_TEAMS'."""


def team_dirs() -> list[tuple[str, Path]]:
    """The folders searched for teams, highest precedence first."""
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    extra = [Path(p) for p in os.environ.get("TROUPE_TEAMS", "").split(os.pathsep) if p]
    return [*(("$TROUPE_TEAMS", p) for p in extra), ("user", config / "troupe" / "teams"), ("built-in", BUILT_IN)]


def available() -> list[TeamEntry]:
    """Every team file found, the one that wins for each name first, then any it shadows."""
    entries: list[TeamEntry] = []
    for origin, folder in team_dirs():
        if folder.is_dir():
            entries += [TeamEntry(p.stem, p, origin) for p in sorted(folder.iterdir()) if p.suffix in SUFFIXES]
    return sorted(entries, key=lambda e: e.name)  # stable: within a name, precedence order is kept


def find(name: str) -> TeamEntry:
    for entry in available():
        if entry.name == name:
            return entry
    known = ", ".join(sorted({e.name for e in available()}))
    raise TeamError(f"unknown team {name!r}; known: {known} (or give a file with --team-file PATH)")


def load_team(team: Team | str | Path) -> Team:
    """A team from an object, a path to a team file, or a name looked up in the team folders."""
    if isinstance(team, Team):
        return team
    if isinstance(team, Path):
        return read_team(team)
    entry = find(team)
    loaded = read_team(entry.path)
    if loaded.name != entry.name:
        raise TeamError(f"{entry.path}: declares team {loaded.name!r}; name the file {loaded.name}.yaml")
    return loaded
