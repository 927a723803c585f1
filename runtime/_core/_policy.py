"""Cooldown, health and retry policies: frozen states and pure transition functions.

The actors hold the current value and call these functions; tests drive them without
threads. Times are on the injected clock's scale; jitter is passed in, never drawn here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import attrs

from ._classify import Failure
from ._config import CooldownConfig, RetryConfig
from ._types import ModelHealth
from ._vocab import ErrorKind, HealthState

#: Kinds that put a key (profile) into cooldown.
KEY_KINDS = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.AUTH, ErrorKind.BALANCE})
#: Kinds that cool a model down when they are recorded against it.
MODEL_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMIT,
        ErrorKind.TRANSIENT,
        ErrorKind.AUTH,
        ErrorKind.BALANCE,
        ErrorKind.MODEL_MISSING,
    }
)
#: Kinds that disable a model after ``disable_after`` in a row.
DISABLING_KINDS = frozenset({ErrorKind.AUTH, ErrorKind.BALANCE, ErrorKind.MODEL_MISSING})
#: Largest exponent used for doubling, so 2**n never overflows a float.
_MAX_DOUBLINGS = 60

Gate = Literal["ready", "cooling", "expired"]


def retry_delay(retry: RetryConfig, tries_done: int, rng: random.Random) -> float:
    """Full-jitter sleep before in-place try number ``tries_done + 1``."""
    ceiling = min(retry.max_delay, retry.min_delay * 2 ** min(tries_done - 1, _MAX_DOUBLINGS))
    return rng.uniform(0.0, ceiling)


def key_jitter(rng: random.Random) -> float:
    """The ±10 % factor applied to a key's cooldown."""
    return 1.0 + rng.uniform(-0.1, 0.1)


# --- key profiles ---------------------------------------------------------------------------
#
# Evidence is ordered by when calls began. Every outcome carries ``began_at``, the time its
# call's gates were read; every cooldown (and every model row, below) keeps ``changed_at``,
# the time it last cooled or healed. An outcome of a call that began before that change is
# old news: it was in flight when the state changed, so it says nothing the change did not
# already account for. It updates the counters, never the state. A tie is fresh news: a
# reader reads its clock before the state, so a call whose gate read equals the change's
# time may have seen it.
#
# A probe's probation ends when it commits (its first content event): the target is then
# back in service for everyone. Its final outcome, seconds later at the stream's end, is
# still news although the commit changed the state after the probe began: ``trial`` keeps
# when its lease began, so that a probe whose stream fails after commit cools the target
# again (the count kept from before), and one that ends cleanly clears the count.


def _fresh(began_at: float, changed_at: float) -> bool:
    return began_at >= changed_at


def _leased(until: float | None, now: float) -> bool:
    return until is not None and now < until


@attrs.frozen
class Cooldown:
    """One cooldown of a key: the whole key's (auth, balance) or one model's rate limit.

    ``failures`` is the consecutive count: it survives expiry and resets only on success.
    ``probe_until``/``probe_since`` is the lease of the one caller let through once the
    cooldown ended; ``trial`` that lease's start once the probe committed (see above);
    ``changed_at`` is when it last cooled or healed.
    """

    until: float | None = None
    failures: int = 0
    probe_until: float | None = None
    probe_since: float | None = None
    trial: float | None = None
    changed_at: float = -math.inf
    #: Who set it: None for this process, else another process's origin id (shared state).
    origin: str | None = None


CLEAR = Cooldown()


def _limits(value: Mapping[str, Cooldown]) -> Mapping[str, Cooldown]:
    return MappingProxyType(dict(value))


