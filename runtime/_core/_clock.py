"""Injected time and randomness: the only module that touches ``time`` and ``random``."""

from __future__ import annotations

import random
import threading
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock that can also wait for an event."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (for HTTP-date and RFC 3339 headers)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
        ...


class SystemClock:
    """The real clock. Reads ``time`` at call time, so freezegun can move it."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))

    def __repr__(self) -> str:
        return "SystemClock()"


def default_rng() -> random.Random:
    """A fresh RNG seeded from the OS, for a runtime created without one."""
    return random.Random()
