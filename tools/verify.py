"""The verifier: compiles a team's Python artifacts and runs the tests the team wrote, end to end.

`verify(root, files)` compiles every `.py` among `files` (workspace-relative paths), then runs the ones that
define a module-level `test*` function with pytest in a confined subprocess: cwd and PYTHONPATH the workspace, a
minimal environment (no inherited secrets), no plugin autoloading and no config file (the project's `addopts`
never apply), no bytecode or cache written, the JUnit report and scratch files in a temporary folder outside the
workspace, CPU-time, file-size and core-dump limits, and the whole process group killed at the time limit (after
SIGABRT, so pytest's faulthandler prints where it was stuck). Each problem is a `Failure` blaming the artifact to
send back: the deepest traceback frame in an artifact other than the test file; for a failed assertion in the test
itself, the artifact module the test imports (the one named in the failure, else the only one); else the test file.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

MAX_MESSAGE = 400
FILE_SIZE_LIMIT = 64 * 2**20
MENTION = re.compile(r"(?<![\w./-])[\w./-]+\.py\b")
FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+) in (\S+)', re.MULTILINE)  # faulthandler's dump
SHORT_FRAME = re.compile(r"^(([^\s:]+\.py):\d+): in .*\n(.+)$", re.MULTILINE)  # pytest's --tb=short


@dataclass(frozen=True, slots=True)
class Failure:
    """A problem found in the assembled result: `file` is the artifact to fix, `message` says what went wrong."""

    file: str
    check: Literal["compile", "test", "timeout"]
    message: str


@dataclass
class _Plan:
    root: Path
    artifacts: frozenset[str]
    failures: list[Failure]
    tests: list[str]
    imports: dict[str, list[str]]


async def verify(root: Path, files: Sequence[str], *, timeout: float = 60.0) -> list[Failure]:
    """Compile errors, then failing tests, of the `.py` artifacts among `files`; [] when all is well.

    Raises RuntimeError when there are tests to run and pytest is not importable by `sys.executable`.
    """
    plan = await asyncio.to_thread(_plan, root, [f for f in dict.fromkeys(files) if f.endswith(".py")])
    if not plan.tests:
        return plan.failures
    scratch, output = await asyncio.to_thread(_scratch)
    try:
        code = await _run(plan, scratch, output, timeout)
    finally:
        junit, tail = await asyncio.to_thread(_collect, scratch, output)
    tail = tail.replace(f"{plan.root}/", "")
    if code is None:
        return plan.failures + _timeouts(plan, tail, timeout)
    found = _parse(plan, junit) if junit else []
    if not found and code not in (0, 5):
        found = [Failure(t, "test", _trim(f"pytest exited with code {code}: {tail[-300:]}")) for t in plan.tests]
    return plan.failures + found


def _plan(root: Path, py: list[str]) -> _Plan:
    """Compile each file; note the test files and the artifact modules each imports."""
    plan = _Plan(root.resolve(), frozenset(py), [], [], {})
    modules = {f.removesuffix(".py").replace("/", "."): f for f in py}
    for f in py:
        try:
            tree = ast.parse((plan.root / f).read_bytes(), f)
            compile(tree, f, "exec", dont_inherit=True)
        except SyntaxError as exc:
            text = (exc.text or "").strip()
            plan.failures.append(Failure(f, "compile", _trim(f"line {exc.lineno}: {exc.msg}: `{text}`")))
            continue
        except (OSError, ValueError) as exc:
            plan.failures.append(Failure(f, "compile", _trim(f"cannot compile: {exc}")))
            continue
        if any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test") for n in tree.body):
            plan.tests.append(f)
            names = [m for node in ast.walk(tree) for m in _imported(node)]
            plan.imports[f] = list(dict.fromkeys(modules[m] for m in names if modules.get(m, f) != f))
    if plan.tests and importlib.util.find_spec("pytest") is None:
        raise RuntimeError(f"verify runs the team's tests with pytest, which {sys.executable} cannot import")
    return plan


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def _scratch() -> tuple[Path, IO[bytes]]:
    scratch = Path(tempfile.mkdtemp(prefix="troupe-verify-"))
    return scratch, (scratch / "output.txt").open("wb")


def _collect(scratch: Path, output: IO[bytes]) -> tuple[str, str]:
    """The JUnit report ("" when there is none) and the output's tail; then the scratch folder is removed."""
    output.close()
    junit = scratch / "junit.xml"
    with (scratch / "output.txt").open("rb") as written:
        written.seek(max(0, written.seek(0, os.SEEK_END) - 8192))
        tail = written.read().decode(errors="replace")
    report = junit.read_text(errors="replace") if junit.exists() else ""
    shutil.rmtree(scratch, ignore_errors=True)
    return report, tail


