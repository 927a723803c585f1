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
from ._base import Context, SwitchoverActor
from ._cell import Cell
from ._directory import HealthTable
from .messages import (
    AcquireModel,
    Granted,
    ModelFailed,
    ModelReleased,
    ModelSucceeded,
    Refused,
    ResetModel,
    SuspectModel,
)


class HealthActor(SwitchoverActor[HealthTable]):
    """Owns every model's row; publishes the whole table (immutable) after each change."""

    kind = "health"

    def __init__(
        self, cell: Cell[HealthTable], context: Context, *, cooldown: CooldownConfig
    ) -> None:
        super().__init__(cell, context)
        self._cooldown = cooldown
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
        if isinstance(message, ModelSucceeded):
            row = self.table.get(message.model, HEALTHY)
            cause: Cause = "probe" if message.probe else "success"
            self._set(message.model, model_success(row, now, prober=message.probe), now, cause)
            return None
        if isinstance(message, ModelFailed):
            row = self.table.get(message.model, HEALTHY)
            row = model_failure(row, message.failure, now, self._cooldown, prober=message.probe)
            self._set(message.model, row, now, "failure", message.failure)
            return None
        if isinstance(message, ModelReleased):
            row = model_release(self.table.get(message.model, HEALTHY))
            self._set(message.model, row, now, "release")
            return None
        if isinstance(message, AcquireModel):
            before = self.table.get(message.model, HEALTHY)
            lease = max(0.0, message.lease_until - now)
            row, reason = model_grant(before, now, lease, holder=message.holder)
            self._set(message.model, row, now, "grant")
            if reason is not None:
                return Refused(reason)
            # A model that is healthy again needs no probe: the caller holds nothing.
            return Granted(probe=model_gate(before, now) == "expired")
        if isinstance(message, SuspectModel):
            suspect = model_suspect(
                self.table.get(message.model, HEALTHY),
                message.failure,
                now,
                max(0.0, message.lease_until - now),
                holder=message.holder,
            )
            if suspect is None:
                return Refused("not healthy")
            self._set(message.model, suspect, now, "suspect", message.failure)
            return Granted(probe=True)
        if isinstance(message, ResetModel):
            models = list(self.table) if message.model is None else [message.model]
            known = [model for model in models if model in self.table]
            for model in known:
                self._set(model, HEALTHY, now, "reset")
            return bool(known)
        raise TypeError(f"HealthActor cannot handle {type(message).__name__}")


def table_view(table: HealthTable, now: float) -> Mapping[str, Any]:
    return {"models": [_plain(model_view(model, row, now)) for model, row in sorted(table.items())]}
