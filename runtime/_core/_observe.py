"""The observer protocol: what a running runtime tells whoever watches it.

A runtime calls its observers' hooks as things happen: a request opened, a call began or
ended (or a chain entry was skipped), a key's cooldown or a model's health changed, a request
closed. The history checker, the chaos benchmark, log lines and metrics all listen here; no
other seam into the running runtime exists. Like trio's ``Instrument``, :class:`Observer` is a
base class whose hooks all do nothing: override the ones you need.

Hooks run on the thread that did the thing (a caller, a chain worker, an actor), so they must
be quick and thread-safe. An exception from a hook is logged once per observer and hook and
never reaches the request.

Example:
    >>> class Failovers(Observer):
    ...     def attempt_ended(self, event: AttemptRecord) -> None:
    ...         if event.outcome == "error":
    ...             print("failed over from", event.model)
    >>> Runtime(config, observers=[Failovers()])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal

import attrs

from ._vocab import ErrorKind, HealthState

_log = logging.getLogger("switchover")

#: How a request ended. A walk that crashed its chain worker ends ``crashed`` and is
#: retried under a new id (``RequestOpened.retry_of`` links the two).
Terminal = Literal[
    "served",  # the stream ended cleanly
    "interrupted",  # the stream broke after it had committed
    "released",  # the caller closed the stream before its end
    "rejected",
    "exhausted",
    "deadline",
    "stopped",
    "crashed",
    "failed",  # any other error
]
CallOutcome = Literal["ok", "error", "released", "skipped"]
#: What made a key or a model change state: a call's failure or success, a probe's outcome
#: (a model's single probe call), a probe's commit (its first content event: the target
#: is back in service), an operator's reset, a granted probe or a probation (``grant``,
#: ``suspect``: the model goes ``probing``), a probe released unanswered, a model's row
#: dropped from the health table (``forgotten``: it reads healthy again).
Cause = Literal[
    "failure",
    "success",
    "probe",
    "commit",
    "reset",
    "grant",
    "suspect",
    "release",
    "forgotten",
    "shared",  # another process's transition, applied here (Config.shared)
]


@attrs.frozen
class RequestOpened:
    """A request was handed to the chain: its resolved chain and deadline."""

    request_id: int
    chain: tuple[str, ...]
    deadline: float
    at: float
    retry_of: int | None = None


@attrs.frozen
class RequestClosed:
    """A request's terminal outcome."""

    request_id: int
    outcome: Terminal
    at: float
    #: For ``exhausted``: seconds until the soonest chain entry can be called again.
    retry_after: float | None = None


@attrs.frozen
class AttemptRecord:
    """One call (or one skipped chain entry or key) of one request.

    ``model`` is the chain entry's ``provider/model`` key. For a call, ``gate_at`` is when
    the worker began reading the published key and model state, ``start`` when it had
    read them and called, ``end`` when the call (for a committed one: its stream) ended.
    ``probe`` says the call ran under a granted model probe. A committed call also has
    ``first_at`` (when its first event reached the caller) and the token counts its
    provider reported, if any.
    """

    request_id: int
    model: str
    provider: str
    profile: str | None
    outcome: CallOutcome
    kind: ErrorKind | None
    probe: bool
    gate_at: float
    start: float
    end: float
    first_at: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@attrs.frozen
class KeyChange:
    """A profile actor published a new cooldown deadline (None: no cooldown) for the whole
    key (``model`` None) or for one model's rate limit on it.

    ``cause`` says why; after a failure, ``kind`` is its error kind and ``retry_after`` the
    provider's own wait hint in seconds, if it sent one.
    """

    provider: str
    profile: str
    cooldown_until: float | None
    before: float
    after: float
    model: str | None = attrs.field(kw_only=True)
    cause: Cause | None = attrs.field(default=None, kw_only=True)
    kind: ErrorKind | None = attrs.field(default=None, kw_only=True)
    retry_after: float | None = attrs.field(default=None, kw_only=True)
    #: That cooldown's consecutive failures; ``origin`` None for a change this process made,
    #: else the origin id of the other process whose shared transition was applied.
    failures: int = attrs.field(default=0, kw_only=True)
    origin: str | None = attrs.field(default=None, kw_only=True)

    @property
    def reset(self) -> bool:
        """An operator reset, not evidence from a call."""
        return self.cause == "reset"


