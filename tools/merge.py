"""Three-way merges for parallel writers of one workspace file, and the bookkeeping they need.

`merge3` runs `git merge-file` (the real git binary, so no hand-written diff3). Like git, it takes edits
on lines at least one unchanged line apart as clean, and edits of the same or adjacent lines (two
appends at the end, too) as a conflict.

`Ledger` keeps, per step and path, what `write_file` needs to commit a writer's edit against the step's
base: the file as it was when the step first wrote it (or that it was absent), and the writers whose
edits landed with the last version each wrote. It lives outside the workspace folder `W`, in
`W.parent/.merges/W.name/<step>/`: `<sha256 of the path>.json` per path and `blobs/<sha256>` per saved
version (content-addressed). A writer's base is its own last landed version, else the step's
pre-image, so a writer that revises its edit merges only the revision with the others' edits.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import ToolException

LABELS = ("current", "base", "mine")
"""The names `merge3` gives the sides in its conflict markers."""


class MergeError(RuntimeError):
    """`git merge-file` could not run or failed (no git, binary input, ...)."""


@dataclass(frozen=True)
class Merged:
    text: str
    """The merged text; where the edits overlap, both sides between conflict markers."""
    conflicts: int
    """How many overlapping hunks (0: a clean merge; git caps the count at 127)."""


def merge3(current: str, base: str, mine: str) -> Merged:
    """Merge the edits `base` -> `mine` into `current` (itself an edit of `base`) with `git merge-file`."""
    with tempfile.TemporaryDirectory(prefix="troupe-merge-") as tmp:
        for label, text in zip(LABELS, (current, base, mine), strict=True):
            Path(tmp, label).write_bytes(text.encode())
        labels = [arg for label in LABELS for arg in ("-L", label)]
        try:  # -c pins the marker style against a user's merge.conflictStyle; cwd keeps git out of any repository
            done = subprocess.run(["git", "-c", "merge.conflictStyle=merge", "merge-file", "-p", *labels, *LABELS],
                                  cwd=tmp, capture_output=True, check=False)
        except OSError as exc:
            raise MergeError(f"cannot run git merge-file: {exc}") from exc
    if not 0 <= done.returncode <= 127:
        why = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise MergeError(f"git merge-file failed: {why}")
    return Merged(done.stdout.decode(), done.returncode)


def merges_folder(root: Path) -> Path:
    """Where the merge bookkeeping of the workspace `root` lives (outside it)."""
    return root.absolute().parent / ".merges" / root.name


@dataclass(frozen=True)
class Commit:
    """What a writer's edit does to the file."""

    text: str | None
    """What to write; None: leave the file as it is (the edit overlaps, see `conflict`)."""
    others: list[str]
    """The other writers whose edits of this step are in the file."""
    conflict: dict[str, Any] | None = None


class Ledger:
    """The bookkeeping of one workspace file (`path`, normalized) in one step; use it under a lock."""

    def __init__(self, root: Path, step: int, path: str) -> None:
        self.folder = merges_folder(root) / str(step)
        self.path = path
        self.file = self.folder / f"{_sha(path.encode())}.json"
        self.record: dict[str, Any] = {}

    def decide(self, writer: str, mine: str, read: Callable[[], bytes | None]) -> Commit:
        """How `writer`'s `mine` lands; `read()` gives the file's current bytes (None if there is none)."""
        if self.file.exists():
            self.record = json.loads(self.file.read_text())
        else:  # the step's first write of this path: keep its pre-image before anything is written
            pre = read()
            self.record = {"path": self.path, "base": None if pre is None else self._save(pre), "writers": {}}
            self._store()
        others = sorted(set(self.record["writers"]) - {writer})
        if not others:
            return Commit(mine, others)
        current = read() or b""
        base_sha = self.record["writers"].get(writer, self.record["base"])
        base = self._blob(base_sha)
        merged = _merge(current, base, mine)
        if merged.conflicts == 0:
            return Commit(merged.text, others)
        mine_sha, theirs_sha = self._save(mine.encode()), self._save(current)
        return Commit(None, others, {
            "path": self.path, "with": others, "mine_sha256": mine_sha, "theirs_sha256": theirs_sha,
            "base_sha256": base_sha, "conflicts": merged.conflicts, "mine_file": str(self._blob_file(mine_sha)),
            "theirs_file": str(self._blob_file(theirs_sha)),
            "base_file": str(self._blob_file(base_sha)) if base_sha else None})

    def landed(self, writer: str, mine: str) -> None:
        """Record that `writer`'s edit is in the file now (after `decide` let it land)."""
        self.record["writers"][writer] = self._save(mine.encode())
        self._store()

    def _save(self, data: bytes) -> str:
        sha = _sha(data)
        if not self._blob_file(sha).exists():
            _replace(self._blob_file(sha), data)
        return sha

    def _blob(self, sha: str | None) -> bytes:
        return b"" if sha is None else self._blob_file(sha).read_bytes()

    def _blob_file(self, sha: str) -> Path:
        return self.folder / "blobs" / sha

    def _store(self) -> None:
        _replace(self.file, json.dumps(self.record).encode())


def saved(root: Path, conflict: dict[str, Any], side: Literal["mine", "theirs", "base"]) -> str:
    """The text of `side`'s version a conflict of the workspace `root` saved, checked against its sha256 (a
    conflict without a base, a file made by both writers, has an empty one)."""
    if conflict.get(f"{side}_file") is None and side == "base":
        return ""
    file = Path(conflict[f"{side}_file"])
    if not file.resolve().is_relative_to(merges_folder(root).resolve()):
        raise ToolException(f"{file} is not a version saved for the workspace {root}")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ToolException(f"the saved version {file} cannot be read: {exc.strerror}") from exc
    if _sha(data) != conflict[f"{side}_sha256"]:
        raise ToolException(f"the saved version {file} has changed since the conflict")
    return data.decode()


def _merge(current: bytes, base: bytes, mine: str) -> Merged:
    """`merge3` of the file's bytes; text git would take as binary (a NUL) or that is not UTF-8 overlaps whole."""
    try:
        if b"\x00" not in current + base and "\x00" not in mine:
            return merge3(current.decode(), base.decode(), mine)
    except UnicodeDecodeError:
        pass
    return Merged("", 1)


def _replace(file: Path, data: bytes) -> None:
    """Write `file` whole or not at all (a temporary file renamed over it)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    temp = file.with_name(f".{secrets.token_hex(8)}.tmp")
    temp.write_bytes(data)
    os.replace(temp, file)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
