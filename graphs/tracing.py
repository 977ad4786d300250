"""LangSmith tracing that cannot hold the CLI hostage.

With tracing on and an endpoint that does not answer, LangSmith's exit-time flush keeps the
process alive for minutes. Before a run, the CLI asks the endpoint for `/info` once, briefly;
if it does not answer, tracing is switched off for this process and the user is told why.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from state.urls import redact

DEFAULT_ENDPOINT = "https://api.smith.langchain.com"
FLAGS = ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2")


def tracing_enabled() -> bool:
    return any(os.environ.get(flag, "").lower() in ("true", "1") for flag in FLAGS)


def endpoint() -> str:
    url = os.environ.get("LANGSMITH_ENDPOINT") or os.environ.get("LANGCHAIN_ENDPOINT") or DEFAULT_ENDPOINT
    return url.rstrip("/")


def ensure_reachable(timeout: float = 2.0) -> str | None:
    """Leave tracing on only if its endpoint answers; returns a warning when it was switched off."""
    if not tracing_enabled():
        return None
    url = endpoint()
    try:
        with urllib.request.urlopen(f"{url}/info", timeout=timeout):
            return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        for flag in FLAGS:
            os.environ[flag] = "false"
        reason = getattr(exc, "reason", exc)
        return f"LangSmith endpoint {redact(url)} did not answer ({reason}): tracing is off for this run"