@attrs.frozen
class ModelChange:
    """The health actor published a new state for a model; ``cause`` says why, and after
    a failure ``kind`` is its error kind."""

    model: str
    state: HealthState
    until: float | None
    before: float
    after: float
    cause: Cause | None = attrs.field(default=None, kw_only=True)
    kind: ErrorKind | None = attrs.field(default=None, kw_only=True)
    #: The row's run of one error kind, its probe lease (clock time) and, as for
    #: :class:`KeyChange`, where the change came from.
    count: int = attrs.field(default=0, kw_only=True)
    probe_until: float | None = attrs.field(default=None, kw_only=True)
    origin: str | None = attrs.field(default=None, kw_only=True)

    @property
    def reset(self) -> bool:
        """An operator reset, not evidence from a call."""
        return self.cause == "reset"


@attrs.frozen
class AttemptBegan:
    """A chain worker is about to call a provider with one key."""

    request_id: int
    model: str
    provider: str
    profile: str
    probe: bool
    at: float


Observed = RequestOpened | RequestClosed | AttemptBegan | AttemptRecord | KeyChange | ModelChange


class Observer:
    """Hooks a runtime calls as it works; every one does nothing unless overridden."""

    def request_opened(self, event: RequestOpened) -> None:
        """A request was handed to the chain."""

    def attempt_began(self, event: AttemptBegan) -> None:
        """A call is about to be made."""

    def attempt_ended(self, event: AttemptRecord) -> None:
        """A call ended (for a committed one: its stream did), or a chain entry was skipped."""

    def key_changed(self, event: KeyChange) -> None:
        """A profile actor published a new cooldown."""

    def model_changed(self, event: ModelChange) -> None:
        """The health actor published a new state for a model."""

    def request_closed(self, event: RequestClosed) -> None:
        """A request reached its terminal outcome."""


HOOKS = (
    "request_opened",
    "attempt_began",
    "attempt_ended",
    "key_changed",
    "model_changed",
    "request_closed",
)


class Observers(Observer):
    """Several observers as one: each hook is passed to each, and a failing hook is contained.

    A hook goes only to the observers that override it (most watch a few hooks), as bound
    methods looked up once.
    """

    __slots__ = ("_hooks", "_observers", "_warned")

    def __init__(self, observers: Iterable[Observer]) -> None:
        if isinstance(observers, Observer):
            raise TypeError("observers takes a list of Observer instances, not one Observer")
        self._observers = tuple(observers)
        self._warned: set[tuple[int, str]] = set()
        for observer in self._observers:
            if not isinstance(observer, Observer):
                raise TypeError(
                    f"observers must be Observer instances, got {type(observer).__name__}"
                )
        self._hooks: dict[str, tuple[tuple[Observer, Callable[[Any], None]], ...]] = {
            hook: tuple(
                (observer, getattr(observer, hook))
                for observer in self._observers
                if getattr(type(observer), hook) is not getattr(Observer, hook)
            )
            for hook in HOOKS
        }

    def __bool__(self) -> bool:
        return bool(self._observers)

    def _each(self, hook: str, event: Observed) -> None:
        for observer, method in self._hooks[hook]:
            try:
                method(event)
            except Exception:
                # An observer must never break a request; say so once per observer and hook.
                if (id(observer), hook) not in self._warned:
                    self._warned.add((id(observer), hook))
                    _log.warning(
                        "observer %s failed in %s; its later failures there are not logged",
                        type(observer).__name__,
                        hook,
                        exc_info=True,
                    )

    def request_opened(self, event: RequestOpened) -> None:
        self._each("request_opened", event)

    def attempt_began(self, event: AttemptBegan) -> None:
        self._each("attempt_began", event)

    def attempt_ended(self, event: AttemptRecord) -> None:
        self._each("attempt_ended", event)

    def key_changed(self, event: KeyChange) -> None:
        self._each("key_changed", event)

    def model_changed(self, event: ModelChange) -> None:
        self._each("model_changed", event)

    def request_closed(self, event: RequestClosed) -> None:
        self._each("request_closed", event)