@attrs.frozen
class KeyState:
    """One key's cooldowns and counters.

    ``whole`` cools the key for every model (auth, balance); ``limits`` holds the per-model
    rate-limit cooldowns (rate limits are per key and model at OpenAI and Anthropic).
    """

    whole: Cooldown = CLEAR
    limits: Mapping[str, Cooldown] = attrs.field(factory=dict, converter=_limits)
    last_kind: ErrorKind | None = None
    last_error: str | None = None
    calls: int = 0
    successes: int = 0
    errors: int = 0

    def tracks(self, model: str) -> tuple[Cooldown, Cooldown]:
        """The whole key's cooldown and ``model``'s rate limit."""
        return self.whole, self.limits.get(model, CLEAR)

    def until(self, model: str) -> float | None:
        """When the key may next be called for ``model`` (None: no cooldown set)."""
        ends = [track.until for track in self.tracks(model) if track.until is not None]
        return max(ends) if ends else None

    def _with(self, model: str, whole: Cooldown, limit: Cooldown) -> KeyState:
        # A model's entry stays once it exists (healed, with its ``changed_at``): dropping it
        # would turn the old news of calls still in flight into fresh news.
        limits = dict(self.limits)
        if limit != CLEAR:
            limits[model] = limit
        return attrs.evolve(self, whole=whole, limits=limits)


def key_gate(state: KeyState, model: str, now: float) -> Gate:
    """Whether a key may be called for ``model`` without asking its actor."""
    until = state.until(model)
    if until is None:
        return "ready"
    return "cooling" if now < until else "expired"


def key_grant(state: KeyState, model: str, now: float, lease: float) -> tuple[KeyState, bool]:
    """Take a key whose cooldown for ``model`` ended: exactly one caller gets it until the
    lease runs out (a lease on each cooldown that ended)."""
    gate = key_gate(state, model, now)
    if gate == "ready":
        return state, True
    tracks = state.tracks(model)
    if gate == "cooling" or any(_leased(t.probe_until, now) for t in tracks):
        return state, False
    whole, limit = (
        t if t.until is None else attrs.evolve(t, probe_until=now + lease, probe_since=now)
        for t in tracks
    )
    return state._with(model, whole, limit), True


def key_cooldown(cfg: CooldownConfig, failures: int, failure: Failure, jitter: float) -> float:
    """Seconds of cooldown after the ``failures``-th consecutive key failure."""
    if failure.kind is ErrorKind.BALANCE:
        return cfg.profile_max
    grown: float = cfg.profile_min * 2.0 ** min(failures - 1, _MAX_DOUBLINGS) * jitter
    return min(cfg.profile_max, max(cfg.profile_min, grown, failure.retry_after or 0.0))


def _news(track: Cooldown, began_at: float) -> bool:
    """Whether an outcome may change the track: fresh, or the committed probe's own."""
    return _fresh(began_at, track.changed_at) or (
        track.trial is not None and began_at >= track.trial
    )


def _unlease(track: Cooldown, began_at: float) -> Cooldown:
    """An outcome of the lease holder's call ends the lease (an older call's does not)."""
    since = track.probe_since if track.trial is None else track.trial
    if since is None or began_at < since:
        return track
    return attrs.evolve(track, probe_until=None, probe_since=None, trial=None)


def _heal(track: Cooldown, began_at: float, now: float) -> Cooldown:
    if not _news(track, began_at):
        return track
    if track.until is None:
        return attrs.evolve(track, failures=0, trial=None)
    return Cooldown(changed_at=now)


def _commit(track: Cooldown, began_at: float, now: float) -> Cooldown:
    """The lease holder's call committed: the cooldown is over, its count kept until the
    call's own outcome (a trial)."""
    if track.until is None or now < track.until or track.probe_since is None:
        return track
    if began_at < track.probe_since:
        return track  # the lease moved on to another caller
    return Cooldown(failures=track.failures, trial=track.probe_since, changed_at=now)


def _cool(
    track: Cooldown,
    failure: Failure,
    began_at: float,
    now: float,
    *,
    cfg: CooldownConfig,
    jitter: float,
) -> Cooldown:
    if not _news(track, began_at):
        return track  # the same episode: it was in flight when the key cooled
    failures = track.failures + 1
    until = now + key_cooldown(cfg, failures, failure, jitter)
    if track.until is not None:
        until = max(until, track.until)
    return Cooldown(until=until, failures=failures, changed_at=now)


