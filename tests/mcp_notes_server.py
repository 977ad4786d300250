"""A small MCP server for the tests: it keeps notes, and can die on request.

`python mcp_notes_server.py` serves over stdio; `python mcp_notes_server.py PORT` over streamable HTTP
at http://127.0.0.1:PORT/mcp. Every call is appended as a JSON line to the file named by NOTES_LOG.
`crash` (and `add_note` when NOTES_CRASH_ON_ADD=1) records the call, then ends the process at once,
like a server dying mid-run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mcp.server.fastmcp import FastMCP

server = FastMCP("notes", log_level="WARNING")


def record(tool: str, text: str) -> int:
    """Append the call to the log; the number of calls logged so far."""
    log = Path(os.environ["NOTES_LOG"])
    with log.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"tool": tool, "text": text, "pid": os.getpid()}) + "\n")
    return len(log.read_text(encoding="utf-8").splitlines())


@server.tool()
def add_note(text: str) -> str:
    """Save a short note."""
    n = record("add_note", text)
    if os.environ.get("NOTES_CRASH_ON_ADD") == "1":
        os._exit(1)
    return f"note {n} saved ({len(text.split())} words)"


@server.tool()
def crash(reason: str) -> str:
    """End the server process at once (for tests)."""
    record("crash", reason)
    os._exit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        server.settings.port = int(sys.argv[1])
        server.run("streamable-http")
    else:
        server.run("stdio")
