"""Messages between switchover's actors. All frozen; none carries an API key.

| message | sender | receiver | answer |
|---|---|---|---|
| RunRequest | facade (``Runtime``) | ChainActor | Committed or Failed |
| AcquireKey | ChainActor | ProfileActor | Granted or Refused |
| KeySucceeded, KeyFailed, KeyReleased | ChainActor, the committed stream | ProfileActor | — |
| KeyCommitted | ChainActor | ProfileActor | — |
| ResetKey | facade | ProfileActor | True |
| AcquireModel, SuspectModel | ChainActor | HealthActor | Granted or Refused |
| ModelSucceeded, ModelFailed, ModelReleased | ChainActor, the committed stream | HealthActor | — |
| ModelCommitted | ChainActor | HealthActor | — |
| ResetModel | facade | HealthActor | whether the model had a row |
| Inspect | facade, ChainActor (as a barrier) | any actor | ActorSnapshot |
| ActorCrashed | a crashed actor's thread | SupervisorActor | — |
| Sweep | the supervisor, restarted | SupervisorActor | — |
| InjectCrash, InjectHold | ``switchover.testing`` | any actor | — |

Which outcome a key and a model hear of a call is decided in one place
(:func:`switchover.actors._report.model_report`). Every outcome carries ``began_at``, when its
call's gates were read: an outcome of a call that began before the target last changed is
old news (docs/evidence.md).
"""

from __future__ import annotations

import threading
from typing import Any

import attrs

from .._core._classify import Failure
from .._core._config import ChainEntry
from .._core._policy import MODEL_KINDS
from .._core._remote import RemoteKey, RemoteModel
from .._core._types import Attempt, Event, Request, ServedBy


def _chain_repr(chain: tuple[ChainEntry, ...]) -> str:
    return " > ".join(entry.key for entry in chain)


def _failure_repr(failure: Failure) -> str:
    # The flight recorder cuts summaries short; lead with what an operator looks for.
    status = "" if failure.status is None else f" {failure.status}"
    return f"{failure.kind}{status}: {failure.message!r}"


@attrs.frozen
class Inspect:
    """Answer with a snapshot of your own state (any actor)."""


@attrs.frozen
class Sync:
    """Ask any actor to answer (None) once it has handled everything queued before this."""


@attrs.frozen
class InjectCrash:
    """Make the handler raise (testing seam: ``switchover.testing.inject_crash``)."""

    reason: str = "injected crash"


@attrs.frozen
class InjectHold:
    """Set ``entered``, then stay in the handler until ``release`` is set (testing seam)."""

    release: threading.Event = attrs.field(eq=False, repr=False)
    entered: threading.Event = attrs.field(factory=threading.Event, eq=False, repr=False)


@attrs.frozen
class AcquireKey:
    """Ask for a key whose cooldown for ``model`` ended, leased until ``lease_until``."""

    model: str
    lease_until: float


@attrs.frozen
class AcquireModel:
    """Ask to probe a model whose cooldown ended, as request ``holder``, until ``lease_until``."""

    model: str
    lease_until: float
    holder: int


@attrs.frozen
class SuspectModel:
    """Ask to put a healthy model on probation after ``failure``, ``holder`` its probe holder."""

    model: str
    failure: Failure = attrs.field(repr=_failure_repr)
    lease_until: float
    holder: int


@attrs.frozen
class Granted:
    """A permit: go ahead; ``probe``: the asker now holds the key's or model's single probe."""

    probe: bool


@attrs.frozen
class Refused:
    """No permit: skip the key or model, for ``reason``."""

    reason: str


@attrs.frozen
class KeySucceeded:
    """A call on the key for ``model``, begun at ``began_at``, streamed to a clean end."""

    model: str
    began_at: float


@attrs.frozen
class KeyFailed:
    """A call on the key for ``model``, begun at ``began_at``, failed with ``failure``."""

    model: str
    failure: Failure = attrs.field(repr=_failure_repr)
    began_at: float


@attrs.frozen
class KeyReleased:
    """A call ended proving nothing (closed early), or a permit went back unused."""

    model: str
    began_at: float


KeyOutcome = KeySucceeded | KeyFailed | KeyReleased


@attrs.frozen
class KeyCommitted:
    """The probe of the key for ``model``, begun at ``began_at``, committed: the key is
    back in service; the call's outcome follows when its stream ends."""

    model: str
    began_at: float


@attrs.frozen
class ResetKey:
    """Take a key out of cooldown and clear its failure count."""


def _health_kind(_: object, __: attrs.Attribute[Failure], failure: Failure) -> None:
    if failure.kind not in MODEL_KINDS:
        raise ValueError(f"a {failure.kind} failure says nothing about a model's health")


@attrs.frozen
class ModelSucceeded:
    """A call on the model succeeded; ``probe``: the probe holder's call."""

    model: str
    probe: bool
    began_at: float


@attrs.frozen
class ModelFailed:
    """A call on the model failed with a health kind; ``probe``: the probe holder's call."""

    model: str
    failure: Failure = attrs.field(repr=_failure_repr, validator=_health_kind)
    probe: bool
    began_at: float


@attrs.frozen
class ModelReleased:
    """The probe holder is done without proving anything: the next request may probe."""

    model: str
    began_at: float


ModelOutcome = ModelSucceeded | ModelFailed | ModelReleased


@attrs.frozen
class ModelCommitted:
    """The probe holder's call on the model, begun at ``began_at``, committed: the model is
    back in service; the call's outcome follows when its stream ends."""

    model: str
    began_at: float


@attrs.frozen
class ResetModel:
    """Make one model (or, with None, every model) healthy; answers whether it had a row."""

    model: str | None


@attrs.frozen
class RemoteKeyState:
    """Another process's key transition (from the shared link), for the owning ProfileActor;
    ``grace`` is ``SharedConfig.probe_grace``."""

    evidence: RemoteKey
    grace: float = attrs.field(repr=False)


@attrs.frozen
class RemoteModelState:
    """Another process's model transition, for the HealthActor; as :class:`RemoteKeyState`."""

    evidence: RemoteModel
    grace: float = attrs.field(repr=False)


@attrs.frozen
class RunRequest:
    """Walk a request's chain until an attempt commits; answered Committed or Failed."""

    request_id: int
    # The prompt stays out of the repr: the flight recorder shows the chain, not the text.
    request: Request = attrs.field(repr=False)
    chain: tuple[ChainEntry, ...] = attrs.field(repr=_chain_repr)
    deadline: float = attrs.field(repr=False)
    cancel: threading.Event = attrs.field(eq=False, repr=False)


@attrs.frozen(eq=False)
class Committed:
    """An attempt committed: its live stream (and its outcome's report) moves to the caller."""

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
    """The walk's answer when no attempt committed: ``error`` is the error to raise."""

    request_id: int
    error: BaseException


@attrs.frozen
class ActorCrashed:
    """Incarnation ``urn`` of actor ``name`` crashed; ``pending``: its queued envelopes."""

    name: str
    error: str
    urn: str
    pending: tuple[Any, ...] = attrs.field(repr=False)


@attrs.frozen
class Sweep:
    """Restart every actor that died while the supervisor was down."""
