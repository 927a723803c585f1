"""What the chain does after a failed call: DESIGN's classification table as one pure function.

The walk (``actors/_chain.py``) says where it stands (:class:`Standing`), calls :func:`decide`
with the classified failure and carries the typed decision out; nothing here sleeps, asks or
tells. ``docs/chain-decisions.md`` shows the table this function implements, row by row as
``tests/core/test_decide.py`` tests it.
"""

from __future__ import annotations

import attrs

from ._classify import Failure
from ._config import RetryConfig
from ._policy import KEY_KINDS
from ._vocab import ErrorKind

#: Kinds that reject the request: no model can take it as it is.
REJECTING_KINDS = frozenset(
    {ErrorKind.OUTPUT_LIMIT, ErrorKind.CONTEXT_EXCEEDED, ErrorKind.BAD_REQUEST}
)


@attrs.frozen
class Standing:
    """Where the walk stands when a call failed.

    ``last_entry``: no chain entry follows this one. ``recovering``: the walk was let through
    this model as its single probe after a cooldown. ``holds_probe``: the walk holds the
    model's probe now (its recovery probe, or probation it started). ``retries``: in-place
    retries already made on this key. ``max_tokens_set``: the caller set ``max_tokens``;
    ``max_tokens_dropped``: it was already dropped for this model.
    """

    last_entry: bool
    recovering: bool = False
    holds_probe: bool = False
    retries: int = 0
    max_tokens_set: bool = False
    max_tokens_dropped: bool = False


@attrs.frozen
class RetryInPlace:
    """Sleep ``retry_delay(retry, tries_done)`` and call the same key again."""

    tries_done: int


@attrs.frozen
class DropMaxTokens:
    """Call the same key again at once without ``max_tokens`` (for this model only)."""


@attrs.frozen
class NextProfile:
    """The key is at fault: try the entry's next profile. If none is left, the model hears
    ``failure``."""

    failure: Failure


@attrs.frozen
class NextModel:
    """This chain entry is done: the model hears ``report`` (None: its health is unchanged)."""

    report: Failure | None


@attrs.frozen
class Reject:
    """The request cannot succeed anywhere as it is: raise ``RequestRejected``."""

    kind: ErrorKind
    message: str


@attrs.frozen
class Probation:
    """Ask the health actor to put the healthy model on probation with this request as its
    probe holder, then carry out ``granted`` or ``refused`` by its answer."""

    granted: RetryInPlace
    refused: RetryInPlace | NextModel


Decision = RetryInPlace | DropMaxTokens | NextProfile | NextModel | Reject | Probation


def decide(failure: Failure, standing: Standing, retry: RetryConfig) -> Decision:
    """What to do after ``failure``, a call's classified failure, given where the walk stands."""
    kind = failure.kind
    if kind in KEY_KINDS:
        return NextProfile(failure)
    if kind is ErrorKind.MODEL_MISSING:
        return NextModel(failure)
    if kind is ErrorKind.TRANSIENT and failure.timeout:
        return NextModel(failure)  # a hung target is not retried in place
    if kind is ErrorKind.TRANSIENT and standing.recovering and not standing.last_entry:
        # The probe found it still failing: with somewhere else to go, retrying in place
        # a model known to fail is time thrown away.
        return NextModel(failure)
    if kind in (ErrorKind.TRANSIENT, ErrorKind.UNKNOWN):
        tries_done = standing.retries + 1
        if tries_done >= retry.attempts:
            # Out of tries: a transient failure counts against the model, an unknown one not.
            return NextModel(failure if kind is ErrorKind.TRANSIENT else None)
        again = RetryInPlace(tries_done)
        if kind is ErrorKind.UNKNOWN or standing.holds_probe:
            return again
        # Another request holds the model's probe and will find out; waiting to retry
        # could only be skipped, unless there is nowhere else to go.
        return Probation(granted=again, refused=again if standing.last_entry else NextModel(None))
    if kind is ErrorKind.OUTPUT_LIMIT and not standing.max_tokens_set:
        return NextModel(None)  # the model's own default is too high: not the caller's fault
    if kind is ErrorKind.OUTPUT_LIMIT and not standing.max_tokens_dropped:
        return DropMaxTokens()
    if kind in REJECTING_KINDS:
        return Reject(kind, _rejection(kind, failure))
    return NextModel(None)  # invalid_request: this model cannot take it


def _rejection(kind: ErrorKind, failure: Failure) -> str:
    if kind is ErrorKind.OUTPUT_LIMIT:
        return (
            "the model rejected the output length even after max_tokens was dropped: "
            + failure.message
        )
    if kind is ErrorKind.CONTEXT_EXCEEDED:
        return "the prompt is longer than the model's context window: " + failure.message
    return "the request is malformed: " + failure.message