def _back_in_service(track: Cooldown, began_at: float, now: float) -> Cooldown:
    """A call that got past the key and failed for another reason proves that a key whose
    cooldown ended is back in service."""
    if not _news(track, began_at):
        return track
    track = _unlease(track, began_at)
    if track.until is not None and now >= track.until:
        return attrs.evolve(track, until=None, changed_at=now)
    return track


def key_success(state: KeyState, model: str, began_at: float, now: float) -> KeyState:
    """A call on ``model`` succeeded: the whole key and that model's rate limit heal, unless
    they changed after the call began. Other models' rate limits are untouched."""
    whole, limit = (_heal(t, began_at, now) for t in state.tracks(model))
    state = state._with(model, whole, limit)
    return attrs.evolve(state, calls=state.calls + 1, successes=state.successes + 1)


def key_commit(state: KeyState, model: str, began_at: float, now: float) -> KeyState:
    """The probe of a key whose cooldown for ``model`` ended committed: the key is back in
    service for that model; the probe's final outcome still counts (a trial)."""
    whole, limit = (_commit(t, began_at, now) for t in state.tracks(model))
    return state._with(model, whole, limit)


def key_failure(
    state: KeyState,
    model: str,
    failure: Failure,
    began_at: float,
    now: float,
    *,
    cfg: CooldownConfig,
    jitter: float,
) -> KeyState:
    """Record a failed call on ``model``: a rate limit cools the key for that model, auth and
    balance cool the whole key; never shortening a cooldown, never twice for one episode."""
    whole, limit = state.tracks(model)
    if failure.kind is ErrorKind.RATE_LIMIT:
        whole = _back_in_service(whole, began_at, now)
        limit = _cool(limit, failure, began_at, now, cfg=cfg, jitter=jitter)
    elif failure.kind in KEY_KINDS:
        whole = _cool(whole, failure, began_at, now, cfg=cfg, jitter=jitter)
        limit = _back_in_service(limit, began_at, now)
    else:
        whole, limit = (_back_in_service(t, began_at, now) for t in (whole, limit))
    state = state._with(model, whole, limit)
    return attrs.evolve(
        state,
        calls=state.calls + 1,
        errors=state.errors + 1,
        last_kind=failure.kind,
        last_error=failure.message,
    )


def key_release(state: KeyState, model: str, began_at: float) -> KeyState:
    """A call that ended neither in success nor failure (closed early, or a permit given
    back unused): the holder's lease ends."""
    whole, limit = (_unlease(t, began_at) for t in state.tracks(model))
    state = state._with(model, whole, limit)
    return attrs.evolve(state, calls=state.calls + 1)


def key_reset(state: KeyState) -> KeyState:
    """Operator reset: out of every cooldown, failure counts cleared, counters kept. A reset
    forgets, it does not distrust: outcomes of calls in flight count as fresh."""
    return KeyState(
        calls=state.calls,
        successes=state.successes,
        errors=state.errors,
    )


# --- model health ---------------------------------------------------------------------------


@attrs.frozen
class ModelRow:
    """One model's health. ``until`` ends a cooling period or, when disabled, the wait
    before the next allowed probe. ``kind``/``count`` is the current run of one kind.
    ``changed_at`` is when the state last changed (see "evidence" above); ``trial`` is
    when the lease of the probe whose commit made it healthy began, until its outcome."""

    state: HealthState = HealthState.HEALTHY
    until: float | None = None
    kind: ErrorKind | None = None
    count: int = 0
    last_error: str | None = None
    reason: str | None = None
    probe_until: float | None = None
    #: The request holding the single probe (None: unknown or nobody), and since when.
    probe_holder: int | None = None
    probe_since: float | None = None
    trial: float | None = None
    changed_at: float = -math.inf
    #: As for :class:`Cooldown`: who set the current state.
    origin: str | None = None


