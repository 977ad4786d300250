"""The README's Python examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import cli_env

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no Python example"
    for i, code in enumerate(blocks):
        script = tmp_path / f"example_{i}.py"
        script.write_text(code)
        out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                             env=cli_env(tmp_path / "unused.sqlite"), timeout=120)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "awaiting_approval"
        assert lines[1] == "['researcher', 'strategist', 'writer', 'editor']"
        assert lines[2].startswith("completed ") and lines[2].endswith("SUMMARY.md")
        assert any(line.startswith("REVIEW_RESULT reviewer -> ") for line in lines)
    assert (tmp_path / "demo.sqlite").exists()
