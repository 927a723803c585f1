"""ProfileActor: one (provider, key) pair's cooldown, failure count and counters."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from .._core._classify import Failure
from .._core._config import CooldownConfig
from .._core._observe import Cause, KeyChange
from .._core._policy import (
    KeyState,
    key_failure,
    key_gate,
    key_grant,
    key_jitter,
    key_release,
    key_reset,
    key_success,
)
from .._core._redact import fingerprint
from ._base import Cell, Context, SwitchoverActor
from .messages import AcquireKey, KeyOutcome, KeyPermit, ResetKey


class ProfileActor(SwitchoverActor):
    """Owns one key's state. Never does I/O, never asks another actor."""

    kind = "profile"

    def __init__(
        self,
        cell: Cell,
        context: Context,
        *,
        provider: str,
        profile: str,
        key: str,
        cooldown: CooldownConfig,
        lease: float,
        rng: random.Random,
    ) -> None:
        super().__init__(cell, context)
        self.provider = provider
        self.profile = profile
        self._cooldown = cooldown
        self._lease = lease
        self._rng = rng
        self.state: KeyState = cell.state

    def __repr__(self) -> str:
        return f"ProfileActor({self.provider}/{self.profile})"

    def _set(
        self, state: KeyState, now: float, cause: Cause, failure: Failure | None = None
    ) -> None:
        old, self.state = self.state, state
        self.publish(state)
        if self.observer is not None and state.cooldown_until != old.cooldown_until:
            self.observer.key_changed(
                KeyChange(
                    provider=self.provider,
                    profile=self.profile,
                    cooldown_until=state.cooldown_until,
                    before=now,
                    after=self.clock.now(),
                    cause=cause,
                    kind=None if failure is None else failure.kind,
                    retry_after=None if failure is None else failure.retry_after,
                )
            )

    def handle(self, message: Any) -> Any:
        now = self.clock.now()
        if isinstance(message, KeyOutcome):
            if message.verdict == "ok":
                self._set(key_success(self.state), now, "success")
            elif message.verdict == "error" and message.failure is not None:
                self._set(
                    key_failure(
                        self.state, message.failure, now, self._cooldown, key_jitter(self._rng)
                    ),
                    now,
                    "failure",
                    message.failure,
                )
            else:
                self._set(key_release(self.state), now, "release")
            return None
        if isinstance(message, AcquireKey):
            lease = self._lease if message.lease_until is None else message.lease_until - now
            state, granted = key_grant(self.state, now, max(0.0, lease))
            self._set(state, now, "grant")
            if granted:
                return KeyPermit(granted=True)
            reason = "key cooling" if key_gate(state, now) == "cooling" else "key probe in flight"
            return KeyPermit(granted=False, reason=reason)
        if isinstance(message, ResetKey):
            self._set(key_reset(self.state), now, "reset")
            return True
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
    remaining = None
    if state.cooldown_until is not None:
        remaining = round(max(0.0, state.cooldown_until - now), 3)
    return {
        "provider": provider,
        "profile": profile,
        "key": key_fingerprint,
        "cooldown_remaining": remaining,
        "consecutive_failures": state.failures,
        "last_error_kind": None if state.last_kind is None else str(state.last_kind),
        "last_error": state.last_error,
        "calls": state.calls,
        "successes": state.successes,
        "failures": state.errors,
    }
