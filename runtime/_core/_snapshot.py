"""Debug-mailbox snapshots: frozen, redacted, convertible to plain JSON types.

Times an operator reads (``Handled.at``, ``RuntimeSnapshot.taken_at``) are Unix times in
seconds, taken from the runtime clock's ``wall()``, so ``taken_at - at`` is how long ago a
message was handled. Durations and ages are seconds.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

import attrs

ActorKind = str  # "profile" | "health" | "chain" | "supervisor"


@attrs.frozen
class Handled:
    """One message an actor handled.

    Attributes:
        type: the message's class name.
        summary: a short one-line description (never an API key, never prompt text).
        at: Unix time (seconds) at which the actor began handling it.
        duration: seconds the actor spent in its handler.
    """

    type: str
    summary: str
    at: float
    duration: float


@attrs.frozen
class ActorSnapshot:
    """One actor's state as its debug mailbox reports it.

    ``stale`` is True when the actor could not answer in time (its mailbox is deep or it is
    busy inside a handler) and the snapshot comes from the state it last published; ``age``
    then says how old that published state is, in seconds (0.0 for a live answer).
    ``processed`` and ``recent`` leave out the inspect messages themselves, so looking at
    an actor does not change what one sees.
    """

    name: str
    kind: ActorKind
    state: Mapping[str, Any]
    mailbox_depth: int
    processed: int
    restarts: int
    recent: tuple[Handled, ...]
    stale: bool = False
    age: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: dicts, lists, str, int, finite float, bool, None."""
        plain: dict[str, Any] = _plain(attrs.asdict(self, recurse=True))
        return plain


@attrs.frozen
class RuntimeSnapshot:
    """Every actor's snapshot; ``taken_at`` is the Unix time it was assembled."""

    actors: tuple[ActorSnapshot, ...]
    taken_at: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: dicts, lists, str, int, finite float, bool, None."""
        return {"taken_at": self.taken_at, "actors": [a.to_dict() for a in self.actors]}

    def actor(self, name: str) -> ActorSnapshot:
        """The snapshot of the actor called ``name`` (KeyError if none)."""
        for snapshot in self.actors:
            if snapshot.name == name:
                return snapshot
        raise KeyError(name)


def _plain(value: Any) -> Any:
    """Mappings, sequences, enums and numbers down to JSON types."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if attrs.has(type(value)):
        return _plain(attrs.asdict(value, recurse=True))
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity or NaN
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
