"""What a checkpoint holds: plain JSON, so that any LangGraph server loads it.

`langgraph dev` (langgraph-api 0.16) loads from a checkpoint only the types its own serializer allows:
it warns about any other class ("Deserializing unregistered type") and, with `LANGGRAPH_STRICT_MSGPACK=true`,
hands back a dict instead. It cannot be told ours: it reads no msgpack allow-list from langgraph.json, and the
allow-list `compile()` derives from the state schemas is dropped when the server copies the graph to attach its
checkpointer. So state keys that hold pydantic values use these channels (the models in memory, JSON in the
checkpoint, the models again when a checkpoint is loaded), and a `Send` carries plain JSON (`payload(...)`),
which the node it starts reads back with `parse(...)`. A value that grows with the work (the plan, the board) is
checkpointed as the writes that made it (`JsonDelta`), which the nodes write as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, Self, TypeVar

from langgraph._internal._typing import MISSING
from langgraph.channels import BinaryOperatorAggregate, LastValue
from langgraph.channels.base import BaseChannel
from langgraph.channels.binop import _get_overwrite
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import PendingWrite
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.types import Overwrite
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

T = TypeVar("T")
Payload = Mapping[str, Any]
"""A `Send`'s argument as checkpointed: plain JSON. A node started by a `Send` takes one as its `state` and
`parse`s it; typed so, it adds no keys to the graph's state (LangGraph adds those of a node's input schema)."""


_adapter: Callable[[Any], TypeAdapter[Any]] = cache(TypeAdapter)
"""A type's pydantic adapter, made once (a TypedDict's takes a while)."""


class _Json(BaseChannel[Any, Any, Any]):
    """A channel whose value is checkpointed as JSON and validated back into `typ` when a checkpoint is loaded."""

    __slots__ = ()
    value: Any

    def checkpoint(self) -> Any:
        return _adapter(self.typ).dump_python(self.value, mode="json") if self.is_available() else super().checkpoint()

    def from_checkpoint(self, checkpoint: Any) -> Self:
        channel = super().from_checkpoint(checkpoint)  # type: ignore[safe-super]  # the concrete channel next in the MRO
        if channel.is_available():
            channel.value = _adapter(self.typ).validate_python(channel.value)
        return channel


class JsonValue(_Json, LastValue[T]):
    """`LastValue` checkpointed as JSON: `plan: Annotated[Plan | None, JsonValue]`."""


class JsonReduced(_Json, BinaryOperatorAggregate[T]):
    """A reducer's channel checkpointed as JSON: `requests: Annotated[list[Request], JsonReduced(list[Request],
    merge_requests)]`."""


class JsonDelta(DeltaChannel[T]):
    """A reducer's channel checkpointed as the writes that made it (LangGraph's `DeltaChannel`, beta): a checkpoint
    holds a copy of the value only every `snapshot_frequency` updates, so a run's checkpoints grow with its work, not
    with its square. `reducer(value, writes)` folds a batch of writes in turn (`value` is `None` before the first);
    nodes write JSON (`payload`), which any server loads, and a value read back as JSON is validated into `typ`:
    `board: Annotated[Board, JsonDelta(fold_board)]`."""

    __slots__ = ("schema",)

    def __init__(self, reducer: Callable[[Any, Sequence[Any]], Any], typ: Any = None, *,
                 snapshot_frequency: int = 1000) -> None:
        super().__init__(reducer, typ, snapshot_frequency=snapshot_frequency)
        self.schema = typ
        """The whole value type (`DeltaChannel` keeps only its origin, `dict` for `dict[str, TaskRecord]`)."""

    def copy(self) -> Self:
        new = super().copy()
        new.schema = self.schema
        return new

    def from_checkpoint(self, checkpoint: Any) -> Self:
        """The value of a snapshot (LangGraph writes the models; a server that does not load our classes hands back
        JSON), of an older checkpoint (`JsonReduced`/`JsonValue` wrote JSON), or nothing: writes replay onto it."""
        new = self.copy()
        stored = checkpoint.value if isinstance(checkpoint, _DeltaSnapshot) else checkpoint
        new.value = (self.reducer(None, []) if stored is MISSING or stored is None
                     else _adapter(self.schema).validate_python(stored))
        return new

    def update(self, values: Sequence[Any]) -> bool:
        return super().update([self._reset(v) for v in values])

    def replay_writes(self, writes: Sequence[PendingWrite]) -> None:
        super().replay_writes([(task, channel, self._reset(v)) for task, channel, v in writes])

    def _reset(self, write: Any) -> Any:
        """An `Overwrite` of JSON as the value it stands for: its value folded onto nothing."""
        overwrite, value = _get_overwrite(write)
        return Overwrite(self.reducer(None, [value])) if overwrite and value is not None else write


def payload(value: Any) -> Any:
    """A `Send`'s argument as plain JSON (models and enums dumped): pending sends are checkpointed."""
    return to_jsonable_python(value)


def parse(schema: type[T], value: Any) -> T:
    """A node's `Send` argument as `schema` (a pydantic model or TypedDict); a value already parsed passes."""
    parsed: T = _adapter(schema).validate_python(value)
    return parsed
