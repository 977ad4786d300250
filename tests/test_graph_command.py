"""`troupe patterns` says when to pick each pattern; `troupe graph` draws any of them, as text or an offline PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

from graphs.registry import PATTERNS, builder


def test_patterns_lists_every_pattern_with_when_to_pick_it(troupe) -> None:
    out = troupe("patterns")
    assert out.returncode == 0
    rows = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert list(rows) == list(PATTERNS) == ["hierarchical", "sequential", "parallel", "router", "debate", "consensus",
                                            "swarm", "event_driven", "teams"]
    assert "decomposes" in rows["hierarchical"] and "heterogeneous requests" in rows["router"]


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_graph_prints_every_node_and_edge_as_mermaid(troupe, pattern: str) -> None:
    out = troupe("graph", pattern)
    assert out.returncode == 0, out.stderr
    drawn = builder(pattern)().compile().get_graph()
    assert out.stdout.startswith("---") and "graph TD;" in out.stdout
    for node in drawn.nodes:
        assert f"\t{node}(" in out.stdout or f"\t{node}([" in out.stdout, node
    assert out.stdout.count("-->") + out.stdout.count("-.->") == len(drawn.edges)
    assert "__end__" in out.stdout, "every pattern reaches its end"


def test_graph_png_renders_offline(troupe, tmp_path: Path) -> None:
    png = tmp_path / "hierarchical.png"
    out = troupe("graph", "hierarchical", "--png", str(png))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"wrote {png}"
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5_000


def test_graph_png_without_pygraphviz_says_what_to_install(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['pygraphviz'] = None; from graphs.cli import main; sys.exit(main())"
    out = subprocess.run([sys.executable, "-c", hide, "graph", "hierarchical", "--png", str(tmp_path / "x.png")],
                         capture_output=True, text=True, env=cli_env(tmp_path / "db.sqlite"), timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "pip install pygraphviz" in out.stderr and not (tmp_path / "x.png").exists()


def test_graph_of_an_unknown_pattern_is_one_line(troupe) -> None:
    out = troupe("graph", "circus")
    assert out.returncode == 2 and out.stderr.startswith("troupe: error: unknown pattern 'circus'")


def test_a_team_file_naming_an_unknown_pattern_fails_its_check(troupe, tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text("name: odd\ndescription: d\npattern: circus\nroles:\n  - name: a\n    capabilities: [x]\n"
                    "    prompt: p\n")
    out = troupe("teams", "check", str(path))
    expected = f"troupe: error: {path}:3: pattern: unknown pattern 'circus'; known: {', '.join(PATTERNS)}"
    assert out.returncode == 2 and out.stderr.strip() == expected


def test_run_names_a_pattern_or_a_recipe(troupe) -> None:
    out = troupe("run", "circus", "x")
    assert out.returncode == 2
    assert out.stderr.startswith("troupe: error: unknown pattern or recipe 'circus'; patterns: hierarchical,")
    out = troupe("run", "software", "x")
    assert out.returncode == 2 and "team 'software' names no pattern" in out.stderr
