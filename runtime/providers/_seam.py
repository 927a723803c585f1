"""The provider seam: what a chain actor hands an adapter, and what it gets back.

An adapter turns one :class:`ProviderCall` into an :class:`EventStream`. Every failure,
before or after the first event, is raised as :class:`ProviderFailure` carrying a classified
:class:`Failure`; no transport exception escapes an adapter. Adapters enforce the call's
timeouts themselves (each already cut to the request deadline) and return promptly once
``call.cancel`` is set.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import attrs

from .._core._classify import Failure
from .._core._clock import Clock
from .._core._types import Event, Request


class ProviderFailure(Exception):
    """Raised by an adapter; ``failure`` says what went wrong, already classified."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.failure,))


@attrs.frozen
class ProviderCall:
    """One attempt: a model on one key, with its timeouts.

    ``deadline`` is on ``clock``'s scale; ``first_token_timeout`` is None when the attempt
    may wait for its first event until the deadline (the last chain entry). ``request`` is
    the caller's request, for the fields beyond the prompt (``stop``, ``tool_choice``,
    ``extra``...) that each wire format maps; the fields above win over its own.
    """

    model: str
    api_key: str = attrs.field(repr=False)
    messages: tuple[Mapping[str, Any], ...] = attrs.field(repr=False)
    max_tokens: int | None
    temperature: float | None
    tools: tuple[Mapping[str, Any], ...] = attrs.field(repr=False)
    deadline: float
    connect_timeout: float
    first_token_timeout: float | None
    idle_timeout: float
    clock: Clock = attrs.field(repr=False)
    cancel: threading.Event = attrs.field(repr=False)
    request: Request | None = attrs.field(default=None, repr=False)

    def remaining(self) -> float:
        """Seconds left until the request's deadline (never negative)."""
        return max(0.0, self.deadline - self.clock.now())

    def cut(self, timeout: float | None) -> float:
        """``timeout`` cut to the time left in the request."""
        left = self.remaining()
        return left if timeout is None else min(timeout, left)


class EventStream(Protocol):
    """A live stream of events; ``close()`` releases its connection at once."""

    def __iter__(self) -> Iterator[Event]: ...

    def __next__(self) -> Event: ...

    def close(self) -> None: ...


class Provider(Protocol):
    """An adapter for one provider's API."""

    def open(self, call: ProviderCall) -> EventStream:
        """Start the call. May raise :class:`ProviderFailure` here or while iterating."""
        ...

    def close(self) -> None:
        """Release the adapter's connections; in-flight streams fail promptly."""
        ...
