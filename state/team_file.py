"""Read a team from a YAML file; every problem becomes one `TeamError` line: 'team.yaml:14: roles[2].prompt: ...'.

The YAML is parsed safely and its node tree walked once to learn the line of every field, so both
validation errors here and later errors (`Team.where`) can point into the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.reader import ReaderError

from state.roles import Team, TeamError, dotted

Loc = tuple[str | int, ...]

NOT_A_MAPPING = "a team file is a mapping with name, description and roles"


def read_team(path: Path) -> Team:
    """The team declared in the UTF-8 YAML file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise TeamError(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})") from exc
    except OSError as exc:
        raise TeamError(f"{path}: cannot read team file: {exc.strerror or exc}") from exc
    return parse_team(text, str(path))


def parse_team(text: str, source: str) -> Team:
    """The team declared in YAML `text`; `source` names it in errors (usually the file's path)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TeamError(f"{source}:{_yaml_line(exc, text)}: invalid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise TeamError(f"{source}:1: {NOT_A_MAPPING}")
    lines = _field_lines(node, source)
    try:
        team = Team.model_validate(data)
    except ValidationError as exc:
        raise TeamError(_describe(exc, source, lines)) from exc
    return team.located_at(source, lines)


def _field_lines(node: yaml.Node, source: str, loc: Loc = ()) -> dict[Loc, int]:
    """The 1-based line of every field under `node`: a key's line for a mapping entry, an item's for a list.

    A key given twice in one mapping is an error (plain YAML loading would silently keep the last).
    """
    lines: dict[Loc, int] = {loc: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                field = (*loc, key.value)
                if field in lines:
                    raise TeamError(f"{source}:{key.start_mark.line + 1}: {dotted(field)}: given twice "
                                    f"(also line {lines[field]})")
                lines |= _field_lines(value, source, field)
                lines[field] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines |= _field_lines(item, source, (*loc, i))
    return lines


def _yaml_line(exc: yaml.YAMLError, text: str) -> int:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        return exc.problem_mark.line + 1
    if isinstance(exc, ReaderError):
        return text.count("\n", 0, exc.position) + 1
    return 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        return exc.problem
    return str(exc).splitlines()[0]


def _describe(exc: ValidationError, source: str, lines: dict[Loc, int]) -> str:
    """'source:line: field: message' for the first error, noting how many more there are."""
    # A misspelt field explains a missing one: report it first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    loc, message = _field_and_message(errors[0])
    line = next(lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}:{line}: {dotted(loc) or 'team'}: {message}{more}"


def _field_and_message(error: ErrorDetails) -> tuple[Loc, str]:
    """Which field an error is about and what to say about it, in the words of a team file."""
    loc: Loc = tuple(error["loc"])
    ctx = error.get("ctx", {})
    if "loc" in ctx:
        return (*loc, *ctx["loc"]), ctx["message"]
    if error["type"] == "missing":
        return loc, "field required"
    if error["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = f" (allowed: {', '.join(model.model_fields)})" if model else ""
        return loc, f"unknown field {loc[-1]!r}{allowed}"
    return loc, error["msg"].removeprefix("Value error, ")


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model that validates the mapping at `loc` of a team, following fields, list items and dict values."""
    kind: Any = Team
    for part in loc:
        if _is_model(kind):
            field = kind.model_fields.get(str(part))
            if field is None:
                return None
            kind = field.annotation
        elif get_args(kind):
            kind = get_args(kind)[-1]
        else:
            return None
    return kind if _is_model(kind) else None


def _is_model(kind: Any) -> bool:
    return get_origin(kind) is None and isinstance(kind, type) and issubclass(kind, BaseModel)
