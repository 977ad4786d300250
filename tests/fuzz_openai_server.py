"""An OpenAI-compatible test server whose every answer is a seeded random instance of what was asked for.

A model that keeps the shape and talks nonsense. A forced function or a `response_format` json_schema gets a
random instance of its JSON schema; tools offered but not forced get a call of one of them with random
arguments, or plain text; no tools get random text. Same API surface as `openai_server.py` (whose HTTP
plumbing this reuses): tools with `tool_choice`, structured output, streaming, usage.

What real models do that this covers: dependency ids that reference nothing (or the subtask itself), capabilities
no role has, ids repeated, empty strings and lists, file paths that are empty, absolute, outside the workspace
or have spaces, a worker that answers in prose without writing anything or calls a tool with junk arguments,
reviews that approve or reject at random, a critical flag raised over nothing. Strings sometimes echo a word of
the prompt (a real id, a real capability), as models do, so some runs get far and some fail early.

Answers are deterministic per (seed, request content, how many times that same content was asked before), so
a run is reproducible whatever order parallel requests arrive in, and a repeated request still gets a new answer.

Run it alone with `python tests/fuzz_openai_server.py --seed 3`: it prints its base URL and serves until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from openai_server import BadRequest, OpenAICompatServer, _Handler, _text, _tools, stream_chunks

Schema = dict[str, Any]

VOCAB = ("api", "todo", "user", "schema", "endpoint", "backend", "frontend", "database", "quantum", "ledger",
         "banana", "deploy", "cache", "token", "oauth", "flaky", "zebra", "index", "migrate", "lorem", "ipsum",
         "security", "performance", "refactor", "design", "testing", "docs", "nebula", "widget", "the", "a", "of",
         "and", "must", "should", "never", "always", "TODO", "FIXME", "ünïcödé", "42", "null", "{}", "```")
PATHS = ("{w}.md", "src/{w}/{w}.py", "{w}/{w}-{w}.txt", "../{w}.md", "../../etc/{w}", "/tmp/{w}.md", "{w} {w}.md",
         "{w}/", ".", "", "~/{w}", "C:\\{w}\\{w}.txt")
FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date-time": lambda r: f"20{r.randint(0, 99):02d}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T"
                           f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z",
    "date": lambda r: f"20{r.randint(0, 99):02d}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "uri": lambda r: f"https://example.invalid/{r.choice(VOCAB[:20])}",
    "email": lambda r: f"{r.choice(VOCAB[:20])}@example.invalid",
}
_ID_KEYS = ("id", "depends_on", "team", "assignee", "capability", "capabilities", "task_id", "role", "name")
_WORD = re.compile(r"[A-Za-z][\w./-]{0,40}\w|[A-Za-z]")


class Instances:
    """Random JSON values valid against a JSON schema: the subset pydantic and OpenAI's strict mode emit.

    Handles `$ref`/`$defs`, `allOf`, `anyOf`/`oneOf`, `const`, `enum`, type lists and `nullable`, objects
    (every required property, some optional ones, `additionalProperties` maps), arrays (`minItems`/`maxItems`,
    `prefixItems`, `uniqueItems`), strings (`minLength`/`maxLength`, a few formats; `pattern` is not honoured),
    integers and numbers (inclusive and exclusive bounds, `multipleOf`), booleans and null. `echo` are words a
    string may repeat (the prompt's); a string whose description says it may be empty is empty more often;
    past `max_depth` it takes the smallest instance (recursive schemas end).
    """

    def __init__(self, rng: random.Random, echo: Sequence[str] = (), *, max_depth: int = 6) -> None:
        self.rng, self.echo, self.max_depth = rng, list(echo), max_depth

    def of(self, schema: Schema, root: Schema | None = None, key: str = "", depth: int = 0) -> Any:
        """One instance of `schema` (`root` holds its `$defs`; `key` is the property it fills, a hint)."""
        root = schema if root is None else root
        schema = self._resolve(schema, root)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        if schema.get("nullable") and self.rng.random() < 0.2:
            return None
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:
            if depth >= self.max_depth:  # end recursion: prefer a null branch
                branches = [b for b in branches if self._resolve(b, root).get("type") == "null"] or branches
            branch = self._resolve(self.rng.choice(branches), root)
            value = self.of(branch, root, key, depth + 1)
            tag = (schema.get("discriminator") or {}).get("propertyName")
            if tag and isinstance(value, dict) and tag not in value:  # a defaulted tag must still be sent
                value[tag] = self.of(branch["properties"][tag], root, tag, depth + 1)
            return value
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = self.rng.choice(kind)
        if kind is None and "properties" in schema:
            kind = "object"
        elif kind is None:
            kind = "array" if "items" in schema or "prefixItems" in schema else \
                self.rng.choice(["string", "integer", "boolean", "null"])
        return self._BY_TYPE[kind](self, schema, root, key, depth)

    def _resolve(self, schema: Schema, root: Schema) -> Schema:
        """`schema` with its `$ref` followed and its `allOf` merged (sibling keys kept)."""
        while "$ref" in schema or "allOf" in schema:
            rest = {k: v for k, v in schema.items() if k not in ("$ref", "allOf")}
            if "$ref" in schema:
                target: Any = root
                for part in schema["$ref"].removeprefix("#/").split("/"):
                    target = target[part.replace("~1", "/").replace("~0", "~")]
                schema = {**target, **rest}
            else:
                merged: Schema = {}
                for sub in schema["allOf"]:
                    merged |= self._resolve(sub, root)
                schema = {**merged, **rest}
        return schema

    def _object(self, schema: Schema, root: Schema, key: str, depth: int) -> dict[str, Any]:
        props: dict[str, Schema] = schema.get("properties", {})
        required = set(schema.get("required", []))
        out = {name: self.of(sub, root, name, depth + 1) for name, sub in props.items()
               if name in required or (depth < self.max_depth and self.rng.random() < 0.5)}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not props:  # a map: dict[str, X]
            lo = schema.get("minProperties", 0)
            want = self.rng.randint(lo, schema.get("maxProperties", lo + (0 if depth >= self.max_depth else 3)))
            for _ in range(want * 5):
                if len(out) >= want:
                    break
                out[self.token() or "k"] = self.of(extra, root, key, depth + 1)
        return out

    def _array(self, schema: Schema, root: Schema, key: str, depth: int) -> list[Any]:
        prefix: list[Schema] = schema.get("prefixItems", [])
        items = schema.get("items", {})
        lo: int = schema.get("minItems", 0)
        hi: int = schema.get("maxItems", lo if depth >= self.max_depth else lo + 4)
        if items is False:
            hi = min(hi, len(prefix))
        n = self.rng.randint(lo, hi)
        out = [self.of(p, root, key, depth + 1) for p in prefix[:n]]
        tries = 0
        while len(out) < n and tries < 20 * n:
            value, tries = self.of(items, root, key, depth + 1), tries + 1
            if not schema.get("uniqueItems") or all(json.dumps(value) != json.dumps(v) for v in out):
                out.append(value)
        return out

    def _string(self, schema: Schema, root: Schema, key: str, depth: int) -> str:
        fmt = schema.get("format")
        if fmt in FORMATS:
            return FORMATS[fmt](self.rng)
        lo, hi = schema.get("minLength", 0), schema.get("maxLength")
        says_empty = "empty" in str(schema.get("description", "")).lower()  # models read descriptions
        text = self.path() if fmt == "path" else self.text(key, blank=0.6 if says_empty else 0.1)
        while len(text) < lo:
            text = f"{text} {self.rng.choice(VOCAB)}".lstrip()
        return text if hi is None else text[:hi]

    def _integer(self, schema: Schema, root: Schema, key: str, depth: int) -> int:
        lo, hi = _bounds(schema, integral=True)
        step = schema.get("multipleOf", 1)
        return int(step * self.rng.randint(math.ceil(lo / step), math.floor(hi / step)))

    def _number(self, schema: Schema, root: Schema, key: str, depth: int) -> float:
        lo, hi = _bounds(schema, integral=False)
        if "multipleOf" in schema:
            step = schema["multipleOf"]
            return float(step * self.rng.randint(math.ceil(lo / step), math.floor(hi / step)))
        value = self.rng.uniform(lo, hi)
        if value in (schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")):
            value = (lo + hi) / 2
        return value

    def _boolean(self, schema: Schema, root: Schema, key: str, depth: int) -> bool:
        return self.rng.random() < 0.5

    def _null(self, schema: Schema, root: Schema, key: str, depth: int) -> None:
        return None

    _BY_TYPE: ClassVar[dict[str, Callable[..., Any]]] = {"object": _object, "array": _array, "string": _string,
                                               "integer": _integer, "number": _number, "boolean": _boolean,
                                               "null": _null}

    def text(self, key: str = "", *, blank: float = 0.1) -> str:
        """A string for the property `key`: empty (`blank` of the time), a path, an id-like token, an echo of
        the prompt, or words."""
        key = key.lower()
        if self.rng.random() < blank:
            return ""
        roll = self.rng.random()
        if "path" in key or key in ("file", "filename"):
            return self.path()
        if key in _ID_KEYS or key.endswith(("_id", "_ids")):
            return self.token()
        if roll < 0.2 and self.echo:
            return self.rng.choice(self.echo)
        return self.words(self.rng.randint(1, 14))

    def token(self) -> str:
        """An id, a capability, a name: often one the prompt used, else one that references nothing."""
        roll = self.rng.random()
        if roll < 0.5 and self.echo:
            return self.rng.choice(self.echo)
        return f"T{self.rng.randint(0, 12)}" if roll < 0.75 else self.rng.choice(VOCAB)

    def path(self) -> str:
        """Often a file name the prompt gave, else one of `PATHS`: empty, absolute, outside the workspace, odd."""
        named = [w for w in self.echo if "." in w[1:]]
        if named and self.rng.random() < 0.4:
            return self.rng.choice(named)
        return self.rng.choice(PATHS).format(w=self.rng.choice(VOCAB[:30]))

    def words(self, n: int) -> str:
        pool = VOCAB + tuple(self.echo)
        return " ".join(self.rng.choice(pool) for _ in range(n))


def _bounds(schema: Schema, *, integral: bool) -> tuple[float, float]:
    """The [lo, hi] range a number must fall in (exclusive bounds narrowed by one for integers)."""
    lows = [schema["minimum"]] if "minimum" in schema else []
    highs = [schema["maximum"]] if "maximum" in schema else []
    if "exclusiveMinimum" in schema:
        lows.append(math.floor(schema["exclusiveMinimum"]) + 1 if integral else schema["exclusiveMinimum"])
    if "exclusiveMaximum" in schema:
        highs.append(math.ceil(schema["exclusiveMaximum"]) - 1 if integral else schema["exclusiveMaximum"])
    spread = 60 if integral else 1000.0
    lo = max(lows) if lows else (min(highs) - spread if highs else (-3 if integral else -10.0))
    hi = min(highs) if highs else lo + spread
    return (math.ceil(lo), math.floor(hi)) if integral else (float(lo), float(hi))


def random_instance(schema: Schema, *, seed: int, echo: Sequence[str] = ()) -> Any:
    """One seeded random instance of a JSON schema (see `Instances`)."""
    return Instances(random.Random(seed), echo).of(schema)


def prompt_words(messages: list[dict[str, Any]]) -> list[str]:
    """The words of the request's user and tool messages, in order, once each: what a model may echo."""
    seen: dict[str, None] = {}
    for m in messages:
        if isinstance(m, dict) and m.get("role") in ("user", "tool"):
            seen.update(dict.fromkeys(_WORD.findall(_text(m.get("content")))))
    return list(seen)[:300]


class RandomModel:
    """Answers chat completion requests with seeded random, schema-valid content.

    `tool_rate` is how often offered (not forced) tools get a call rather than text; `empty_rate` how often a
    text answer is empty.
    """

    def __init__(self, seed: int, *, tool_rate: float = 0.65, empty_rate: float = 0.05) -> None:
        self.seed, self.tool_rate, self.empty_rate = seed, tool_rate, empty_rate
        self._asked: Counter[str] = Counter()
        self._lock = threading.Lock()

    def rng_for(self, body: dict[str, Any]) -> random.Random:
        """The request's own generator: from the seed, its content and how often that content came before."""
        content = json.dumps({k: body.get(k) for k in ("messages", "tools", "tool_choice", "response_format")},
                             sort_keys=True, default=str)
        digest = hashlib.sha256(content.encode()).hexdigest()
        with self._lock:
            nth = self._asked[digest]
            self._asked[digest] += 1
        return random.Random(f"{self.seed}:{digest}:{nth}")

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One `chat.completion` object answering `body`."""
        if not isinstance(body.get("messages"), list):
            raise BadRequest("'messages' must be a list")
        try:
            tools, as_content = _tools(body)
        except (KeyError, TypeError, AttributeError) as e:
            raise BadRequest(f"malformed request: {type(e).__name__}: {e}") from e
        rng = self.rng_for(body)
        gen = Instances(rng, prompt_words(body["messages"]))
        choice = body.get("tool_choice")
        forced = as_content or isinstance(choice, dict) or choice in ("required", "any")
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if tools and (forced or rng.random() < self.tool_rate):
            said = " ".join(gen.echo)  # a tool the prompt names is called more often, as models follow instructions
            weights = [3 if t["function"]["name"] in said else 1 for t in tools]
            picked = rng.choices(tools, weights, k=2 if not forced and rng.random() < 0.15 else 1)
            calls: list[dict[str, Any]] = [{"id": f"call_{rng.getrandbits(64):016x}", "type": "function",
                      "function": {"name": t["function"]["name"],
                                   "arguments": json.dumps(gen.of(t["function"].get("parameters") or {}))}}
                     for t in picked]
            if as_content:
                message["content"] = calls[0]["function"]["arguments"]
            else:
                message["tool_calls"] = calls
        else:
            message["content"] = "" if rng.random() < self.empty_rate else gen.words(rng.randint(1, 60))
        prompt = len(json.dumps(body["messages"])) // 4
        completion = len(json.dumps(message)) // 4
        return {
            "id": f"chatcmpl-{rng.getrandbits(96):024x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "random"),
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


class _RandomHandler(_Handler):
    """`openai_server`'s handler, answering POSTs with the server's `RandomModel`."""

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route POST {self.path}", "not_found")
        owner = self.server.owner
        assert isinstance(owner, FuzzServer)
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            if not isinstance(body, dict):
                raise BadRequest("the request body must be a JSON object")
            self.server.record(body, dict(self.headers))
            done = owner.model.complete(body)
        except (json.JSONDecodeError, UnicodeDecodeError, BadRequest) as e:
            return self._error(400, str(e), "invalid_request_error")
        except Exception as e:  # a schema the generator cannot serve: say so like an upstream error
            return self._error(500, f"{type(e).__name__}: {e}", "server_error")
        if not body.get("stream"):
            return self._json(200, done)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in stream_chunks(done, bool((body.get("stream_options") or {}).get("include_usage"))):
            self._send_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")


class FuzzServer(OpenAICompatServer):
    """The random-answer server in a daemon thread: `with FuzzServer(seed=3) as srv: ChatOpenAI(base_url=srv.url)`.

    `requests` and `headers` record what arrived, as in `OpenAICompatServer`.
    """

    def __init__(self, *, seed: int = 7, tool_rate: float = 0.65, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(seed=seed, host=host, port=port)
        self.model = RandomModel(seed, tool_rate=tool_rate)

    def start(self) -> str:
        url = super().start()
        assert self._httpd is not None
        self._httpd.RequestHandlerClass = _RandomHandler  # before anyone knows the URL
        return url


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground: print the base URL, then serve until killed."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible server answering seeded random instances.")
    for flag, kind, default in (("--host", str, "127.0.0.1"), ("--port", int, 0), ("--seed", int, 7)):
        parser.add_argument(flag, type=kind, default=default)
    args = parser.parse_args(argv)
    with FuzzServer(seed=args.seed, host=args.host, port=args.port) as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
