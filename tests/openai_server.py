"""An OpenAI Chat Completions-compatible HTTP server backed by the offline model, for tests.

It speaks enough of the API for `langchain_openai.ChatOpenAI`: plain answers, `tools` with
`tool_choice`, `response_format` of type `json_schema` (structured output), streaming with
server-sent events and `stream_options.include_usage`, and `GET /v1/models`. The request's
`model` names the offline role (planner, worker, ...); any other name is inferred from the request.

Run it alone with `python tests/openai_server.py --port 8765`: it prints its base URL and serves until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from nodes.offline_model import OfflineChatModel

ROLES = ("planner", "worker", "reviewer", "synthesizer", "router")
_SCHEMA_ROLES = {"PlanDraft": "planner", "ReviewVerdict": "reviewer", "write_file": "worker"}
_PIECE = 32  # characters per streamed delta


class BadRequest(ValueError):
    """A request the server rejects with HTTP 400."""


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def to_messages(raw: list[dict[str, Any]]) -> list[BaseMessage]:
    """OpenAI chat messages -> langchain-core messages."""
    out: list[BaseMessage] = []
    for m in raw:
        role, content = m.get("role"), _text(m.get("content"))
        if role in ("system", "developer"):
            out.append(SystemMessage(content))
        elif role == "user":
            out.append(HumanMessage(content))
        elif role == "assistant":
            calls = [
                {"name": c["function"]["name"], "args": json.loads(c["function"].get("arguments") or "{}"),
                 "id": c.get("id"), "type": "tool_call"}
                for c in m.get("tool_calls") or []
            ]
            out.append(AIMessage(content, tool_calls=calls))
        elif role == "tool":
            out.append(ToolMessage(content, tool_call_id=m.get("tool_call_id", "")))
        else:
            raise BadRequest(f"unsupported message role {role!r}")
    return out


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The tools the model may call, and whether the answer goes in `content` (json_schema)."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        spec = fmt["json_schema"]
        fn = {"name": spec["name"], "description": spec.get("description", ""), "parameters": spec.get("schema", {})}
        return [{"type": "function", "function": fn}], True
    tools, choice = body.get("tools") or [], body.get("tool_choice")
    if choice == "none":
        return [], False
    if isinstance(choice, dict):  # a forced function: offer only that one
        tools = [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
    return tools, False


def pick_role(body: dict[str, Any], tools: list[dict[str, Any]]) -> str:
    """The offline role: the `model` field if it names one, else inferred from the tools/schema."""
    if body.get("model") in ROLES:
        return str(body["model"])
    names = [t["function"]["name"] for t in tools]
    return next((_SCHEMA_ROLES[n] for n in names if n in _SCHEMA_ROLES), "synthesizer")


def complete(body: dict[str, Any], *, seed: int, latency: float) -> dict[str, Any]:
    """Answer one chat completion request as a non-streamed `chat.completion` object."""
    if not isinstance(body.get("messages"), list):
        raise BadRequest("'messages' must be a list")
    try:
        tools, as_content = _tools(body)
        messages, role = to_messages(body["messages"]), pick_role(body, tools)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise BadRequest(f"malformed request: {type(e).__name__}: {e}") from e
    try:
        answer = OfflineChatModel(role=role, seed=seed, latency=latency).invoke(messages, tools=tools)
    except KeyError as e:
        raise BadRequest(f"the offline {role} found no {e} in its brief (a ```json block in the last user turn)") from e
    message: dict[str, Any] = {"role": "assistant", "content": _text(answer.content), "refusal": None}
    calls: list[dict[str, Any]] = [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["args"])}}
        for c in answer.tool_calls
    ]
    if as_content and calls:
        message["content"] = calls[0]["function"]["arguments"]
    elif calls:
        message["content"], message["tool_calls"] = message["content"] or None, calls
    usage = answer.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "offline"),
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}],
        "usage": {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
                  "total_tokens": usage["total_tokens"]},
    }


def stream_chunks(done: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` objects that stream the completion `done`."""
    head = {k: done[k] for k in ("id", "created", "model", "system_fingerprint")} | {"object": "chat.completion.chunk"}
    choice, message = done["choices"][0], done["choices"][0]["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return head | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    text = message["content"] or ""
    for i in range(0, len(text), _PIECE):
        yield chunk({"content": text[i : i + _PIECE]})
    for n, call in enumerate(message.get("tool_calls", [])):
        fn, args = call["function"], call["function"]["arguments"]
        yield chunk({"tool_calls": [{"index": n, "id": call["id"], "type": "function",
                                     "function": {"name": fn["name"], "arguments": ""}}]})
        for i in range(0, len(args), _PIECE):
            yield chunk({"tool_calls": [{"index": n, "function": {"arguments": args[i : i + _PIECE]}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield head | {"choices": [], "usage": done["usage"]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            return self._error(404, f"no route GET {self.path}", "not_found")
        data = [{"id": r, "object": "model", "created": 0, "owned_by": "troupe-offline"} for r in ROLES]
        self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route POST {self.path}", "not_found")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            if not isinstance(body, dict):
                raise BadRequest("the request body must be a JSON object")
            self.server.record(body, dict(self.headers))
            done = complete(body, seed=self.server.seed, latency=self.server.latency)
        except (json.JSONDecodeError, UnicodeDecodeError, BadRequest) as e:
            return self._error(400, str(e), "invalid_request_error")
        except Exception as e:  # the model failed: report it like an upstream error
            return self._error(500, f"{type(e).__name__}: {e}", "server_error")
        if not body.get("stream"):
            return self._json(200, done)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in stream_chunks(done, include_usage):
            self._send_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")  # no idle keep-alive connection outlives stop()
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: OpenAICompatServer) -> None:
        super().__init__(address, _Handler)
        self.seed, self.latency, self.owner = owner.seed, owner.latency, owner

    def record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self.owner.lock:
            self.owner.requests.append(body)
            self.owner.headers.append(headers)


class OpenAICompatServer:
    """The server in a daemon thread: `with OpenAICompatServer() as srv: ChatOpenAI(base_url=srv.url)`."""

    def __init__(self, *, seed: int = 7, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.seed, self.latency, self.host, self.port = seed, latency, host, port
        self.requests: list[dict[str, Any]] = []  # every request body received, in order
        self.headers: list[dict[str, str]] = []  # and its HTTP headers
        self.lock = threading.Lock()  # guards `requests`
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        """Bind, serve in the background, and return the base URL (ending in /v1)."""
        self._httpd = _Server((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-compat", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> OpenAICompatServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground: print the base URL, then serve until killed."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible server backed by the offline model.")
    for flag, kind, default in (("--host", str, "127.0.0.1"), ("--port", int, 0), ("--seed", int, 7),
                                ("--latency", float, 0.0)):
        parser.add_argument(flag, type=kind, default=default)
    args = parser.parse_args(argv)
    with OpenAICompatServer(seed=args.seed, latency=args.latency, host=args.host, port=args.port) as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
