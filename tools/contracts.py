"""Does an artifact keep an interface contract? A deterministic check of the names it uses.

An artifact is held to a contract it is about: one that mentions the contract's title, or half of its
fields. It keeps the contract when every field appears in it as a name, whatever its spelling (a field
spelled differently is naming drift, `tools.coherence`'s business, not a disagreement about the shape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from state.records import ContractRecord

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SHAPE = re.compile(r"\{([^{}]{1,400})\}")


def normal(name: str) -> str:
    """'userId', 'user-id', 'USER_ID' -> 'userid'."""
    return re.sub(r"[_-]", "", name).lower()


@dataclass(frozen=True)
class Mismatch:
    """How an artifact disagrees with a contract: the fields it lacks, and the shape it uses instead (if it says)."""

    contract: ContractRecord
    missing: list[str]
    found: list[str]

    def describe(self, path: str) -> str:
        instead = f"; it uses {{{', '.join(self.found)}}}" if self.found else ""
        return (f"{path} disagrees with contract {self.contract.title!r} v{self.contract.version} "
                f"{{{', '.join(self.contract.fields)}}}: it lacks {', '.join(self.missing)}{instead}")


def mismatch(text: str, contract: ContractRecord) -> Mismatch | None:
    """How `text` disagrees with `contract`, or None (it keeps it, or it is not about it)."""
    names = {normal(n) for n in _NAME.findall(text)}
    fields = [f for f in contract.fields if normal(f) in names]
    about = contract.title.lower() in text.lower() or 2 * len(fields) >= len(contract.fields)
    missing = [f for f in contract.fields if normal(f) not in names]
    if not about or not missing:
        return None
    return Mismatch(contract, missing, _shape_near(text, contract.title))


def _shape_near(text: str, title: str) -> list[str]:
    """The `{a, b, c}` shape on the first line that names the contract, if there is one."""
    for line in text.splitlines():
        if title.lower() in line.lower() and (m := _SHAPE.search(line)):
            return [p.strip() for p in m.group(1).split(",") if p.strip()]
    return []
