"""Whose database it is: troupe's (or new), or another application's, told before anything is written to it.

LangGraph's set-up adds its tables to any database, and a table of another application that happens to be
named `checkpoints` would be read as troupe's. So a database is looked at read-only first: it is troupe's when
it is empty or holds only the tables troupe, LangGraph and the run queue make (`KNOWN_TABLES`,
`POSTGRES_TABLES`), the core ones with the columns LangGraph reads (`REQUIRED_COLUMNS`). Databases made by older
troupe versions hold exactly LangGraph's tables. A database is a SQLite file, or a PostgreSQL one named by a URL
(`postgresql://user@host:port/name`).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

LEASES = "troupe_leases"
"""The table of run leases (`graphs.lease`)."""
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "checkpoints": frozenset({"thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "type",
                              "checkpoint", "metadata"}),
    "writes": frozenset({"thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type",
                         "value"}),
    "store": frozenset({"prefix", "key", "value"}),
}
"""Columns LangGraph's checkpointer and store read, by table."""
KNOWN_TABLES = frozenset({*REQUIRED_COLUMNS, "checkpoint_migrations", "store_migrations", "store_vectors",
                          "vector_migrations", LEASES})
"""Every table troupe and LangGraph's SQLite checkpointer and store make."""


POSTGRES_REQUIRED: dict[str, frozenset[str]] = {
    "checkpoints": REQUIRED_COLUMNS["checkpoints"],
    "checkpoint_writes": frozenset({"thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel",
                                    "type", "blob"}),
    "store": REQUIRED_COLUMNS["store"],
}
"""Columns LangGraph's PostgreSQL checkpointer and store read, by table."""
POSTGRES_TABLES = frozenset({*POSTGRES_REQUIRED, "checkpoint_blobs", "checkpoint_migrations", "store_migrations",
                             "store_vectors", "vector_migrations", LEASES})
"""Every table troupe and LangGraph's PostgreSQL checkpointer and store make (the run queue's start with
`procrastinate_`)."""


def is_postgres(db: Path | str) -> bool:
    """Whether `db` names a PostgreSQL database (a URL) rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(POSTGRES_SCHEMES)


def shown(db: Path | str) -> str:
    """`db` as it may be printed: a URL without its password."""
    if not is_postgres(db):
        return str(db)
    parts = urlsplit(str(db))
    host = parts.netloc.rpartition("@")
    user = host[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host[2]}" if host[1] else host[2]))


def foreign_tables(db: Path | str) -> list[str]:
    """The tables of `db` if it is another application's database; empty when it is new, empty or troupe's.

    Read-only: nothing is created or changed here. Raises sqlite3.Error for a file that is not SQLite, and
    psycopg's errors for a PostgreSQL database out of reach.
    """
    if is_postgres(db):
        return _foreign_postgres(str(db))
    db = Path(db)
    if not db.is_file() or db.stat().st_size == 0:
        return []
    with closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as conn:
        tables = sorted(name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"))
        ours = set(tables) <= KNOWN_TABLES and all(
            required <= {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for table, required in REQUIRED_COLUMNS.items() if table in tables)
    return [] if ours else tables


def _foreign_postgres(url: str) -> list[str]:
    """`foreign_tables` of a PostgreSQL database: its tables in the connection's schema."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        columns: dict[str, set[str]] = {}
        for table, column in conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                                          "WHERE table_schema = current_schema()"):
            columns.setdefault(table, set()).add(column)
    tables = sorted(columns)
    ours = all(t in POSTGRES_TABLES or t.startswith("procrastinate_") for t in tables) and all(
        required <= columns[table] for table, required in POSTGRES_REQUIRED.items() if table in columns)
    return [] if ours else tables