HEALTHY = ModelRow()


def model_gate(row: ModelRow, now: float) -> Gate:
    if row.state is HealthState.HEALTHY:
        return "ready"
    assert row.until is not None
    return "cooling" if now < row.until else "expired"


def model_needs_news(row: ModelRow) -> bool:
    """Whether a success that is not the probe's still has something to tell the row (a
    healthy row counts failures only after a probe's commit, until a clean end)."""
    return row.state is not HealthState.HEALTHY or row.probe_until is not None or row.count > 0


def model_grant(
    row: ModelRow, now: float, lease: float, *, holder: int | None = None
) -> tuple[ModelRow, str | None]:
    """Let one probe through a model whose cooldown (or disabled wait) ended.

    Returns the new row and None when granted, or a reason to skip.
    """
    gate = model_gate(row, now)
    if gate == "ready":
        return row, None
    if gate == "cooling":
        return row, str(row.state)
    if _leased(row.probe_until, now):
        return row, "probe in flight"
    return attrs.evolve(row, probe_until=now + lease, probe_holder=holder, probe_since=now), None


def model_suspect(
    row: ModelRow, failure: Failure, now: float, lease: float, *, holder: int | None = None
) -> ModelRow | None:
    """Put a healthy model on probation after a transient failure: the request that saw it
    holds the single probe while it retries in place, and other requests skip the model
    meanwhile (a request with nothing after it still calls it). None: not healthy, so
    there is nothing to start (or an earlier probe holder's call may still be running)."""
    if row.state is not HealthState.HEALTHY or leased(row, now):
        return None
    return attrs.evolve(
        row,
        state=HealthState.PROBING,
        until=now,
        last_error=failure.message,
        probe_until=now + lease,
        probe_holder=holder,
        probe_since=now,
        trial=None,
        changed_at=now,
    )


def _holds(row: ModelRow, began_at: float, prober: bool) -> bool:
    """Whether an outcome is the current probe holder's (or the committed trial's): a probe
    whose lease ran out and moved on to another request speaks for itself only."""
    since = row.probe_since if row.trial is None else row.trial
    return prober and (since is None or began_at >= since)


def _model_news(row: ModelRow, began_at: float, prober: bool) -> bool:
    """Whether an outcome may change the row: fresh, or the committed probe's own."""
    return _fresh(began_at, row.changed_at) or (
        row.trial is not None and _holds(row, began_at, prober)
    )


def _old_news(row: ModelRow, began_at: float, prober: bool) -> ModelRow:
    """An outcome that is old news changes nothing, except that the probe holder's own ends
    its lease: its call is over, and the next probe must not wait for the lease to run out."""
    return model_release(row, began_at) if prober else row


def model_commit(row: ModelRow, began_at: float, now: float) -> ModelRow:
    """The probe holder's call committed: the model is healthy again for everyone, its
    failure count kept until the probe's own outcome (a trial, see "evidence" above)."""
    if row.state is HealthState.HEALTHY or not _holds(row, began_at, True):
        return row
    if row.probe_since is None:
        return row  # no lease: nothing was let through as a probe
    if not _fresh(began_at, row.changed_at):
        return row  # another call failed it after the probe began: old news
    return attrs.evolve(
        row,
        state=HealthState.HEALTHY,
        until=None,
        reason=None,
        probe_until=None,
        probe_holder=None,
        probe_since=None,
        trial=row.probe_since,
        changed_at=now,
        origin=None,
    )


