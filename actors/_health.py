"""HealthActor: the only writer of the per-model health table."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from .._core._classify import Failure
from .._core._config import CooldownConfig
from .._core._observe import Cause, ModelChange
from .._core._policy import (
    HEALTHY,
    ModelRow,
    leased,
    model_commit,
    model_failure,
    model_gate,
    model_grant,
    model_release,
    model_success,
    model_suspect,
    model_view,
)
from .._core._remote import model_remote
from .._core._snapshot import _plain
from .._core._vocab import HealthState
from ._base import Context, SwitchoverActor
from ._cell import Cell
from ._directory import HealthTable
from .messages import (
    AcquireModel,
    Granted,
    ModelCommitted,
    ModelFailed,
    ModelReleased,
    ModelSucceeded,
    Refused,
    RemoteModelState,
    ResetModel,
    SuspectModel,
)

#: Most rows kept for models the configuration does not name (callers choose those names,
#: so without a bound a stream of failing made-up models grows the table for ever).
MAX_ROWS = 1000
#: Clock seconds between two sweeps for expired rows.
SWEEP_INTERVAL = 1.0


class HealthActor(SwitchoverActor[HealthTable]):
    """Owns every model's row; publishes the whole table (immutable) after each change.

    Rows of the models the configuration names (``keep``) stay for good. Any other row is
    dropped by a reset; once it has been healthy for longer than a request may run
    (``settle``: no call that began before it healed is still out, so its ``changed_at``
    has nothing left to make old news); or once it has been past its cooldown for longer
    than the longest cooldown (``model_max``: its failure count no longer says anything a
    fresh failure would not). The stalest are evicted beyond :data:`MAX_ROWS`. A row with
    a probe in flight is never dropped (that would let a second probe through).
    """

    kind = "health"

    def __init__(
        self,
        cell: Cell[HealthTable],
        context: Context,
        *,
        cooldown: CooldownConfig,
        settle: float,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(cell, context)
        self._cooldown = cooldown
        self._settle = settle
        self._keep = keep
        self.table: dict[str, ModelRow] = dict(cell.state)
        self._next_sweep = 0.0

    def _set(
        self, model: str, row: ModelRow, now: float, cause: Cause, failure: Failure | None = None
    ) -> None:
        old = self.table.get(model, HEALTHY)
        changed = (row.state, row.until) != (old.state, old.until)
        if changed and cause != "shared" and row.origin is not None:
            row = attrs.evolve(row, origin=None)  # this process changed it
        if old == row:
            return
        # Re-inserted at the end (or dropped): the table's order is the eviction order.
        self.table.pop(model, None)
        if model in self._keep or cause != "reset":  # a reset forgets an unconfigured model
            self.table[model] = row
        self._evict(now)
        self.publish(MappingProxyType(dict(self.table)))
        self._observe(model, old, row, now, cause=cause, failure=failure)

    def _observe(
        self,
        model: str,
        old: ModelRow,
        row: ModelRow,
        now: float,
        *,
        cause: Cause,
        failure: Failure | None = None,
    ) -> None:
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
                    count=row.count,
                    probe_until=row.probe_until,
                    origin=row.origin,
                )
            )

    def _drop(self, models: list[str], now: float) -> None:
        for model in models:
            old = self.table.pop(model)
            self._observe(model, old, HEALTHY, now, cause="forgotten")

    def _evict(self, now: float) -> None:
        """Drop the stalest rows of unconfigured models beyond MAX_ROWS."""
        spare = sum(1 for model in self.table if model not in self._keep) - MAX_ROWS
        if spare > 0:
            stalest = [
                model
                for model, row in self.table.items()
                if model not in self._keep and not leased(row, now)
            ][:spare]
            self._drop(stalest, now)

    def _sweep(self, now: float) -> None:
        """Drop the unconfigured rows that have expired (see the class)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        expired = [
            model
            for model, row in self.table.items()
            if model not in self._keep and _expired(row, now, self._settle, self._cooldown)
        ]
        if expired:
            self._drop(expired, now)
            self.publish(MappingProxyType(dict(self.table)))

    def handle(self, message: Any) -> Any:
        now = self.clock.now()
        self._sweep(now)
        if isinstance(message, ModelSucceeded):
            row = self.table.get(message.model, HEALTHY)
            cause: Cause = "probe" if message.probe else "success"
            row = model_success(row, message.began_at, now, prober=message.probe)
            self._set(message.model, row, now, cause)
            return None
        if isinstance(message, ModelFailed):
            row = self.table.get(message.model, HEALTHY)
            row = model_failure(
                row, message.failure, message.began_at, now, self._cooldown, prober=message.probe
            )
            self._set(message.model, row, now, "failure", message.failure)
            return None
        if isinstance(message, ModelCommitted):
            row = model_commit(self.table.get(message.model, HEALTHY), message.began_at, now)
            self._set(message.model, row, now, "commit")
            return None
        if isinstance(message, ModelReleased):
            row = model_release(self.table.get(message.model, HEALTHY), message.began_at)
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
        if isinstance(message, RemoteModelState):
            target = message.evidence.target
            row = model_remote(
                self.table.get(target, HEALTHY), message.evidence, now, grace=message.grace
            )
            self._set(target, row, now, "shared")
            return None
        if isinstance(message, ResetModel):
            models = list(self.table) if message.model is None else [message.model]
            known = [model for model in models if model in self.table]
            for model in known:
                self._set(model, HEALTHY, now, "reset")
            return bool(known)
        raise TypeError(f"HealthActor cannot handle {type(message).__name__}")


def _expired(row: ModelRow, now: float, settle: float, cooldown: CooldownConfig) -> bool:
    """A row that says nothing a missing one would not: no probe in flight, and healthy for
    longer than any call can run (so no call that began before it healed is still out,
    whose outcome its ``changed_at`` would make old news), or long past its cooldown."""
    if leased(row, now):
        return False
    if row.state is HealthState.HEALTHY:
        return now >= row.changed_at + settle
    return row.until is not None and now >= row.until + cooldown.model_max


def table_view(table: HealthTable, now: float) -> Mapping[str, Any]:
    return {"models": [_plain(model_view(model, row, now)) for model, row in sorted(table.items())]}
