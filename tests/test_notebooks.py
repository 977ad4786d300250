"""Every notebook executes headless, top to bottom, without an error; every pattern has one."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from graphs.registry import PATTERNS

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on any cell's error
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs for c in code[1:]), "a cell that should show something printed nothing"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)


def test_every_pattern_has_a_notebook() -> None:
    assert {p.stem for p in NOTEBOOKS} >= set(PATTERNS)
