"""LangSmith tracing: kept when its endpoint answers, switched off with a clear word when it does not."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from conftest import TODO_TASK, cli_env


class _Sink(BaseHTTPRequestHandler):
    """A local LangSmith stand-in: answers /info and accepts trace uploads."""

    posts: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._reply(b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).posts.append(self.path)
        self._reply(b"{}")

    def do_PATCH(self) -> None:
        self.do_POST()

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _run(db: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**cli_env(db), "LANGSMITH_TRACING": "true", "LANGSMITH_API_KEY": "lsv2-test",
           "LANGSMITH_ENDPOINT": endpoint}
    return subprocess.run([sys.executable, "-m", "graphs.cli", "run", "hierarchical", TODO_TASK, "--latency", "0",
                           "--thread", "traced"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=90)


def test_an_unreachable_endpoint_turns_tracing_off_and_says_so(db: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = _run(db, f"http://127.0.0.1:{port}")
    assert out.returncode == 0, out.stderr
    assert f"LangSmith endpoint http://127.0.0.1:{port} did not answer" in out.stderr
    assert "Failed to multipart ingest" not in out.stderr and "status: completed" in out.stdout


def test_a_reachable_endpoint_receives_the_traces(db: Path) -> None:
    _Sink.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = _run(db, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stderr
    assert "did not answer" not in out.stderr
    assert any("/runs" in path for path in _Sink.posts), json.dumps(_Sink.posts)
