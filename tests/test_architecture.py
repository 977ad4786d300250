"""Dependencies point one way: graphs -> nodes -> tools -> state; state imports nothing of ours."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["graphs", "nodes", "tools", "state"]


def _our_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    allowed = set(LAYERS[LAYERS.index(layer):])
    for path in sorted((ROOT / layer).glob("*.py")):
        wrong = _our_imports(path) - allowed
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}, above its layer"