def model_failure(
    row: ModelRow,
    failure: Failure,
    began_at: float,
    now: float,
    cfg: CooldownConfig,
    *,
    prober: bool = True,
) -> ModelRow:
    """Record a failure of a health kind; the count runs per kind.

    A failure of a call that began before the row last changed is old news and changes
    nothing: a burst of calls in flight is one failure episode, and a model that recovered
    through a probe is not cooled again by calls that began before. A failure reported by
    anyone but the probe holder keeps the probe lease: the holder is still calling, and a
    second probe must not be let through while it does. A disabled model stays disabled.
    """
    if not _model_news(row, began_at, prober):
        return _old_news(row, began_at, prober)
    prober = _holds(row, began_at, prober)
    kind = failure.kind
    count = row.count + 1 if kind is row.kind else 1
    lease = (None, None, None) if prober else (row.probe_until, row.probe_holder, row.probe_since)
    if row.state is HealthState.DISABLED and not (
        kind in DISABLING_KINDS and count >= cfg.disable_after
    ):
        # Only a reset or a successful probe lets traffic back to a disabled model: a
        # failed probe of another kind waits a whole interval again; anyone else's
        # failure changes nothing but the last error.
        if not prober:
            return attrs.evolve(row, last_error=failure.message)
        return attrs.evolve(
            row,
            until=now + cfg.disabled_probe_interval,
            last_error=failure.message,
            probe_until=None,
            probe_holder=None,
            probe_since=None,
            changed_at=now,
        )
    if kind in DISABLING_KINDS and count >= cfg.disable_after:
        state, until = HealthState.DISABLED, now + cfg.disabled_probe_interval
        reason: str | None = f"{kind} failed {count} times in a row"
    else:
        base = cfg.model_base[str(kind)]
        seconds = min(
            cfg.model_max,
            max(base * 2.0 ** min(count - 1, _MAX_DOUBLINGS), failure.retry_after or 0.0),
        )
        state, until, reason = HealthState.COOLING, now + seconds, None
        if row.state is HealthState.COOLING and row.until is not None:
            until = max(until, row.until)
    return ModelRow(
        state=state,
        until=until,
        kind=kind,
        count=count,
        last_error=failure.message,
        reason=reason,
        probe_until=lease[0],
        probe_holder=lease[1],
        probe_since=lease[2],
        changed_at=now,
    )


def model_success(row: ModelRow, began_at: float, now: float, *, prober: bool) -> ModelRow:
    """A call succeeded: the model is healthy, unless it changed after the call began (a
    stream that started before a model failed proves nothing about it now). Anyone else's
    success keeps a live probe lease, so that no second probe starts while the holder's
    call may still be running."""
    if not _model_news(row, began_at, prober):
        return _old_news(row, began_at, prober)
    changed_at = row.changed_at if row.state is HealthState.HEALTHY else now
    if _holds(row, began_at, prober) or not _leased(row.probe_until, now):
        return ModelRow(changed_at=changed_at)
    return ModelRow(
        probe_until=row.probe_until,
        probe_holder=row.probe_holder,
        probe_since=row.probe_since,
        changed_at=changed_at,
    )


def model_release(row: ModelRow, began_at: float) -> ModelRow:
    """A probe that proved nothing either way: let the next request probe (unless the
    probe already moved on to another request)."""
    if not _holds(row, began_at, True):
        return row
    return attrs.evolve(row, probe_until=None, probe_holder=None, probe_since=None, trial=None)


def leased(row: ModelRow, now: float) -> bool:
    """Whether a probe of ``row`` may still be running."""
    return _leased(row.probe_until, now)


def model_view(model: str, row: ModelRow, now: float) -> ModelHealth:
    """The public view of a row; a cooling row whose time is up reads ``probing``, as does
    a model on probation (a request is retrying it in place)."""
    state = row.state
    remaining = None if row.until is None else max(0.0, row.until - now)
    if state is HealthState.COOLING and remaining == 0.0:
        state = HealthState.PROBING
    return ModelHealth(
        model=model,
        state=state,
        cooldown_remaining=remaining,
        consecutive_failures=row.count,
        last_error=row.last_error,
        reason=row.reason,
        origin=row.origin,
    )
