"""Workspace confinement (issue 13, point 6): every bad path is a tool error the model can act on, and
nothing a model writes or reads leaves the workspace — not through odd names, hard links, symbolic links
or a folder swapped for a link while writes happen."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, ToolException
from pydantic import Field

from graphs.runtime import Runner
from nodes.offline_model import OfflineChatModel
from state.context import RunContext
from state.plan import TaskStatus
from state.roles import Role, Team
from tools.workspace import MAX_NAME_BYTES, WORKSPACE_TOOLS, normalize, workspace_config, write_file


def tools(root: Path) -> tuple[Any, Any]:
    write, read = (t.with_config(workspace_config(root)) for t in WORKSPACE_TOOLS)
    return write, read


def call(name: str, call_id: str = "c1", **args: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "args": args}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


ODD = {
    "dot": (".", "workspace folder itself"),
    "empty": ("", "empty path"),
    "blank": ("   ", "empty path"),
    "nul": ("a\x00b.md", "NUL"),
    "control": ("a\nb.md", "control character"),
    "long-name": ("x" * 300, f"longer than {MAX_NAME_BYTES} bytes"),
    "long-multibyte": ("é" * 200 + ".md", f"longer than {MAX_NAME_BYTES} bytes"),  # 400 bytes in 201 characters
    "long-path": ("/".join(["d" * 200] * 30), "longer than 4096 bytes"),
    "tilde": ("~", "'~'"),
    "tilde-home": ("~/notes.md", "'~'"),
    "tilde-user": ("~root/.bashrc", "'~'"),
    "file-url": ("file:///etc/passwd", "URL"),
    "http-url": ("https://example.com/x.md", "URL"),
    "drive": ("C:\\Windows\\x.md", "Windows path"),
    "drive-slash": ("C:/x.md", "Windows path"),
    "backslash": ("docs\\x.md", "Windows path"),
    "absolute": ("/etc/passwd", "outside the workspace"),
    "dotdot": ("..", "outside the workspace"),
    "dotdot-deep": ("a/../../x.md", "outside the workspace"),
    "back-to-root": ("a/..", "workspace folder itself"),
    "trailing-slash": ("docs/", "names a folder"),
}


@pytest.mark.parametrize("key", list(ODD))
def test_an_odd_name_is_a_tool_error_and_the_tools_keep_working(tmp_path: Path, ws: Path, key: str) -> None:
    bad, why = ODD[key]
    write, read = tools(ws)
    msg = write.invoke(call("write_file", path=bad, content="escaped"))
    assert isinstance(msg, ToolMessage) and msg.status == "error", msg
    assert why in msg.content and msg.artifact is None
    refused = read.invoke(call("read_file", path=bad))
    assert isinstance(refused, ToolMessage) and refused.status == "error" and why in refused.content
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ws"]  # nothing written anywhere
    ok = write.invoke(call("write_file", call_id="c2", path="fine.md", content="fine"))  # the next call works
    assert ok.status != "error" and ok.artifact["path"] == "fine.md"
    with pytest.raises(ToolException, match=why.split()[0]):  # called directly: a ToolException, never another error
        write_file(bad, "x", workspace_config(ws))


@pytest.mark.parametrize(("given", "parts"), [("./a//b.md", ["a", "b.md"]), ("docs/../a.md", ["a.md"]),
                                              ("a/./b/../c.md", ["a", "c.md"]), ("notes~.md", ["notes~.md"]),
                                              ("x" * MAX_NAME_BYTES, ["x" * MAX_NAME_BYTES])])
def test_harmless_forms_are_normalized(ws: Path, given: str, parts: list[str]) -> None:
    assert normalize(given) == parts
    write, read = tools(ws)
    msg = write.invoke(call("write_file", path=given, content="hi"))
    assert msg.status != "error"
    assert msg.artifact == {"path": "/".join(parts), "sha256": hashlib.sha256(b"hi").hexdigest()}
    assert ws.joinpath(*parts).read_text() == "hi"
    assert read.invoke({"path": given}) == "hi"


def test_a_hard_link_to_a_file_outside_is_neither_overwritten_nor_read(tmp_path: Path, ws: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    os.link(outside, ws / "linked.md")
    write, read = tools(ws)
    msg = write.invoke(call("write_file", path="linked.md", content="overwritten"))
    assert msg.status == "error" and "hard link" in msg.content
    assert outside.read_text() == "secret"
    refused = read.invoke(call("read_file", path="linked.md"))
    assert refused.status == "error" and "secret" not in refused.content
    assert not [p for p in ws.iterdir() if p.name.startswith(".troupe-")]  # no temporary file left behind


def test_symbolic_links_are_refused_as_folders_and_as_files(tmp_path: Path, ws: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.md").write_text("secret")
    os.symlink(elsewhere, ws / "link")
    os.symlink(elsewhere / "x.md", ws / "file.md")
    (ws / "real").mkdir()
    os.symlink(ws / "real", ws / "inside")  # even a link that stays inside is not followed
    write, read = tools(ws)
    for path in ("link/x.md", "link/new/y.md", "file.md", "inside/z.md"):
        msg = write.invoke(call("write_file", path=path, content="escaped"))
        assert msg.status == "error" and "symbolic link" in msg.content, (path, msg.content)
        got = read.invoke(call("read_file", path=path if path != "link/new/y.md" else "link/x.md"))
        assert got.status == "error" and "secret" not in got.content
    assert sorted(p.name for p in elsewhere.iterdir()) == ["x.md"] and (elsewhere / "x.md").read_text() == "secret"
    assert list((ws / "real").iterdir()) == []


def test_folders_files_and_fifos_in_the_way_are_tool_errors(ws: Path) -> None:
    (ws / "dir").mkdir()
    (ws / "plain.md").write_text("text")
    os.mkfifo(ws / "pipe")
    (ws / "bin.dat").write_bytes(b"\xff\xfe\x00")
    write, read = tools(ws)
    cases = [(write, "dir", "is a folder"), (write, "plain.md/x.md", "is a file, not a folder"),
             (read, "dir", "is a folder"), (read, "pipe", "not a regular file"), (read, "bin.dat", "not UTF-8"),
             (read, "nope/x.md", "no file"), (read, "plain.md/x.md", "is a file, not a folder")]
    for tool, path, why in cases:
        msg = tool.invoke(call(tool.name, path=path, **({"content": "x"} if tool is write else {})))
        assert msg.status == "error" and why in msg.content, (path, msg.content)
    bad = write.invoke(call("write_file", path="s.md", content="\ud800"))
    assert bad.status == "error" and "not valid text" in bad.content


def test_writes_replace_atomically_and_keep_the_sha256_contract(ws: Path) -> None:
    write, _ = tools(ws)
    first = write.invoke(call("write_file", path="deep/er/a.md", content="one ✓"))
    assert first.artifact == {"path": "deep/er/a.md", "sha256": hashlib.sha256("one ✓".encode()).hexdigest()}
    os.chmod(ws / "deep/er/a.md", 0o600)
    again = write.invoke(call("write_file", path="deep/er/a.md", content="two"))
    assert again.content == "wrote 3 bytes to deep/er/a.md"
    assert (ws / "deep/er/a.md").read_text() == "two" and (ws / "deep/er/a.md").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (ws / "deep/er").iterdir()) == ["a.md"]


def test_a_folder_swapped_for_a_symlink_during_writes_lets_nothing_out(tmp_path: Path, ws: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    sub, parked = ws / "sub", ws / "parked"
    sub.mkdir()
    stop = threading.Event()
    swaps = 0

    def restore() -> None:
        """A write made a new 'sub' while the real one was parked: fold it back in and unpark."""
        with contextlib.suppress(OSError):
            if sub.is_symlink():
                os.unlink(sub)
            if parked.is_dir():
                if sub.is_dir():
                    for p in sub.iterdir():
                        os.replace(p, parked / p.name)
                    sub.rmdir()
                os.rename(parked, sub)

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            try:
                os.rename(sub, parked)
                os.symlink(outside, sub)
                os.unlink(sub)
                os.rename(parked, sub)
                swaps += 1
            except OSError:
                restore()

    thread = threading.Thread(target=swapper)
    thread.start()
    write, _ = tools(ws)
    statuses = []
    try:
        for i in range(3000):
            msg = write.invoke(call("write_file", call_id=f"c{i}", path=f"sub/f{i}.md", content=str(i)))
            assert isinstance(msg, ToolMessage)
            statuses.append(msg.status)
    finally:
        stop.set()
        thread.join()
    assert list(outside.iterdir()) == [], "a write landed outside the workspace"
    assert swaps > 100 and "success" in statuses and "error" in statuses, (swaps, statuses.count("error"))
    written = {p.name for p in ws.rglob("f*.md")}
    assert written and all(p.resolve().is_relative_to(ws.resolve()) for p in ws.rglob("*"))


# --- a worker whose model first sends bad paths still finishes --------------------------------------------------

BAD_PATHS = [".", "", "a\x00b.md", "x" * 300, "~/x.md", "file:///etc/passwd", "C:\\x.md", "/etc/passwd"]


class BadFirstWrite(OfflineChatModel):
    """The offline worker, but its first turn calls write_file with every bad path at once."""

    answers: dict[str, ToolMessage] = Field(default_factory=dict)

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        first = next((m for m in messages if isinstance(m, AIMessage)), None)
        if first is None:
            reply = AIMessage(content="", tool_calls=[{"name": "write_file", "args": {"path": p, "content": "x"},
                                                       "id": f"bad{i}", "type": "tool_call"}
                                                      for i, p in enumerate(BAD_PATHS)])
            return ChatResult(generations=[ChatGeneration(message=reply)])
        bad_ids = {c["id"] for c in first.tool_calls}
        answered = [m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id in bad_ids]
        self.answers.update({f"{id(first)}-{m.tool_call_id}": m for m in answered})
        rest = [m for m in messages if m is not first and not any(m is a for a in answered)]
        return await super()._agenerate(rest, *args, **kwargs)


def test_a_worker_whose_first_write_has_bad_paths_still_finishes(db: Path, ctx: RunContext) -> None:
    team = Team(name="writers", description="Writes.", roles=[
        Role(name="writer", capabilities=["writing"], prompt="You write clearly.", tools=["write_file", "read_file"]),
    ])
    model = BadFirstWrite(role="worker", draft_flaw_rate=0.0)

    async def go() -> Any:
        async with Runner.open(db, models={"writer": model}) as runner:
            return await runner.start("hierarchical", "Write a blog post about solar power", ctx, team=team,
                                      thread_id="badpaths")

    outcome = asyncio.run(go())
    assert outcome.status in ("awaiting_approval", "completed"), outcome.status
    assert all(t.status == TaskStatus.DONE for t in outcome.values["board"].values())
    assert len(model.answers) >= len(BAD_PATHS)
    assert {m.status for m in model.answers.values()} == {"error"}
    root = Path(ctx.workspace_root) / "badpaths"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files and all(p.read_text() != "x" for p in files)  # only the real deliverable was written
    assert not (Path(db).parent / "etc").exists()


def test_the_tool_list_is_unchanged() -> None:
    assert [t.name for t in WORKSPACE_TOOLS] == ["write_file", "read_file"]
    assert all(isinstance(t, BaseTool) and t.handle_tool_error for t in WORKSPACE_TOOLS)
