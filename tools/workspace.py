"""File tools scoped to one run's workspace folder.

The tools are built once; each call finds its workspace in the config it is invoked with
(`workspace_config(root)`), so the same tools serve troupe's workers and any agent a user brings
into a team (give `WORKSPACE_TOOLS` to your agent, and its files land in the run's workspace).

Confinement. Every error a path or the file system causes (a bad name, a missing file, a folder
where a file was expected, a full disk, ...) is raised as a `ToolException`, which the tools turn
into a tool message with `status="error"`: it goes back to the model, which can try another path;
it never fails the task or stops the run. Files are reached without a check-then-use race: the
workspace folder is opened once, and every folder below it is opened relative to its parent's
descriptor with `O_NOFOLLOW` (created with `mkdir` relative to that descriptor when missing), so a
folder swapped for a symbolic link mid-call is refused, not followed. `write_file` writes a
temporary file in the target folder and renames it over the target (readers never see half a file,
and a rename replaces a directory entry; it never writes through a link). A process killed between the
write and the rename leaves that temporary file (`.troupe-<16 hex digits>.tmp`) behind; `sweep(root)` removes
such leftovers, and the runtime calls it on a run's workspace each time it drives the run. Refused:

- a target or any folder on the way that is a symbolic link (even one pointing inside the workspace);
- a target with more than one hard link (`st_nlink > 1`), for writing and for reading: it may be a
  file outside the workspace linked in;
- a target that is not a regular file (a folder, a FIFO, a device) for reading, and a folder for writing.

Names. A path is relative to the workspace and uses "/" between folders. Normalized (silently):
empty components and "." ("./a//b.md" is "a/b.md"), and ".." that stays inside the workspace
("docs/../a.md" is "a.md"; resolved by name only, never by following links). Refused, each with
a message that says what to do instead:

- an empty path, or one that names the workspace itself ("", ".", "a/..") or ends in "/";
- absolute paths ("/etc/x"), ".." that leaves the workspace: "outside the workspace";
- "~" or "~user" at the start (no home-folder expansion), URLs ("file://...", "http://..."),
  Windows drives and backslashes ("C:\\\\x", "a\\\\b");
- NUL and other control characters (U+0000-U+001F, U+007F);
- a component longer than `MAX_NAME_BYTES` (255) bytes in UTF-8, or a path longer than
  `MAX_PATH_BYTES` (4096) bytes.

Files are UTF-8 text; content that cannot be encoded (lone surrogates) and files that are not
UTF-8 are tool errors too. POSIX only (it relies on `dir_fd`, `O_NOFOLLOW` and `O_DIRECTORY`).

Parallel writers. When the config names the writer (`WRITER_KEY` under 'configurable') and the LangGraph step
(`metadata["langgraph_step"]`), a write is a commit against the step's base, so parallel workers of one step
writing the same file do not clobber each other (bookkeeping: `tools.merge.Ledger`, outside the workspace).
No other writer wrote the file in this step: a plain write (a re-run writer replaces its own attempt). Else
the others' edits and mine are merged three-way (`git merge-file`): a clean merge is written; overlapping edits
leave the file as it is, save my version, and report the conflict for the supervisor to settle
(`resolve_conflict`). Without a writer, a write just replaces the file.

The store is the truth, the folder a view. Inside a run (a LangGraph store reachable, a thread id in the config)
every file written lands in the run's store too (`files_namespace`), before the tool returns, so before the step
that wrote it is checkpointed; `materialize` writes the stored files into a workspace folder that lacks them or
holds other versions. A run resumed by another process, on another host or another workspace root, so has all its
work (the runtime materializes the workspace each time it drives a run).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.config import get_store
from langgraph.store.base import BaseStore

from tools.journal import namespace, read_items
from tools.merge import Ledger, saved

WORKSPACE_KEY = "troupe_workspace"
"""Config key (under 'configurable') that names the folder the workspace tools work in."""
WRITER_KEY = "troupe_writer"
"""Config key (under 'configurable') that names who writes (a task id): its writes are commits (see the module)."""

MAX_NAME_BYTES = 255
"""Longest file or folder name (one path component), in UTF-8 bytes: the limit of common file systems."""
MAX_PATH_BYTES = 4096
"""Longest path inside the workspace, in UTF-8 bytes (Linux's PATH_MAX)."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEMP = re.compile(r"\.troupe-[0-9a-f]{16}\.tmp")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COMMITS = threading.Lock()
"""Held around a commit's read, decision and write, so parallel writers of one process commit one at a time."""


def workspace_config(root: Path, config: RunnableConfig | None = None) -> RunnableConfig:
    """`config` with the workspace folder added, for invoking the workspace tools or an agent that uses them."""
    base = dict(config or {})
    return {**base, "configurable": {**base.get("configurable", {}), WORKSPACE_KEY: str(root)}}  # type: ignore[typeddict-item]


def normalize(path: str) -> list[str]:
    """The components of `path` inside the workspace (see the module's notes); a bad name raises ToolException."""
    if not isinstance(path, str):
        raise ToolException(f"path must be a string, not {type(path).__name__}")
    _refuse_odd(path, _show(path))
    return _components(path, _show(path))


def _refuse_odd(path: str, shown: str) -> None:
    """Refuse the whole-path forms a model might mean as something other than a workspace file."""
    if not path.strip():
        raise ToolException("empty path: give a file name relative to the workspace, such as 'notes/plan.md'")
    if "\x00" in path:
        raise ToolException(f"path {shown} contains a NUL byte: file names cannot contain one")
    if _CONTROL.search(path):
        raise ToolException(f"path {shown} contains a control character: use printable characters only")
    if path.startswith("/"):
        raise ToolException(f"path {shown} is outside the workspace: give a path relative to the workspace")
    if path.startswith("~"):
        raise ToolException(f"path {shown} starts with '~': there is no home folder here; "
                            "give a path relative to the workspace")
    if _URL.match(path):
        raise ToolException(f"path {shown} is a URL: give a plain path relative to the workspace")
    if _DRIVE.match(path) or "\\" in path:
        raise ToolException(f"path {shown} is a Windows path: use '/' between folders, relative to the workspace")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise ToolException(f"path {shown} is longer than {MAX_PATH_BYTES} bytes: use a shorter path")
    if path.endswith("/"):
        raise ToolException(f"path {shown} names a folder: give a file name")


def _components(path: str, shown: str) -> list[str]:
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ToolException(f"path {shown} is outside the workspace: '..' cannot leave it")
            parts.pop()
            continue
        if len(part.encode()) > MAX_NAME_BYTES:
            raise ToolException(f"path {shown}: the name {_show(part)} is longer than {MAX_NAME_BYTES} bytes; "
                                "use a shorter name")
        parts.append(part)
    if not parts:
        raise ToolException(f"path {shown} names the workspace folder itself: give a file name")
    return parts


def resolve(root: Path, path: str) -> Path:
    """`path` inside `root`, by name only (no link is followed); anything that would escape is refused."""
    return root.joinpath(*normalize(path))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _show(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _root(config: RunnableConfig) -> Path:
    folder = (config.get("configurable") or {}).get(WORKSPACE_KEY)
    if not folder:
        raise ToolException("no workspace: invoke the tool with workspace_config(root)")
    return Path(folder)


def _problem(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


@contextmanager
def _folder(root: Path, folders: list[str], shown: str, *, create: bool) -> Iterator[int]:
    """A descriptor of the folder `root/folders...`, each step opened relative to the last without following links."""
    try:
        if create:
            root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the workspace itself is trusted
    except FileNotFoundError as exc:
        raise ToolException(f"no file {shown} in the workspace") from exc
    except OSError as exc:
        raise ToolException(f"the workspace folder cannot be opened: {_problem(exc)}") from exc
    try:
        for depth, name in enumerate(folders):
            where = _show("/".join(folders[: depth + 1]))
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise ToolException(f"no file {shown} in the workspace") from None
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile: opened (and checked) below
                except OSError as exc:
                    raise ToolException(f"cannot create folder {where}: {_problem(exc)}") from exc
                child = _open_dir(name, fd, where)
            except OSError as exc:
                raise _not_a_folder(name, fd, where, exc) from exc
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _open_dir(name: str, fd: int, where: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _not_a_folder(name, fd, where, exc) from exc


def _not_a_folder(name: str, fd: int, where: str, exc: OSError) -> ToolException:
    try:
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode) or exc.errno == errno.ELOOP:
        return ToolException(f"{where} is a symbolic link: links are not followed in the workspace; "
                             "use a path without it")
    if exc.errno == errno.ENOTDIR or (mode and not stat.S_ISDIR(mode)):
        return ToolException(f"{where} is a file, not a folder: use another path")
    return ToolException(f"cannot open folder {where}: {_problem(exc)}")


def _check_target(st: os.stat_result, shown: str, *, writing: bool) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise ToolException(f"{shown} is a symbolic link: links are not followed in the workspace; use another name")
    if stat.S_ISDIR(st.st_mode):
        raise ToolException(f"{shown} is a folder, not a file: give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise ToolException(f"{shown} is not a regular file: use another name")
    if st.st_nlink > 1:
        verb = "overwritten" if writing else "read"
        raise ToolException(f"{shown} has {st.st_nlink} hard links (it may be a file outside the workspace), "
                            f"so it is not {verb}: use another name")


def write_file(path: str, content: str, config: RunnableConfig) -> tuple[str, dict[str, Any]]:
    """Write a UTF-8 text file in the workspace (creating folders), replacing any old content."""
    root = _root(config)
    parts = normalize(path)
    rel = "/".join(parts)
    shown = _show(rel)
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolException(f"the content for {shown} is not valid text ({exc.reason}): send valid UTF-8 text") from exc
    committer = _committer(config)
    if committer is None:
        _write(root, parts, shown, data)
        _keep(config, root, parts, content)
        return f"wrote {len(data)} bytes to {rel}", {"path": rel, "sha256": sha256(content)}
    writer, step = committer
    with _COMMITS:  # the store is written in the same order as the file (a later merge lands later)
        ledger = Ledger(root, step, rel)
        try:
            commit = ledger.decide(writer, content, lambda: _read(root, parts, shown, writing=True))
            if commit.text is not None:
                _write(root, parts, shown, commit.text.encode())
                ledger.landed(writer, content)
                _keep(config, root, parts, commit.text)
        except OSError as exc:  # the bookkeeping failed (the workspace's own errors are ToolExceptions already)
            raise ToolException(f"cannot write {shown}: {_problem(exc)}") from exc
    who = ", ".join(commit.others)
    if commit.text is None:
        return (f"not written: your edit of {rel} overlaps the concurrent edit of it by {who}; the file keeps their "
                "version and the supervisor will decide between the two. Carry on with the rest of your work; "
                "do not retry this write.", {"path": rel, "sha256": sha256(content), "conflict": commit.conflict})
    if not commit.others:
        return f"wrote {len(data)} bytes to {rel}", {"path": rel, "sha256": sha256(content)}
    return (f"wrote {len(commit.text.encode())} bytes to {rel}, merged with the concurrent edit of it by {who}",
            {"path": rel, "sha256": sha256(commit.text), "merged_with": commit.others})


def resolve_conflict(root: Path, conflict: dict[str, Any], side: Literal["mine", "theirs"]) -> str:
    """Settle a conflict `write_file` reported (its artifact's "conflict") for the workspace `root`: write the
    version `side` saved over the file (a plain write, no merge); the sha256 now in the file."""
    _, artifact = write_file(conflict["path"], saved(root, conflict, side), workspace_config(root))
    return str(artifact["sha256"])


def files_namespace(thread_id: str) -> tuple[str, ...]:
    """Where a run's workspace files live in the store: key the path in the run's workspace, value its "text"."""
    return namespace(thread_id, "files")


def _keep(config: RunnableConfig, root: Path, parts: list[str], text: str) -> None:
    """Put the file just written into the run's store, when the write is part of a run whose workspace `root` is
    (or is inside); called off the event loop (tools run in a thread), so the store's sync call is safe."""
    thread = (config.get("configurable") or {}).get("thread_id")
    try:
        store = get_store()
    except (RuntimeError, KeyError):  # not inside a graph run
        return
    if store is None or not isinstance(thread, str) or thread not in root.parts:
        return
    inside = root.parts[len(root.parts) - root.parts[::-1].index(thread):]  # below the run's workspace folder
    try:
        store.put(files_namespace(thread), "/".join([*inside, *parts]), {"text": text, "sha256": sha256(text)},
                  index=False)
    except Exception as exc:  # the database's own errors, whichever it is
        raise ToolException(f"wrote {_show('/'.join(parts))}, but could not keep it in the run's store ({exc}): "
                            "write it again") from exc


async def materialize(store: BaseStore, thread_id: str, workspace: Path) -> int:
    """Write the run's stored files into its `workspace` folder where it lacks them or holds another version (a
    run resumed on another host or workspace root); the number written. Files the store does not know are left."""
    written = 0
    for item in await read_items(store, files_namespace(thread_id)):
        text = item.value.get("text")
        if isinstance(text, str):
            written += await asyncio.to_thread(_materialize_one, workspace, item.key, text)
    return written


def _materialize_one(workspace: Path, key: str, text: str) -> bool:
    """Write one stored file unless the folder holds it already; a path the folder refuses (a link or a folder in
    the way) is left as it is, and the work that reads it sees what is there, as with any refused write."""
    try:
        parts = normalize(key)
        current = _read(workspace, parts, _show(key), writing=True)
        if current is not None and current == text.encode():
            return False
        _write(workspace, parts, _show(key), text.encode())
    except ToolException:
        return False
    return True


def _committer(config: RunnableConfig) -> tuple[str, int] | None:
    """(writer, step) when the call is a write of a named writer inside a LangGraph step, else None."""
    writer = (config.get("configurable") or {}).get(WRITER_KEY)
    step = (config.get("metadata") or {}).get("langgraph_step")
    if isinstance(writer, str) and writer and isinstance(step, int) and not isinstance(step, bool):
        return writer, step
    return None


def _write(root: Path, parts: list[str], shown: str, data: bytes) -> None:
    """Replace the file `parts` by `data`: a temporary file in its folder, renamed over it."""
    name = parts[-1]
    with _folder(root, parts[:-1], shown, create=True) as fd:
        try:
            old: os.stat_result | None = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        except OSError as exc:
            raise ToolException(f"cannot write {shown}: {_problem(exc)}") from exc
        if old is not None:
            _check_target(old, shown, writing=True)
        temp = f".troupe-{secrets.token_hex(8)}.tmp"  # the name `_TEMP` matches
        try:
            out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=fd)
        except OSError as exc:
            raise ToolException(f"cannot write {shown}: {_problem(exc)}") from exc
        try:
            try:
                if old is not None:
                    os.fchmod(out, stat.S_IMODE(old.st_mode))
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view):]
            finally:
                os.close(out)
            # a rename replaces the name: whatever sits there now (even a link raced in) is never written through
            os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as exc:
            _unlink(temp, fd)
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise ToolException(f"{shown} is a folder, not a file: give a file name") from exc
            raise ToolException(f"cannot write {shown}: {_problem(exc)}") from exc
        except BaseException:
            _unlink(temp, fd)
            raise


def sweep(root: Path) -> None:
    """Remove the temporary files a killed `write_file` left anywhere in the workspace `root`: regular files whose
    name matches `.troupe-<16 hex digits>.tmp` exactly, nothing else; links are never followed."""
    with suppress(OSError):  # no workspace yet, or it cannot be opened: nothing to sweep
        for _, _, files, fd in os.fwalk(root, follow_symlinks=False):
            for name in filter(_TEMP.fullmatch, files):
                with suppress(OSError):  # gone meanwhile, or not ours to remove: leave it
                    if stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                        os.unlink(name, dir_fd=fd)


def _unlink(name: str, fd: int) -> None:
    with suppress(OSError):
        os.unlink(name, dir_fd=fd)


def read_file(path: str, config: RunnableConfig) -> str:
    """Read a UTF-8 text file from the workspace."""
    parts = normalize(path)
    shown = _show("/".join(parts))
    data = _read(_root(config), parts, shown, writing=False)
    if data is None:
        raise ToolException(f"no file {shown} in the workspace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolException(f"{shown} is not UTF-8 text, so it cannot be read as text") from exc


def _read(root: Path, parts: list[str], shown: str, *, writing: bool) -> bytes | None:
    """The bytes of the file `parts`, None if there is none; `writing`: read before a write (which creates the
    folders and words its refusals as a write's)."""
    with _folder(root, parts[:-1], shown, create=writing) as fd:
        try:
            # O_NONBLOCK: a FIFO planted in the workspace must not hang the call (it is refused below)
            src = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                hint = "use another name" if writing else "read the file it names instead"
                raise ToolException(f"{shown} is a symbolic link: links are not followed in the workspace; "
                                    f"{hint}") from exc
            raise ToolException(f"cannot {'write' if writing else 'read'} {shown}: {_problem(exc)}") from exc
        try:
            _check_target(os.fstat(src), shown, writing=writing)
            with os.fdopen(src, "rb", closefd=False) as stream:
                return stream.read()
        except OSError as exc:
            raise ToolException(f"cannot {'write' if writing else 'read'} {shown}: {_problem(exc)}") from exc
        finally:
            os.close(src)


def _tool(fn: Any, **options: Any) -> BaseTool:
    return StructuredTool.from_function(fn, handle_tool_error=True, handle_validation_error=True, **options)


WORKSPACE_TOOLS: tuple[BaseTool, ...] = (_tool(write_file, response_format="content_and_artifact"), _tool(read_file))
"""`write_file` reports what it wrote as the tool message's artifact (`{"path", "sha256"}`), so the caller
knows exactly which files an agent produced; a commit merged with other writers adds `"merged_with": [writers]`
(`sha256` is then of the merged file), and one that overlaps them is not written: `sha256` is of the writer's
own version and `"conflict"` says what the supervisor needs to settle it. Writing the same content twice is
harmless, so a re-run step stays idempotent. Every bad path or file-system error comes back as a tool message
with `status="error"`."""
