"""Cooldown, health and retry policies: frozen states and pure transition functions.

The actors hold the current value and call these functions; tests drive them without
threads. Times are on the injected clock's scale; jitter is passed in, never drawn here.
"""

from __future__ import annotations

import random
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


@attrs.frozen
class KeyState:
    """One key's cooldown and counters. ``failures`` survives cooldown expiry."""

    cooldown_until: float | None = None
    failures: int = 0
    probe_until: float | None = None
    last_kind: ErrorKind | None = None
    last_error: str | None = None
    calls: int = 0
    successes: int = 0
    errors: int = 0


def key_gate(state: KeyState, now: float) -> Gate:
    """Whether a key may be called without asking its actor."""
    if state.cooldown_until is None:
        return "ready"
    return "cooling" if now < state.cooldown_until else "expired"


def key_grant(state: KeyState, now: float, lease: float) -> tuple[KeyState, bool]:
    """Take a key whose cooldown ended: exactly one caller gets it until the lease runs out."""
    gate = key_gate(state, now)
    if gate == "ready":
        return state, True
    if gate == "cooling" or (state.probe_until is not None and now < state.probe_until):
        return state, False
    return attrs.evolve(state, probe_until=now + lease), True


def key_cooldown(cfg: CooldownConfig, failures: int, failure: Failure, jitter: float) -> float:
    """Seconds of cooldown after the ``failures``-th consecutive key failure."""
    if failure.kind is ErrorKind.BALANCE:
        return cfg.profile_max
    grown: float = cfg.profile_min * 2.0 ** min(failures - 1, _MAX_DOUBLINGS) * jitter
    return min(cfg.profile_max, max(cfg.profile_min, grown, failure.retry_after or 0.0))


def key_success(state: KeyState) -> KeyState:
    return KeyState(
        calls=state.calls + 1,
        successes=state.successes + 1,
        errors=state.errors,
        last_kind=state.last_kind,
        last_error=state.last_error,
    )


def key_failure(
    state: KeyState, failure: Failure, now: float, cfg: CooldownConfig, jitter: float
) -> KeyState:
    """Record a failed call; key kinds cool the key, never shortening a cooldown."""
    state = attrs.evolve(
        state,
        calls=state.calls + 1,
        errors=state.errors + 1,
        last_kind=failure.kind,
        last_error=failure.message,
        probe_until=None,
    )
    if failure.kind not in KEY_KINDS:
        # Not the key's fault: a key whose cooldown already ended is back in service.
        if state.cooldown_until is not None and now >= state.cooldown_until:
            state = attrs.evolve(state, cooldown_until=None)
        return state
    failures = state.failures + 1
    until = now + key_cooldown(cfg, failures, failure, jitter)
    if state.cooldown_until is not None:
        until = max(until, state.cooldown_until)
    return attrs.evolve(state, failures=failures, cooldown_until=until)


def key_release(state: KeyState) -> KeyState:
    """A call that ended neither in success nor failure (closed early)."""
    return attrs.evolve(state, calls=state.calls + 1, probe_until=None)


def key_reset(state: KeyState) -> KeyState:
    """Operator reset: out of cooldown, failure count cleared, counters kept."""
    return KeyState(calls=state.calls, successes=state.successes, errors=state.errors)


# --- model health ---------------------------------------------------------------------------


@attrs.frozen
class ModelRow:
    """One model's health. ``until`` ends a cooling period or, when disabled, the wait
    before the next allowed probe. ``kind``/``count`` is the current run of one kind."""

    state: HealthState = HealthState.HEALTHY
    until: float | None = None
    kind: ErrorKind | None = None
    count: int = 0
    last_error: str | None = None
    reason: str | None = None
    probe_until: float | None = None
    #: The request holding the single probe (None: unknown or nobody).
    probe_holder: int | None = None


HEALTHY = ModelRow()


def model_gate(row: ModelRow, now: float) -> Gate:
    if row.state is HealthState.HEALTHY:
        return "ready"
    assert row.until is not None
    return "cooling" if now < row.until else "expired"


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
    if row.probe_until is not None and now < row.probe_until:
        return row, "probe in flight"
    return attrs.evolve(row, probe_until=now + lease, probe_holder=holder), None


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
    )


def model_failure(
    row: ModelRow, failure: Failure, now: float, cfg: CooldownConfig, *, prober: bool = True
) -> ModelRow:
    """Record a failure of a health kind; the count runs per kind.

    A failure reported by anyone but the probe holder (a call that began before the model
    cooled down) keeps the probe lease: the holder is still calling, and a second probe
    must not be let through while it does. A disabled model stays disabled (see below).
    """
    kind = failure.kind
    count = row.count + 1 if kind is row.kind else 1
    lease = None if prober else row.probe_until
    holder = None if prober else row.probe_holder
    if row.state is HealthState.DISABLED and not (
        kind in DISABLING_KINDS and count >= cfg.disable_after
    ):
        # Only a reset or a successful probe lets traffic back to a disabled model: a
        # failed probe of another kind waits a whole interval again; anyone else's
        # failure changes nothing but the last error.
        until = row.until if not prober else now + cfg.disabled_probe_interval
        return attrs.evolve(
            row, until=until, last_error=failure.message, probe_until=lease, probe_holder=holder
        )
    if kind in DISABLING_KINDS and count >= cfg.disable_after:
        return ModelRow(
            state=HealthState.DISABLED,
            until=now + cfg.disabled_probe_interval,
            kind=kind,
            count=count,
            last_error=failure.message,
            reason=f"{kind} failed {count} times in a row",
            probe_until=lease,
            probe_holder=holder,
        )
    base = cfg.model_base[str(kind)]
    seconds = min(
        cfg.model_max, max(base * 2.0 ** min(count - 1, _MAX_DOUBLINGS), failure.retry_after or 0.0)
    )
    until = now + seconds
    if row.state is HealthState.COOLING and row.until is not None:
        until = max(until, row.until)
    return ModelRow(
        state=HealthState.COOLING,
        until=until,
        kind=kind,
        count=count,
        last_error=failure.message,
        probe_until=lease,
        probe_holder=holder,
    )


def model_success(row: ModelRow, now: float, *, prober: bool) -> ModelRow:
    """A call succeeded: the model is healthy. Anyone else's success keeps a live probe
    lease, so that no second probe starts while the holder's call may still be running."""
    if prober or not leased(row, now):
        return HEALTHY
    return ModelRow(probe_until=row.probe_until, probe_holder=row.probe_holder)


def leased(row: ModelRow, now: float) -> bool:
    """Whether a probe of ``row`` may still be running."""
    return row.probe_until is not None and now < row.probe_until


def model_release(row: ModelRow) -> ModelRow:
    """A probe that proved nothing either way: let the next request probe."""
    return attrs.evolve(row, probe_until=None, probe_holder=None)


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
    )
