"""Messages between switchover's actors. All frozen; none carries an API key."""

from __future__ import annotations

import threading
from typing import Any, Literal

import attrs

from .._core._classify import Failure
from .._core._config import ChainEntry
from .._core._types import Attempt, Event, Request, ServedBy

Verdict = Literal["ok", "error", "released"]


def _chain_repr(chain: tuple[ChainEntry, ...]) -> str:
    return " > ".join(entry.key for entry in chain)


def _failure_repr(failure: Failure | None) -> str:
    # The flight recorder cuts summaries short; lead with what an operator looks for.
    if failure is None:
        return "None"
    status = "" if failure.status is None else f" {failure.status}"
    return f"{failure.kind}{status}: {failure.message!r}"


@attrs.frozen
class Inspect:
    """Ask any actor for a snapshot of its own state."""


@attrs.frozen
class InjectCrash:
    """Test hook: make the receiving actor's handler raise."""

    reason: str = "injected crash"


@attrs.frozen
class InjectHold:
    """Test hook: keep the receiving actor inside its handler until ``release`` is set.

    The actor sets ``entered`` once it is held, so a test knows the actor is busy.
    """

    release: threading.Event = attrs.field(eq=False, repr=False)
    entered: threading.Event = attrs.field(factory=threading.Event, eq=False, repr=False)


@attrs.frozen
class AcquireKey:
    """Ask a ProfileActor to hand out its key for ``model`` now that its cooldown ended.

    ``lease_until`` (clock time) is how long the permit holds if no outcome comes back
    (None: the actor's default lease).
    """

    model: str
    lease_until: float | None = None


@attrs.frozen
class KeyPermit:
    """Answer to AcquireKey: granted, or the reason it was not."""

    granted: bool
    reason: str = ""


@attrs.frozen
class KeyOutcome:
    """Tell a ProfileActor how a call on its key for ``model`` ended; ``began_at``: when
    the call's gates were read."""

    verdict: Verdict
    failure: Failure | None = attrs.field(default=None, repr=_failure_repr)
    model: str = attrs.field(kw_only=True)
    began_at: float = attrs.field(kw_only=True)


@attrs.frozen
class ResetKey:
    """Take a key out of cooldown and clear its failure count."""


@attrs.frozen
class AcquireModel:
    """Ask the HealthActor to let one probe through a model whose cooldown ended;
    ``lease_until`` as for :class:`AcquireKey`."""

    model: str
    lease_until: float | None = None
    holder: int | None = None  # the asking request's id


@attrs.frozen
class SuspectModel:
    """Ask the HealthActor to put a healthy model on probation after a transient failure,
    with the asker as its probe holder until ``lease_until``."""

    model: str
    failure: Failure
    lease_until: float
    holder: int


@attrs.frozen
class ModelPermit:
    """Answer to AcquireModel: ``reason`` is None when the model may be called; ``probe``
    then says whether this caller holds its single probe (False: it was healthy again)."""

    reason: str | None
    probe: bool = False


@attrs.frozen
class ModelOutcome:
    """Tell the HealthActor how a call on a model ended; ``probe``: from the probe holder;
    ``began_at``: when the call's gates were read."""

    model: str
    verdict: Verdict
    failure: Failure | None = attrs.field(default=None, repr=_failure_repr)
    probe: bool = False
    began_at: float = attrs.field(kw_only=True)


@attrs.frozen
class ResetModel:
    """Make one model (or, with None, every model) healthy; answers whether it had a row."""

    model: str | None


@attrs.frozen
class RunRequest:
    """Ask a ChainActor to walk a request's chain until an attempt commits."""

    request_id: int
    # The prompt stays out of the repr: the flight recorder shows the chain, not the text.
    request: Request = attrs.field(repr=False)
    chain: tuple[ChainEntry, ...] = attrs.field(repr=_chain_repr)
    deadline: float = attrs.field(repr=False)
    cancel: threading.Event = attrs.field(eq=False, repr=False)


@attrs.frozen(eq=False)
class Committed:
    """A ChainActor's answer when an attempt committed: the live stream moves to the caller."""

    request_id: int
    served_by: ServedBy
    entry: ChainEntry
    attempts: tuple[Attempt, ...]
    first: Event
    stream: Any = attrs.field(repr=False)
    probe: bool
    gate_at: float
    started: float


@attrs.frozen
class Failed:
    """A ChainActor's answer when no attempt committed; ``error`` is the error to raise."""

    request_id: int
    error: BaseException


@attrs.frozen
class ActorCrashed:
    """Tell the supervisor that an actor's handler raised unexpectedly.

    ``urn`` identifies the crashed incarnation; ``pending`` holds the pykka envelopes still
    queued for it, for the supervisor to hand to its replacement.
    """

    name: str
    error: str
    urn: str
    pending: tuple[Any, ...] = attrs.field(default=(), repr=False)


@attrs.frozen
class Sweep:
    """Tell a restarted supervisor to restart every actor that died while it was down."""
