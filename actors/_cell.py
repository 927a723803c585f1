"""Published state ("cells"): what each actor last published, for readers that only look.

DESIGN: readers that only need to look read an immutable snapshot that the owning actor
publishes after each change; writes always go through the mailbox. A :class:`Cell` holds
that snapshot for one actor and outlives the actor: the owning actor is its only writer, a
publish is one assignment of a frozen (state, time) pair, so a reader never sees a state
with another publish's time and nothing needs a lock; the supervisor restarts a crashed
actor from the state its cell last held.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

#: How many handled messages each actor remembers for the debug mailbox.
RECENT = 32

S = TypeVar("S")


@attrs.frozen
class Published(Generic[S]):
    """One publish: the actor's state and the clock time it was published."""

    state: S
    at: float


class Cell(Generic[S]):
    """The published face of one actor (state ``S``), kept across restarts."""

    __slots__ = ("kind", "name", "processed", "published", "recent", "render", "restarts", "thread")

    def __init__(
        self,
        name: str,
        kind: str,
        state: S,
        render: Callable[[S, float], Mapping[str, Any]],
        *,
        published_at: float,
    ) -> None:
        self.name = name
        self.kind = kind
        self.render = render
        # The initial state counts as published when the cell is made, so a stale
        # snapshot of an actor that never changed anything still has a true age.
        self.published: Published[S] = Published(state, published_at)
        self.processed = 0
        self.restarts = 0
        self.thread: threading.Thread | None = None  # the current incarnation's thread
        # (message, clock.now() when handling began, seconds spent): rendered only on inspect.
        self.recent: collections.deque[tuple[object, float, float]] = collections.deque(
            maxlen=RECENT
        )

    def __repr__(self) -> str:
        return f"Cell({self.name!r})"

    @property
    def state(self) -> S:
        """The state last published."""
        return self.published.state

    def publish(self, state: S, at: float) -> None:
        """Make ``state`` (a frozen value) what readers and restarts see; owner only."""
        self.published = Published(state, at)
