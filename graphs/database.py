"""Whose database a file is: troupe's (or new), or another application's, told before anything is written to it.

LangGraph's set-up adds its tables to any SQLite file, and a table of another application that happens to be
named `checkpoints` would be read as troupe's. So a file is looked at read-only first: it is troupe's when it
is empty or holds only the tables troupe and LangGraph make (`KNOWN_TABLES`), the core ones with the columns
LangGraph reads (`REQUIRED_COLUMNS`). Databases made by older troupe versions hold exactly LangGraph's tables.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from graphs.lease import TABLE as LEASES

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


def foreign_tables(db: Path) -> list[str]:
    """The tables of `db` if it is another application's database; empty when it is new, empty or troupe's.

    Read-only: the file is never created or changed here. Raises sqlite3.Error for a file that is not SQLite.
    """
    if not db.is_file() or db.stat().st_size == 0:
        return []
    with closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as conn:
        tables = sorted(name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"))
        ours = set(tables) <= KNOWN_TABLES and all(
            required <= {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for table, required in REQUIRED_COLUMNS.items() if table in tables)
    return [] if ours else tables
