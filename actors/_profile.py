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
from ._base import Context, SwitchoverActor
from ._cell import Cell
from .messages import AcquireKey, Granted, KeyFailed, KeyReleased, KeySucceeded, Refused, ResetKey


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
        if isinstance(message, KeySucceeded):
            self._set(key_success(self.state), now, "success")
            return None
        if isinstance(message, KeyFailed):
            jitter = key_jitter(self._rng)
            state = key_failure(self.state, message.failure, now, self._cooldown, jitter)
            self._set(state, now, "failure", message.failure)
            return None
        if isinstance(message, KeyReleased):
            self._set(key_release(self.state), now, "release")
            return None
        if isinstance(message, AcquireKey):
            probe = key_gate(self.state, now) == "expired"
            state, granted = key_grant(self.state, now, max(0.0, message.lease_until - now))
            self._set(state, now, "grant")
            if granted:
                return Granted(probe=probe)
            reason = "key cooling" if key_gate(state, now) == "cooling" else "key probe in flight"
            return Refused(reason)
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
