"""The recent key and model state changes, for the debug server's live page.

An observer every runtime installs: it keeps the last :data:`KEEP` changes as plain JSON
values (names through ``redact.known``), stamped with the runtime clock's wall time. It
runs only when a key or a model changes state, never per request.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from ._core._clock import Clock
from ._core._observe import KeyChange, ModelChange, Observer
from ._core._redact import Redactor

KEEP = 200


class Timeline(Observer):
    """The last :data:`KEEP` state changes, oldest first (see :meth:`recent`)."""

    def __init__(self, clock: Clock, redact: Redactor, keep: int = KEEP) -> None:
        self._clock = clock
        self._known = redact.known
        self._changes: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()

    def _add(self, change: dict[str, Any], until: float | None, now: float) -> None:
        change["at"] = self._clock.wall()
        change["seconds"] = None if until is None else round(max(0.0, until - now), 3)
        with self._lock:
            self._changes.append(change)

    def key_changed(self, event: KeyChange) -> None:
        self._add(
            {
                "what": "key",
                "name": self._known(f"{event.provider}/{event.profile}"),
                "state": "ready" if event.cooldown_until is None else "cooling",
                "cause": event.cause,
                "kind": None if event.kind is None else str(event.kind),
            },
            event.cooldown_until,
            event.after,
        )

    def model_changed(self, event: ModelChange) -> None:
        self._add(
            {
                "what": "model",
                "name": self._known(event.model),
                "state": str(event.state),
                "cause": event.cause,
                "kind": None if event.kind is None else str(event.kind),
            },
            event.until,
            event.after,
        )

    def recent(self) -> list[dict[str, Any]]:
        """The kept changes, oldest first, as plain JSON values."""
        with self._lock:
            return [dict(change) for change in self._changes]
