"""Team files: YAML in, a validated `Team` out, and every mistake reported as 'file:line: field: message'."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from state.roles import McpServer, TeamError
from state.team_file import parse_team, read_team

ROOT = Path(__file__).resolve().parents[1]

VALID = dedent("""\
    name: demo
    description: A demo team.
    mcp_servers:
      notes:
        command: notes-server
        args: [--stdio]
    patterns:
      sequential:
        stages: [writer, editor]
    roles:
      - name: writer
        capabilities: [writing]
        prompt: Write.
      - name: editor
        capabilities: [editing]
        prompt: Edit.
        tools:
          - read_file
          - mcp:notes/add
    """)


def test_a_valid_file_gives_its_team_with_patterns_and_mcp_servers(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(VALID, encoding="utf-8")
    team = read_team(path)
    assert [r.name for r in team.roles] == ["writer", "editor"]
    assert team.patterns == {"sequential": {"stages": ["writer", "editor"]}}
    assert team.mcp_servers == {"notes": McpServer(command="notes-server", args=["--stdio"])}
    assert team.role("editor").tools == ["read_file", "mcp:notes/add"]


def test_a_team_read_from_a_file_points_into_it(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(VALID, encoding="utf-8")
    team = read_team(path)
    assert team.where("roles", 1, "tools", 0) == f"{path}:18: roles[1].tools[0]"
    assert team.where("roles", 1, "model") == f"{path}:14: roles[1].model"  # not in the file: its role's line


BAD = {
    "yaml syntax": (
        """\
        name: demo
        description: [unclosed
        roles: []
        """,
        "team.yaml:3: invalid YAML: expected ',' or ']', but got ':'",
    ),
    "missing field": (
        """\
        name: demo
        description: d
        roles:
          - name: a
            capabilities: [x]
            prompt: p
          - name: b
            capabilities: [y]
            prompt: p
          - name: c
            prompt: p
        """,
        "team.yaml:10: roles[2].capabilities: field required",
    ),
    "unknown field": (
        """\
        name: demo
        description: d
        roles:
          - name: a
            capabilities: [x]
            prompt: p
            tool: [read_file]
        """,
        "team.yaml:7: roles[0].tool: unknown field 'tool' (allowed: name, capabilities, prompt, model_role, model,"
        " model_settings, tools, artifact_suffix, memory, resources, a2a)",
    ),
    "duplicate role": (
        """\
        name: demo
        description: d
        roles:
          - name: a
            capabilities: [x]
            prompt: p
          - name: b
            capabilities: [y]
            prompt: p
          - capabilities: [z]
            name: a
            prompt: p
        """,
        "team.yaml:11: roles[2].name: duplicate role name 'a' (also roles[0])",
    ),
    "undeclared mcp server": (
        """\
        name: demo
        description: d
        mcp_servers:
          notes: {url: "http://127.0.0.1:8000/mcp"}
        roles:
          - name: a
            capabilities: [x]
            prompt: p
            tools:
              - read_file
              - mcp:nowhere
        """,
        "team.yaml:11: roles[0].tools[1]: unknown MCP server 'nowhere' (mcp_servers: notes)",
    ),
    "mcp server with two transports": (
        """\
        name: demo
        description: d
        mcp_servers:
          notes:
            command: notes-server
            url: http://127.0.0.1:8000/mcp
        roles:
          - name: a
            capabilities: [x]
            prompt: p
        """,
        "team.yaml:4: mcp_servers.notes: give either 'command' (stdio) or 'url' (streamable HTTP)",
    ),
    "several errors": (
        """\
        name: demo
        description: d
        roles:
          - name: a
          - name: B
            capabilities: [x]
            prompt: p
        """,
        "team.yaml:4: roles[0].capabilities: field required (and 2 more)",
    ),
    "key given twice": (
        """\
        name: demo
        description: d
        roles:
          - name: a
            capabilities: [x]
            prompt: p
            prompt: q
        """,
        "team.yaml:7: roles[0].prompt: given twice (also line 6)",
    ),
    "contract without fields": (
        """\
        name: demo
        description: d
        roles:
          - name: a
            capabilities: [x]
            prompt: p
        context:
          - kind: contract
            title: auth API
            text: the session
            touches: [x]
        """,
        "team.yaml:8: context[0].contract.fields: field required",
    ),
    "bad resource name": (
        """\
        name: demo
        description: d
        roles:
          - name: a
            capabilities: [x]
            prompt: p
            resources: ["-rm -rf"]
        """,
        "team.yaml:7: roles[0].resources: resource name '-rm -rf': use 1-100 letters, digits, spaces or ._:/- "
        "(e.g. 'test-suite')",
    ),
    "not a mapping": (
        """\
        - name: demo
        """,
        "team.yaml:1: a team file is a mapping with name, description and roles",
    ),
}


@pytest.mark.parametrize(("text", "message"), BAD.values(), ids=BAD.keys())
def test_a_bad_file_is_one_line_naming_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(TeamError) as raised:
        parse_team(dedent(text), "team.yaml")
    assert str(raised.value) == message


def test_a_missing_file_says_it_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(TeamError) as raised:
        read_team(path)
    assert str(raised.value) == f"{path}: cannot read team file: No such file or directory"


def test_a_file_that_is_not_utf8_says_where(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_bytes(b"name: demo\ndescription: caf\xe9\n")
    with pytest.raises(TeamError) as raised:
        read_team(path)
    assert str(raised.value) == f"{path}:2: not UTF-8 text (byte 0xe9)"


@pytest.mark.parametrize(
    ("name", "roles"),
    [
        ("software", ["architect", "db_engineer", "backend", "frontend", "qa", "tech_writer", "researcher"]),
        ("content", ["researcher", "outliner", "writer", "fact_checker", "seo", "editor"]),
        ("support", ["billing", "technical", "sales", "general"]),
    ],
)
def test_the_shipped_team_files_parse(name: str, roles: list[str]) -> None:
    team = read_team(ROOT / "nodes" / "teams" / f"{name}.yaml")
    assert team.name == name
    assert [r.name for r in team.roles] == roles
