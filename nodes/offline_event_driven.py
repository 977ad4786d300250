"""How the offline model plays the event_driven pattern's roles (structured answers by schema name)."""

from __future__ import annotations

from nodes.offline_roles import Answer

ANSWERS: dict[str, Answer] = {}