async def _run(plan: _Plan, scratch: Path, output: IO[bytes], timeout: float) -> int | None:
    """Run pytest on the test files; its exit code, or None when it was killed at the time limit."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}", "HOME": str(scratch),
           "TMPDIR": str(scratch), "LANG": "C.UTF-8", "PYTHONPATH": str(plan.root), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONNOUSERSITE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    args = ["-q", "-p", "no:cacheprovider", "-c", os.devnull, f"--rootdir={plan.root}", f"--confcutdir={plan.root}",
            "--continue-on-collection-errors", "--tb=short", f"--junitxml={scratch / 'junit.xml'}"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-B", "-m", "pytest", *args, "--", *plan.tests, cwd=plan.root, env=env,
        stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_limits(int(timeout) + 2))
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with suppress(ProcessLookupError):
            proc.send_signal(signal.SIGABRT)
        with suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 1.0)
        return None
    finally:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        for _ in range(50):  # give the group's strays up to 0.5s to die (a zombie nobody reaps stays in it)
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            await asyncio.sleep(0.01)


def _limits(cpu_seconds: int) -> Callable[[], None]:
    """A preexec_fn capping CPU time, file size and core dumps (never above the current hard limits)."""

    def apply() -> None:
        for which, value in ((resource.RLIMIT_CPU, cpu_seconds), (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT),
                             (resource.RLIMIT_CORE, 0)):
            hard = resource.getrlimit(which)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))

    return apply


def _timeouts(plan: _Plan, output: str, timeout: float) -> list[Failure]:
    """Blame the innermost artifact frame of faulthandler's dump, else every test file."""
    said = f"the tests did not finish within {timeout:g}s"
    for path, line, func in FRAME.findall(output):
        if path in plan.artifacts:
            return [Failure(path, "timeout", f"{said}; stuck at {path}:{line} in {func}")]
    return [Failure(t, "timeout", said) for t in plan.tests]


def _parse(plan: _Plan, junit: str) -> list[Failure]:
    """A Failure for each failing or erroring test case of the JUnit report."""
    try:
        cases = list(ET.fromstring(junit).iter("testcase"))
    except ET.ParseError:
        return []
    found = []
    for case in cases:
        for problem in (p for p in case if p.tag in ("failure", "error")):
            test, test_id = _test_of(plan, case.get("classname", ""), case.get("name", ""))
            message = problem.get("message", "")
            text = (problem.text or message).replace(f"{plan.root}/", "")
            asserted = problem.tag == "failure" and message.startswith(("AssertionError", "Failed: DID NOT RAISE"))
            blamed = _blame(plan, test, text, asserted)
            found.append(Failure(blamed, "test", _describe(plan, test_id, problem.tag, text)))
    return found


def _test_of(plan: _Plan, classname: str, name: str) -> tuple[str, str]:
    """The test file of a JUnit test case, and the case's pytest id."""
    for test in plan.tests:
        module = test.removesuffix(".py").replace("/", ".")
        if not classname and name == module:
            return test, f"{test} (collection)"
        if classname == module or classname.startswith(f"{module}."):
            return test, "::".join([test, *filter(None, classname[len(module):].split(".")), name])
    return plan.tests[0], f"{classname}::{name}"


def _blame(plan: _Plan, test: str, text: str, asserted: bool) -> str:
    mentioned = [m for m in MENTION.findall(text) if m in plan.artifacts and m != test]
    if mentioned:
        return mentioned[-1]
    imported = plan.imports[test]
    if asserted and imported:
        named = [f for f in imported if re.search(rf"\b{re.escape(f.removesuffix('.py').replace('/', '.'))}\b", text)]
        if named or len(imported) == 1:
            return (named or imported)[0]
    return test


def _describe(plan: _Plan, test_id: str, tag: str, text: str) -> str:
    """The test id, pytest's `E` lines and the last artifact frames with their source lines."""
    errors = " | ".join(e for line in text.splitlines() if line.startswith("E ") and (e := line[1:].strip())) or text
    frames = [f"{loc} `{src.strip()}`" for loc, path, src in SHORT_FRAME.findall(text) if path in plan.artifacts]
    where = f" at {'; '.join(frames[-2:])}" if frames else ""
    return _trim(f"{test_id} {'failed' if tag == 'failure' else 'errored'}: {errors}{where}")


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else f"{text[:MAX_MESSAGE - 1]}…"
