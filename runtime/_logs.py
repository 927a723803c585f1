"""Failover log lines: an observer every runtime installs.

On the ``switchover.events`` logger: one INFO line per failover and per key or model state
change, a WARNING when a request's chain is exhausted or a model is disabled. Every line
carries ``extra`` fields for structured handlers (``event`` names the line's kind). Lines
hold config names (provider, profile, model) and error kinds: never a key, never message
content. With the logger disabled each hook costs one ``isEnabledFor`` check.
"""

from __future__ import annotations

import logging
from typing import Any

from ._core._observe import (
    AttemptBegan,
    AttemptRecord,
    KeyChange,
    ModelChange,
    Observer,
    RequestClosed,
    RequestOpened,
)
from ._core._redact import Redactor
from ._core._vocab import HealthState
from ._core._walks import Step, Walks

log = logging.getLogger("switchover.events")

_HEALTHY_AGAIN = {
    "probe": "after probe",
    "commit": "when its probe began answering",
    "success": "after a call succeeded",
    "reset": "after reset",
    "forgotten": "(its row left the health table)",
    "shared": "(another process's news, Config.shared)",
}


def _seconds(value: float) -> str:
    """``30s``, ``2.5s``, ``0.25s``: short, never ``30.000s``."""
    return f"{value:.3g}s"


class FailoverLog(Observer):
    """Log lines for failovers, state changes and exhausted chains (``switchover.events``).

    Args:
        redact: its ``known`` removes configured keys from names a caller chose (model
            strings); the lines hold names and kinds only, never free text.
        logger: where the lines go (default: ``switchover.events``).
    """

    def __init__(self, redact: Redactor, logger: logging.Logger = log) -> None:
        self._known = redact.known
        self._log = logger
        self._walks = Walks()

    def _emit(self, level: int, message: str, event: str, **fields: Any) -> None:
        self._log.log(
            level,
            "%s",
            self._known(message),
            extra={"event": event, **{name: self._plain(value) for name, value in fields.items()}},
        )

    def _plain(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._known(value)
        if isinstance(value, list):
            return [self._plain(item) for item in value]
        return value

    def request_opened(self, event: RequestOpened) -> None:
        if self._log.isEnabledFor(logging.INFO):
            self._walks.opened(event)

    def attempt_began(self, event: AttemptBegan) -> None:
        if self._log.isEnabledFor(logging.INFO):
            self._failover(self._walks.began(event))

    def attempt_ended(self, event: AttemptRecord) -> None:
        if self._log.isEnabledFor(logging.INFO):
            self._failover(self._walks.ended(event))

    def _failover(self, step: Step | None) -> None:
        if step is None or step.failover_from is None:
            return
        self._emit(
            logging.INFO,
            f"request {step.request_id} failed over {step.failover_from} -> {step.model}"
            f" ({step.because})",
            "failover",
            request_id=step.request_id,
            from_model=step.failover_from,
            to_model=step.model,
            because=step.because,
            position=step.position,
        )

    def request_closed(self, event: RequestClosed) -> None:
        walk = self._walks.closed(event)  # always: the walk may predate a level change
        if event.outcome != "exhausted" or not self._log.isEnabledFor(logging.WARNING):
            return
        tried = (
            ""
            if walk is None
            else (f" after {walk.calls} calls and {walk.skips} skips ({' > '.join(walk.chain)})")
        )
        wait = "" if event.retry_after is None else (f"; retry after {_seconds(event.retry_after)}")
        self._emit(
            logging.WARNING,
            f"request {event.request_id}: chain exhausted{tried}{wait}",
            "exhausted",
            request_id=event.request_id,
            chain=None if walk is None else list(walk.chain),
            retry_after=event.retry_after,
        )

    def key_changed(self, event: KeyChange) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        key = f"{event.provider}/{event.profile}"
        fields: dict[str, Any] = {
            "provider": event.provider,
            "profile": event.profile,
            "cause": event.cause,
            "kind": None if event.kind is None else str(event.kind),
        }
        if event.cooldown_until is None:
            why = "" if event.cause is None else f" after {event.cause}"
            self._emit(logging.INFO, f"key {key} usable again{why}", "key_ready", **fields)
            return
        seconds = max(0.0, event.cooldown_until - event.after)
        hint = "" if event.retry_after is None else f" (retry-after {event.retry_after:g})"
        self._emit(
            logging.INFO,
            f"key {key} cooling {_seconds(seconds)}: {event.kind or event.cause}{hint}",
            "key_cooling",
            cooldown_seconds=round(seconds, 3),
            retry_after=event.retry_after,
            **fields,
        )

    def model_changed(self, event: ModelChange) -> None:
        level = logging.WARNING if event.state is HealthState.DISABLED else logging.INFO
        if not self._log.isEnabledFor(level):
            return
        model = event.model
        seconds = None if event.until is None else max(0.0, event.until - event.after)
        if event.state is HealthState.HEALTHY:
            message = f"model {model} healthy again {_HEALTHY_AGAIN.get(event.cause or '', '')}"
        elif event.state is HealthState.PROBING:
            message = (
                f"model {model} on probation after {event.kind}: one request retries it"
                if event.cause == "suspect"
                else f"model {model} probing: its cooldown is over, one request may call it"
            )
        else:
            length = "" if seconds is None else f" {_seconds(seconds)}"
            why = event.kind or ("its probe ended unanswered" if event.cause == "release" else "")
            message = f"model {model} {event.state}{length}: {why}"
        self._emit(
            level,
            message.rstrip(": "),
            "model_state",
            model=model,
            state=str(event.state),
            cause=event.cause,
            kind=None if event.kind is None else str(event.kind),
            cooldown_seconds=None if seconds is None else round(seconds, 3),
        )
