"""Endpoint URLs never carry secrets: one with a credential is refused, and a URL is redacted wherever it is shown.

Run settings and team records are stored in plain text and shown by `troupe show`, so a key in a URL would be
kept and printed. A URL carries a credential when it has a user part (`https://user:pass@host`) or a query
parameter named like a key (`SECRET_PARAMS`, in any case, '-' or '_'). Keys belong in an environment variable:
$OPENAI_API_KEY, or the one a role's `api_key_env` names.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

SECRET_PARAMS = frozenset({"key", "apikey", "api_key", "token", "access_token", "auth", "secret", "password",
                           "sig", "signature"})
"""Query parameter names (lower case, '-' read as '_') whose value is a credential."""
HIDDEN = "***"
_PARAM = re.compile(r"(?P<name>[^&;=]*)=(?P<value>[^&;]*)")


def credential(url: str) -> str | None:
    """What credential `url` carries ('a user name and password', "the query parameter 'api_key'"), if any."""
    parts = _split(url)
    if parts is None:
        return None
    if "@" in parts.netloc:
        return "a user name and password"
    names = [m["name"] for m in _PARAM.finditer(parts.query) if _secret(m["name"])]
    return f"the query parameter {names[0]!r}" if names else None


def redact(url: str) -> str:
    """`url` with its user part and the values of credential query parameters replaced by '***'."""
    parts = _split(url)
    if parts is None:
        return url
    netloc = f"{HIDDEN}@{parts.netloc.rpartition('@')[2]}" if "@" in parts.netloc else parts.netloc
    query = _PARAM.sub(lambda m: f"{m['name']}={HIDDEN}" if _secret(m["name"]) else m[0], parts.query)
    return parts._replace(netloc=netloc, query=query).geturl()


def refuse_credential(url: str) -> None:
    """A ValueError, saying where the key goes instead, when `url` carries a credential."""
    if (what := credential(url)) is not None:
        raise ValueError(f"the URL {redact(url)} carries a credential ({what}): put the key in $OPENAI_API_KEY or "
                         "in the variable a role's api_key_env names, not in the URL")


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unclosed '[' of an IPv6 host
        return None


def _secret(name: str) -> bool:
    return name.strip().lower().replace("-", "_") in SECRET_PARAMS
