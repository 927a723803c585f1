"""HealthActor: the only writer of the per-model health table."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._core._classify import Failure
from .._core._config import CooldownConfig
from .._core._observe import Cause, ModelChange
from .._core._policy import (
    HEALTHY,
    MODEL_KINDS,
    ModelRow,
    model_failure,
    model_gate,
    model_grant,
    model_release,
    model_success,
    model_suspect,
    model_view,
)
from .._core._snapshot import _plain
from ._base import Cell, Context, SwitchoverActor
from .messages import AcquireModel, ModelOutcome, ModelPermit, ResetModel, SuspectModel

HealthTable = Mapping[str, ModelRow]


class HealthActor(SwitchoverActor):
    """Owns every model's row; publishes the whole table (immutable) after each change."""

    kind = "health"

    def __init__(
        self, cell: Cell, context: Context, *, cooldown: CooldownConfig, lease: float
    ) -> None:
        super().__init__(cell, context)
        self._cooldown = cooldown
        self._lease = lease
        self.table: dict[str, ModelRow] = dict(cell.state)

    def _set(
        self, model: str, row: ModelRow, now: float, cause: Cause, failure: Failure | None = None
    ) -> None:
        # A model gets a row at its first failure and keeps it (healthy again) after, so
        # the table grows only with models that ever failed.
        old = self.table.get(model, HEALTHY)
        if old == row:
            return
        self.table[model] = row
        self.publish(MappingProxyType(dict(self.table)))
        if self.observer is not None and (row.state, row.until) != (old.state, old.until):
            self.observer.model_changed(
                ModelChange(
                    model=model,
                    state=row.state,
                    until=row.until,
                    before=now,
                    after=self.clock.now(),
                    cause=cause,
                    kind=None if failure is None else failure.kind,
                )
            )

    def handle(self, message: Any) -> Any:
        now = self.clock.now()
        if isinstance(message, ModelOutcome):
            row = self.table.get(message.model, HEALTHY)
            if message.verdict == "ok":
                cause: Cause = "probe" if message.probe else "success"
                self._set(message.model, model_success(row, now, prober=message.probe), now, cause)
            elif (
                message.verdict == "error"
                and message.failure is not None
                and message.failure.kind in MODEL_KINDS
            ):
                row = model_failure(row, message.failure, now, self._cooldown, prober=message.probe)
                self._set(message.model, row, now, "failure", message.failure)
            elif message.probe:
                self._set(message.model, model_release(row), now, "release")
            # Anything else is a non-prober's outcome that says nothing about the model.
            return None
        if isinstance(message, AcquireModel):
            before = self.table.get(message.model, HEALTHY)
            lease = self._lease if message.lease_until is None else message.lease_until - now
            row, reason = model_grant(before, now, max(0.0, lease), holder=message.holder)
            self._set(message.model, row, now, "grant")
            # A model that is healthy again needs no probe: the caller holds nothing.
            probe = reason is None and model_gate(before, now) == "expired"
            return ModelPermit(reason=reason, probe=probe)
        if isinstance(message, SuspectModel):
            suspect = model_suspect(
                self.table.get(message.model, HEALTHY),
                message.failure,
                now,
                max(0.0, message.lease_until - now),
                holder=message.holder,
            )
            if suspect is None:
                return ModelPermit(reason="not healthy")
            self._set(message.model, suspect, now, "suspect", message.failure)
            return ModelPermit(reason=None, probe=True)
        if isinstance(message, ResetModel):
            models = list(self.table) if message.model is None else [message.model]
            known = [model for model in models if model in self.table]
            for model in known:
                self._set(model, HEALTHY, now, "reset")
            return bool(known)
        raise TypeError(f"HealthActor cannot handle {type(message).__name__}")


def table_view(table: HealthTable, now: float) -> Mapping[str, Any]:
    return {"models": [_plain(model_view(model, row, now)) for model, row in sorted(table.items())]}
