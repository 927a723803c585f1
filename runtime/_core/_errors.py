"""Errors raised by switchover, and the kinds of provider failure.

The hierarchy::

    SwitchoverError
    ├── ConfigError            bad configuration: says which field and why
    ├── RuntimeStoppedError    the runtime is not running
    ├── RequestRejected        the request cannot succeed anywhere (.kind); no other model tried
    ├── ChainExhausted         every chain entry failed or was cooling (.attempts, .retry_after)
    ├── DeadlineExceeded       the request's total timeout ran out (.attempts)
    └── StreamInterrupted      the stream broke after it had committed
                               (.partial_text, .served_by, .kind)

Every error carries its facts as attributes, so nobody parses a message to decide, and
survives ``copy.copy`` and ``pickle``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._vocab import ErrorKind

if TYPE_CHECKING:
    from ._types import Attempt, ServedBy


def _rebuild(cls: type[SwitchoverError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class SwitchoverError(Exception):
    """Base class of every error switchover raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields live in __dict__; rebuild without calling __init__ again.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(SwitchoverError, ValueError):
    """The configuration is invalid; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RuntimeStoppedError(SwitchoverError):
    """The runtime is not running (not started yet, stopped, or used after fork)."""


class RequestRejected(SwitchoverError):
    """The request itself cannot succeed on any model; no further model is tried."""

    def __init__(
        self, message: str, *, kind: ErrorKind, attempts: tuple[Attempt, ...] = ()
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts


class ChainExhausted(SwitchoverError):
    """Every chain entry failed or was cooling.

    ``retry_after`` is the number of seconds until the soonest cooldown ends, or None when
    nothing is cooling (every entry failed outright).
    """

    def __init__(
        self, message: str, *, attempts: tuple[Attempt, ...], retry_after: float | None
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.retry_after = retry_after


class DeadlineExceeded(SwitchoverError):
    """The request's total timeout ran out before any attempt committed."""

    def __init__(self, message: str, *, attempts: tuple[Attempt, ...] = ()) -> None:
        super().__init__(message)
        self.attempts = attempts


class StreamInterrupted(SwitchoverError):
    """The stream failed after it had committed; no other provider's output is spliced in."""

    def __init__(
        self, message: str, *, partial_text: str, served_by: ServedBy, kind: ErrorKind
    ) -> None:
        super().__init__(message)
        self.partial_text = partial_text
        self.served_by = served_by
        self.kind = kind
