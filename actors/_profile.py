"""ProfileActor: one (provider, key) pair's cooldown, failure count and counters."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from .._core._classify import Failure
from .._core._config import CooldownConfig
from .._core._observe import Cause, KeyChange
from .._core._policy import (
    CLEAR,
    Cooldown,
    KeyState,
    key_commit,
    key_failure,
    key_gate,
    key_grant,
    key_jitter,
    key_release,
    key_reset,
    key_success,
)
from .._core._redact import fingerprint
from .._core._remote import key_remote
from ._base import Context, SwitchoverActor
from ._cell import Cell
from .messages import (
    AcquireKey,
    Granted,
    KeyCommitted,
    KeyFailed,
    KeyReleased,
    KeySucceeded,
    Refused,
    RemoteKeyState,
    ResetKey,
)


class ProfileActor(SwitchoverActor[KeyState]):
    """Owns one key's state. Never does I/O, never asks another actor."""

    kind = "profile"

    def __init__(
        self,
        cell: Cell[KeyState],
        context: Context,
        *,
        provider: str,
        profile: str,
        key: str,
        cooldown: CooldownConfig,
        rng: random.Random,
    ) -> None:
        super().__init__(cell, context)
        self.provider = provider
        self.profile = profile
        self._cooldown = cooldown
        self._rng = rng
        self.state = cell.state

    def __repr__(self) -> str:
        return f"ProfileActor({self.provider}/{self.profile})"

    def _set(
        self, state: KeyState, now: float, cause: Cause, failure: Failure | None = None
    ) -> None:
        old, self.state = self.state, state
        self.publish(state)
        if self.observer is None:
            return
        # One change per cooldown that moved: the whole key's (model None) or a model's.
        moved: list[tuple[str | None, Cooldown]] = []
        if state.whole.until != old.whole.until:
            moved.append((None, state.whole))
        for name, limit in state.limits.items():
            if limit.until != old.limits.get(name, CLEAR).until:
                moved.append((name, limit))
        after = self.clock.now()
        for model, track in moved:
            self.observer.key_changed(
                KeyChange(
                    provider=self.provider,
                    profile=self.profile,
                    model=model,
                    cooldown_until=track.until,
                    before=now,
                    after=after,
                    cause=cause,
                    kind=None if failure is None else failure.kind,
                    retry_after=None if failure is None else failure.retry_after,
                    failures=track.failures,
                    # A remote transition names its process; the link publishes only ours.
                    origin=track.origin if cause == "shared" else None,
                )
            )

    def handle(self, message: Any) -> Any:
        now = self.clock.now()
        if isinstance(message, KeySucceeded):
            self._set(key_success(self.state, message.model, message.began_at, now), now, "success")
            return None
        if isinstance(message, KeyFailed):
            state = key_failure(
                self.state,
                message.model,
                message.failure,
                message.began_at,
                now,
                cfg=self._cooldown,
                jitter=key_jitter(self._rng),
            )
            self._set(state, now, "failure", message.failure)
            return None
        if isinstance(message, KeyReleased):
            self._set(key_release(self.state, message.model, message.began_at), now, "release")
            return None
        if isinstance(message, KeyCommitted):
            self._set(key_commit(self.state, message.model, message.began_at, now), now, "commit")
            return None
        if isinstance(message, AcquireKey):
            model = message.model
            probe = key_gate(self.state, model, now) == "expired"
            lease = max(0.0, message.lease_until - now)
            state, granted = key_grant(self.state, model, now, lease)
            self._set(state, now, "grant")
            if granted:
                return Granted(probe=probe)
            cooling = key_gate(state, model, now) == "cooling"
            return Refused("key cooling" if cooling else "key probe in flight")
        if isinstance(message, ResetKey):
            self._set(key_reset(self.state), now, "reset")
            return True
        if isinstance(message, RemoteKeyState):
            merged = key_remote(self.state, message.evidence, now, grace=message.grace)
            self._set(merged, now, "shared")
            return None
        raise TypeError(f"ProfileActor cannot handle {type(message).__name__}")


def key_renderer(
    provider: str, profile: str, key: str
) -> Callable[[KeyState, float], Mapping[str, Any]]:
    """Render a key's state as plain data: never the key itself, only its fingerprint."""
    key_fingerprint = fingerprint(key)

    def render(state: KeyState, now: float) -> Mapping[str, Any]:
        return _key_view(provider, profile, key_fingerprint, state, now)

    return render


def _key_view(
    provider: str, profile: str, key_fingerprint: str, state: KeyState, now: float
) -> Mapping[str, Any]:
    tracks = (state.whole, *state.limits.values())
    return {
        "provider": provider,
        "profile": profile,
        "key": key_fingerprint,
        # The key as a whole reads as its longest cooldown and count (the whole key's or a
        # model's rate limit); ``rate_limits`` breaks the per-model ones out.
        "cooldown_remaining": _remaining(_latest(tracks), now),
        "consecutive_failures": max(t.failures for t in tracks),
        # Who set the whole key's cooldown (None: this process).
        "origin": state.whole.origin,
        "rate_limits": {
            model: {
                "cooldown_remaining": _remaining(limit.until, now),
                "consecutive_failures": limit.failures,
            }
            for model, limit in sorted(state.limits.items())
            if limit.until is not None or limit.failures
        },
        "last_error_kind": None if state.last_kind is None else str(state.last_kind),
        "last_error": state.last_error,
        "calls": state.calls,
        "successes": state.successes,
        "failures": state.errors,
    }


def _remaining(until: float | None, now: float) -> float | None:
    return None if until is None else round(max(0.0, until - now), 3)


def _latest(tracks: tuple[Cooldown, ...]) -> float | None:
    ends = [t.until for t in tracks if t.until is not None]
    return max(ends) if ends else None
