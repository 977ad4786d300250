"""A PostgreSQL server for the tests: the one at `$TROUPE_TEST_POSTGRES` (default 127.0.0.1:5432), else one
started here from the machine's PostgreSQL binaries (initdb, pg_ctl) in a temporary folder on a free port, trust
auth, stopped at the end. As root the server runs as the `postgres` user (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def reachable(url: str) -> str | None:
    """None when `url` answers, else why not (one line)."""
    try:
        import psycopg
    except ImportError:
        return "PostgreSQL tests need troupe[postgres]"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]


def _binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on $PATH, or Debian's /usr/lib/postgresql/N/bin."""
    if found := shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server() -> Iterator[tuple[str | None, str]]:
    """(url of a server's `postgres` database, or None; why there is none)."""
    url = os.environ.get("TROUPE_TEST_POSTGRES", DEFAULT)
    if (why := reachable(url)) is None or os.environ.get("TROUPE_TEST_POSTGRES"):
        yield (url if why is None else None), why or ""
        return
    binaries = _binaries()
    if binaries is None:
        yield None, f"no PostgreSQL at {url} ({why}) and no PostgreSQL binaries here to start one"
        return
    root = os.geteuid() == 0
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    folder = Path(tempfile.mkdtemp(prefix="troupe-pg-"))
    data, port = folder / "data", _free_port()
    if root:
        os.chown(folder, pwd.getpwnam("postgres").pw_uid, -1)
    try:
        subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                       check=True, capture_output=True)
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
                        "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError, KeyError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        yield None, f"no PostgreSQL at {url} ({why}), and starting one here failed: {exc}"
        return
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", ""
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
