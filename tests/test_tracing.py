"""LangSmith tracing: kept when its endpoint answers, switched off with a clear word when it does not."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import zstandard
from conftest import TODO_TASK, cli_env


class _Sink(BaseHTTPRequestHandler):
    """A local LangSmith stand-in: answers /info and accepts trace uploads."""

    posts: ClassVar[list[str]] = []
    bodies: ClassVar[list[bytes]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._reply(b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "zstd":
            body = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)).read()
        type(self).posts.append(self.path)
        type(self).bodies.append(body)
        self._reply(b"{}")

    def do_PATCH(self) -> None:
        self.do_POST()

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _run(db: Path, endpoint: str, tracing: str = "true") -> subprocess.CompletedProcess[str]:
    env = {**cli_env(db), "LANGSMITH_TRACING": tracing, "LANGSMITH_API_KEY": "lsv2-test",
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


def _sunk(db: Path, tracing: str) -> subprocess.CompletedProcess[str]:
    _Sink.posts, _Sink.bodies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return _run(db, f"http://127.0.0.1:{server.server_address[1]}", tracing)
    finally:
        server.shutdown()


def test_a_reachable_endpoint_receives_traces_named_per_agent_and_tagged(db: Path) -> None:
    out = _sunk(db, "true")
    assert out.returncode == 0, out.stderr
    assert "did not answer" not in out.stderr
    assert any("/runs" in path for path in _Sink.posts), json.dumps(_Sink.posts)
    sent = b"\n".join(_Sink.bodies).decode("utf-8", "replace")
    for agent in ("supervisor", "architect", "backend", "reviewer", "synthesizer"):
        assert f'"name":"{agent}"' in sent, f"no model run named {agent}"
    for tag in ("pattern:hierarchical", "agent:architect", "role:worker", "role:planner", "task:T1"):
        assert f'"{tag}"' in sent, f"no run tagged {tag}"
    assert '"thread_id":"traced"' in sent


def test_without_the_variables_nothing_is_sent(db: Path) -> None:
    out = _sunk(db, "false")
    assert out.returncode == 0, out.stderr
    assert _Sink.posts == []
