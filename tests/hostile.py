"""A custom provider that raises what it is told, where it is told (the hostile-probe kit)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
from switchover import Done, ProviderCall, TextDelta

#: Where a stream can raise: in open(), at the first event, after one event, in close().
POINTS = ("open", "first", "mid", "close")


class LibraryAbort(BaseException):
    """A library's own BaseException subclass (gevent's GreenletExit, trio's Cancelled...)."""


class Unprintable(Exception):
    """An exception whose str() and repr() themselves raise."""

    def __str__(self) -> str:
        raise RuntimeError("str() of this exception raises")

    def __repr__(self) -> str:
        raise RuntimeError("repr() of this exception raises")


@attrs.frozen
class Raise:
    """Raise ``make()`` at ``point``; every other call of the provider is served."""

    make: Callable[[], BaseException]
    point: str


class HostileProvider:
    """A provider adapter whose next calls raise per ``plan`` (a Raise or None: serve)."""

    def __init__(self, plan: Callable[[ProviderCall], Raise | None] | None = None) -> None:
        self.plan = plan or (lambda call: None)
        self.calls = 0
        self._lock = threading.Lock()

    def open(self, call: ProviderCall) -> Iterator[Any]:
        with self._lock:
            self.calls += 1
        step = self.plan(call)
        if step is not None and step.point == "open":
            raise step.make()
        return _Events(step)

    def close(self) -> None:
        pass


class _Events:
    def __init__(self, step: Raise | None) -> None:
        self._step = step
        self._events = self._generate()

    def _raise_at(self, point: str) -> None:
        if self._step is not None and self._step.point == point:
            raise self._step.make()

    def _generate(self) -> Iterator[Any]:
        self._raise_at("first")
        yield TextDelta("hel")
        self._raise_at("mid")
        yield TextDelta("lo")
        yield Done(finish_reason="stop")

    def __iter__(self) -> _Events:
        return self

    def __next__(self) -> Any:
        return next(self._events)

    def close(self) -> None:
        self._raise_at("close")
