"""Other processes' transitions: the wire format of shared state and the pure merge rules.

A process publishes each key cooldown and model health change it made as one JSON object
(``encode``); every other process decodes it (``decode``: anything malformed or foreign is a
:class:`ValueError` naming the problem) into a :class:`RemoteKey` or :class:`RemoteModel` on
its own clock, and the owning actor merges it through :func:`key_remote` / :func:`model_remote`.

Deadlines cross processes as Unix (wall-clock) times and are turned into this process's
monotonic scale on arrival, clamped to what the local policy could itself have set, so a
foreign value can never cool a key or model for longer than local failures could.

The merge rules: a remote transition is evidence with a time. It is ignored when the local
state changed later (old news); it never shortens a local cooldown; a remote recovery
(success or reset) applies only once the local cooldown has already ended. A cooldown names
the process holding its probe lease (``prober``): the others leave the probe to it until
``probe_grace`` past the cooldown's end.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs

from ._config import CooldownConfig
from ._policy import CLEAR, HEALTHY, Cooldown, KeyState, ModelRow, model_success
from ._vocab import ErrorKind, HealthState

VERSION = 1
#: Longest origin id or target name accepted from the wire.
MAX_NAME = 512
_KINDS = {str(kind) for kind in ErrorKind}
_STATES = {str(state) for state in HealthState}


@attrs.frozen
class RemoteKey:
    """Another process's key transition; times on this process's clock."""

    origin: str
    target: str  # "provider/fingerprint"
    at: float
    cooldown_until: float | None
    failures: int
    kind: ErrorKind | None
    prober: str | None = None
    #: None: the whole key's cooldown (auth, balance); else that model's rate limit.
    model: str | None = None


@attrs.frozen
class RemoteModel:
    """Another process's model health transition; times on this process's clock."""

    origin: str
    target: str  # "provider/model"
    at: float
    state: HealthState
    until: float | None
    count: int
    kind: ErrorKind | None
    probe_until: float | None = None
    prober: str | None = None


Remote = RemoteKey | RemoteModel


def encode(record: Remote, *, now: float, wall: float) -> str:
    """The wire form of a local transition (times turned into Unix times)."""

    def to_wall(t: float | None) -> float | None:
        return None if t is None else round(wall + (t - now), 6)

    fields: dict[str, Any] = {
        "v": VERSION,
        "origin": record.origin,
        "target": record.target,
        "at": to_wall(record.at),
        "kind": None if record.kind is None else str(record.kind),
    }
    if isinstance(record, RemoteKey):
        fields |= {
            "type": "key",
            "until": to_wall(record.cooldown_until),
            "failures": record.failures,
            "model": record.model,
        }
    else:
        fields |= {
            "type": "model",
            "state": str(record.state),
            "until": to_wall(record.until),
            "count": record.count,
            "probe_until": to_wall(record.probe_until),
        }
    if record.prober is not None:  # else the shared link adds the lease holder's id
        fields["prober"] = record.prober
    return json.dumps(fields, separators=(",", ":"))


def decode(raw: bytes | str, *, now: float, wall: float, cooldown: CooldownConfig) -> Remote:
    """Parse and check one wire value; times come back on this process's clock.

    Raises:
        ValueError: the value is not a valid version-1 record (the message names why).
    """
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("v") != VERSION:
        raise ValueError(f"unknown version {data.get('v')!r}")
    origin = _name(data, "origin")
    target = _name(data, "target")
    prober = _name(data, "prober") if data.get("prober") is not None else None
    kind = data.get("kind")
    if kind is not None and kind not in _KINDS:
        raise ValueError("unknown kind")
    at_wall = _time(data, "at")
    if at_wall is None:
        raise ValueError("at is missing")

    def local(field: str, ceiling: float) -> float | None:
        # Clamped: a deadline from elsewhere never runs past what local policy could set.
        t = _time(data, field)
        return None if t is None else min(now + (t - wall), now + ceiling)

    at = min(now, now + (at_wall - wall))  # a change from the future happened now
    error = None if kind is None else ErrorKind(kind)
    if data.get("type") == "key":
        return RemoteKey(
            origin=origin,
            target=target,
            at=at,
            cooldown_until=local("until", cooldown.profile_max),
            failures=_count(data, "failures"),
            kind=error,
            prober=prober,
            model=_name(data, "model") if data.get("model") is not None else None,
        )
    if data.get("type") == "model":
        state = data.get("state")
        if state not in _STATES:
            raise ValueError("unknown state")
        longest = max(cooldown.model_max, cooldown.disabled_probe_interval)
        until = local("until", longest)
        if state != HealthState.HEALTHY and until is None:
            raise ValueError(f"a {state} model needs until")
        return RemoteModel(
            origin=origin,
            target=target,
            at=at,
            state=HealthState(state),
            until=until,
            count=_count(data, "count"),
            kind=error,
            probe_until=local("probe_until", longest),
            prober=prober,
        )
    raise ValueError("unknown type")


def _name(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or not value.isprintable():
        raise ValueError(f"{field} must be a short printable string")
    return value


def _time(data: dict[str, Any], field: str) -> float | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number")
    return float(value)


def _count(data: dict[str, Any], field: str) -> int:
    value = data.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise ValueError(f"{field} must be a count")
    return value


# --- merging: the owning actor applies another process's transition -----------------------


def key_remote(state: KeyState, remote: RemoteKey, now: float, *, grace: float) -> KeyState:
    """Merge another process's key transition into this process's state: into the whole
    key's cooldown (``remote.model`` None) or that model's rate limit.

    ``remote.prober`` set (another process holds the probe lease): this process does not
    probe until ``grace`` past the end of the cooldown.
    """
    model = remote.model
    track = state.whole if model is None else state.limits.get(model, CLEAR)
    merged = _cooldown_remote(track, remote, now, grace=grace)
    if merged == track:
        return state
    kind = remote.kind if merged.origin == remote.origin else state.last_kind
    if model is None:
        return attrs.evolve(state, whole=merged, last_kind=kind)
    return attrs.evolve(state, limits={**state.limits, model: merged}, last_kind=kind)


def _cooldown_remote(track: Cooldown, remote: RemoteKey, now: float, *, grace: float) -> Cooldown:
    if remote.at < track.changed_at:
        return track  # old news: it changed here since
    until = remote.cooldown_until
    if until is None or until <= now:
        # A recovery (or a cooldown already over): never cuts a cooldown still running here.
        if track.until is None or now < track.until:
            return track
        return Cooldown(failures=remote.failures, changed_at=remote.at, origin=remote.origin)
    failures = max(track.failures, remote.failures)
    if track.until is not None and track.until >= until:
        merged = attrs.evolve(track, failures=failures)
    else:
        merged = attrs.evolve(
            track,
            until=until,
            failures=failures,
            trial=None,  # the local probe's outcome is old news against this
            changed_at=remote.at,
            origin=remote.origin,
        )
    if remote.prober is not None:
        assert merged.until is not None
        lease = merged.until + grace
        merged = attrs.evolve(merged, probe_until=max(lease, merged.probe_until or lease))
    return merged


def model_remote(row: ModelRow, remote: RemoteModel, now: float, *, grace: float) -> ModelRow:
    """Merge another process's model transition into this process's row (``prober`` and
    ``grace`` as for :func:`key_remote`)."""
    if remote.at < row.changed_at:
        return row  # old news
    origin, at = remote.origin, remote.at
    if remote.state is HealthState.HEALTHY:
        if row.state is not HealthState.HEALTHY and row.until is not None and now < row.until:
            return row  # never shortens a local cooldown (or a disabled model's wait)
        # As a success of a call that began when the transition happened there; it keeps a
        # live local probe lease.
        healed = model_success(row, remote.at, now, prober=False)
        return row if healed == row else attrs.evolve(healed, origin=origin, changed_at=at)
    if remote.state is HealthState.PROBING:
        # On probation elsewhere: skip it here too until that holder's lease runs out.
        if row.state is not HealthState.HEALTHY or remote.probe_until is None:
            return row
        return attrs.evolve(
            row,
            state=HealthState.PROBING,
            until=now,
            probe_until=max(remote.probe_until, row.probe_until or remote.probe_until),
            probe_holder=None,
            trial=None,
            origin=origin,
            changed_at=at,
        )
    assert remote.until is not None
    stricter = remote.state is HealthState.DISABLED and row.state is not HealthState.DISABLED
    weaker = remote.state is HealthState.COOLING and row.state is HealthState.DISABLED
    if weaker or (remote.until <= now and not stricter):
        return row
    if stricter or row.state is HEALTHY.state or row.until is None or row.until < remote.until:
        row = attrs.evolve(
            row,
            state=remote.state,
            until=remote.until if stricter else max(remote.until, row.until or remote.until),
            kind=remote.kind,
            count=max(row.count, remote.count) if remote.kind is row.kind else remote.count,
            reason=(
                f"{remote.kind} failed {remote.count} times in a row"
                if remote.state is HealthState.DISABLED
                else None
            ),
            trial=None,
            origin=origin,
            changed_at=at,
        )
    if remote.prober is not None:
        assert row.until is not None
        lease = row.until + grace
        row = attrs.evolve(row, probe_until=max(lease, row.probe_until or lease))
    return row
