"""Debug-mailbox snapshots: frozen, redacted, convertible to plain JSON types."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

ActorKind = str  # "profile" | "health" | "chain" | "supervisor"


@attrs.frozen
class Handled:
    """One message an actor handled: its type, a short summary, when and how long."""

    type: str
    summary: str
    at: float
    duration: float


@attrs.frozen
class ActorSnapshot:
    """One actor's state as its debug mailbox reports it.

    ``stale`` is True when the actor could not answer in time and the snapshot comes from
    the state it last published; ``age`` then says how old that state is, in seconds.
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
        plain: dict[str, Any] = _plain(attrs.asdict(self, recurse=True))
        return plain


@attrs.frozen
class RuntimeSnapshot:
    """Every actor's snapshot, taken at ``taken_at`` (clock seconds)."""

    actors: tuple[ActorSnapshot, ...]
    taken_at: float

    def to_dict(self) -> dict[str, Any]:
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
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if attrs.has(type(value)):
        return _plain(attrs.asdict(value, recurse=True))
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
