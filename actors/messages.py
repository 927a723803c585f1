"""Messages between switchover's actors. All frozen; none carries an API key."""

from __future__ import annotations

import threading
from typing import Any, Literal

import attrs

from runtime._chain import ChainEntry
from runtime._classify import Failure
from runtime._types import Attempt, Event, Request, ServedBy

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
    """Ask a ProfileActor to hand out its key now that its cooldown has ended."""


@attrs.frozen
class KeyPermit:
    """Answer to AcquireKey: granted, or the reason it was not."""

    granted: bool
    reason: str = ""


@attrs.frozen
class KeyOutcome:
    """Tell a ProfileActor how a call on its key ended."""

    verdict: Verdict
    failure: Failure | None = attrs.field(default=None, repr=_failure_repr)


@attrs.frozen
class ResetKey:
    """Take a key out of cooldown and clear its failure count."""


@attrs.frozen
class AcquireModel:
    """Ask the HealthActor to let one probe through a model whose cooldown ended."""

    model: str


@attrs.frozen
class ModelPermit:
    """Answer to AcquireModel: ``reason`` is None when the probe is granted."""

    reason: str | None


@attrs.frozen
class ModelOutcome:
    """Tell the HealthActor how a call on a model ended."""

    model: str
    verdict: Verdict
    failure: Failure | None = attrs.field(default=None, repr=_failure_repr)


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
    started: float


@attrs.frozen
class Failed:
    """A ChainActor's answer when no attempt committed; ``error`` is the error to raise."""

    request_id: int
    error: BaseException


@attrs.frozen
class ActorCrashed:
    """Tell the supervisor that an actor's handler raised unexpectedly."""

    name: str
    error: str
