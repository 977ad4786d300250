"""The README's examples run as written: its Python blocks, its team files and the commands that use them.

Python blocks that build a `ChatOpenAI` talk to the local OpenAI-compatible test server (through the
standard `OPENAI_BASE_URL` and `OPENAI_API_KEY` variables), which answers with the offline model.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli_env
from openai_server import OpenAICompatServer

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```", README, re.S)
TEAM_FILES = {m.group(1): m.group(0) for m in re.finditer(r"# (\w+\.yaml)\n.*?(?=```)", README, re.S)}
COMMANDS = [line for block in re.findall(r"```sh\n(.*?)```", README, re.S) for line in block.splitlines()
            if re.match(r"troupe (teams check|run \S+ .* --team-file)", line)]

# What each Python block prints, found by a line of the block.
EXPECTED = {
    'ctx = RunContext(workspace_root="workspaces", team="content")': [
        "awaiting_approval", "['researcher', 'outliner', 'writer', 'editor']", re.compile(r"completed .*SUMMARY\.md"),
    ],
    "tools=[word_count]) as r:": ["awaiting_approval ['researcher', 'writer']"],
    "agents=[editor]": ["T4 done"],
    'stubborn = RunContext(fail={"editor": "disagree"})': [
        "completed", "- S3 writer (still flagged by editor after 2 rounds: round 2's verdict repeats round 1's): "
        "editor disputes that it meets: Covers the "
        "writing part of the task completely",
    ],
    'ctx = RunContext(fail={"analyst_2": "timeout"})': [
        "completed", "T1 done T1-analysis.md", "T2 failed timed out after 0.5 s on each of 3 attempts",
        "T3 done T3-analysis.md",
    ],
    'ctx = RunContext(fail={"backend": "disagree"})': ["completed round limit 3 against"],
    'two = RunContext(fail={"backend": "lie", "qa": "lie"})': [
        "2^10 {'2^10': 5, '10^3': 2} ['backend', 'qa'] 71%",
        "None - it has 4 votes: if 2 of its voters lied, it might not be the honest voters' majority",
    ],
    'thread_id="swarm")': [
        "completed ['architect', 'backend+qa'] architect",
        "['user -> architect', 'architect -> backend', 'architect -> qa']",
    ],
    'ctx = RunContext(fail={"backend": "raise"})': [
        "completed {'task': ['E1'], 'design': ['E2'], 'persistence': ['E3'], 'frontend': ['E4'], 'documentation': "
        "['E5']}", "E2 design backend", "E3 persistence backend",
    ],
    'fail={"backend": "complex"})  # backend': [
        "approval 8", "approval 12", "completed", "split T3 -> T3.1, T3.2, T3.3", "amend scope -> T6, T7",
        "split T6 -> T6.1, T6.2",
    ],
    '"Plan a product launch")': ["completed ['content', 'design', 'outreach']"],
    "tools=[send_invoice]) as runner:": ["completed 1"],
    'thread_id="capped")': ["out_of_budget 4000", "awaiting_approval True", "True capped-again awaiting_approval"],
    'team="support")': [
        "completed [('billing', 1.0)]", "awaiting_approval a refund of 900, over the policy's limit of 200",
        "completed Refunded $900.",
    ],
}


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as s:
        yield s


def env(tmp_path: Path, server: OpenAICompatServer) -> dict[str, str]:
    """A clean environment; `python` is this interpreter (a team file starts its MCP server with it)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**cli_env(tmp_path / "troupe.sqlite"), "PATH": path, "OPENAI_BASE_URL": server.url,
            "OPENAI_API_KEY": "sk-readme"}


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_readme_python_examples_run(tmp_path: Path, server: OpenAICompatServer, code: str) -> None:
    (tmp_path / "example.py").write_text(code)
    out = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                         env=env(tmp_path, server), timeout=120)
    assert out.returncode == 0, out.stderr
    marker = next(m for m in EXPECTED if m in code)
    lines = out.stdout.splitlines()
    for expected, line in zip(EXPECTED[marker], lines, strict=False):
        assert expected.fullmatch(line) if isinstance(expected, re.Pattern) else line == expected, (line, expected)
    assert len(lines) >= len(EXPECTED[marker])


def test_every_python_block_is_checked() -> None:
    assert len(PYTHON) == len(EXPECTED) and all(any(m in code for code in PYTHON) for m in EXPECTED)


def test_readme_team_files_and_their_commands_run(tmp_path: Path, server: OpenAICompatServer) -> None:
    assert set(TEAM_FILES) == {"data.yaml", "reference.yaml", "scribes.yaml"}
    for name, text in TEAM_FILES.items():
        (tmp_path / name).write_text(text)
    shutil.copy(ROOT / "tests" / "mcp_notes_server.py", tmp_path / "notes_server.py")
    assert len(COMMANDS) == 3
    for command in [*COMMANDS, "troupe teams check reference.yaml"]:
        args = shlex.split(command)[1:]
        out = subprocess.run([sys.executable, "-m", "graphs.cli", *args], cwd=tmp_path, capture_output=True,
                             text=True, env=env(tmp_path, server), stdin=subprocess.DEVNULL, timeout=180)
        assert out.returncode == 0, (command, out.stderr)
        assert ("status: completed" if args[0] == "run" else "ok: ") in out.stdout, (command, out.stdout)
    notes = [json.loads(line) for line in (tmp_path / "notes.jsonl").read_text().splitlines()]
    assert notes and {n["tool"] for n in notes} == {"add_note"}, "the MCP server was not called"
