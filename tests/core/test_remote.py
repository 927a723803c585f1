"""The shared wire format and the merge rules for other processes' transitions (pure)."""

from __future__ import annotations

import json

import attrs
import pytest
from switchover import CooldownConfig, ErrorKind, HealthState
from switchover._core._policy import CLEAR, HEALTHY, Cooldown, KeyState, ModelRow, key_gate
from switchover._core._remote import (
    RemoteKey,
    RemoteModel,
    decode,
    encode,
    key_remote,
    model_remote,
)

COOL = CooldownConfig()
#: The common fields of a version-1 record, for the malformed ones below.
HEAD = '{"v": 1, "origin": "o", "target": "t", "at": 1, '
NOW, WALL = 100.0, 1_767_225_600.0


def key(until: float | None = NOW + 30, at: float = NOW, **fields: object) -> RemoteKey:
    values: dict[str, object] = {
        "origin": "host:1:abc",
        "target": "openai/sha256:0123456789",
        "at": at,
        "cooldown_until": until,
        "failures": 2,
        "kind": ErrorKind.RATE_LIMIT,
    }
    return RemoteKey(**(values | fields))  # type: ignore[arg-type]


def model(
    state: HealthState = HealthState.COOLING, until: float | None = NOW + 60, **fields: object
) -> RemoteModel:
    values: dict[str, object] = {
        "origin": "host:1:abc",
        "target": "openai/gpt-4o",
        "at": NOW,
        "state": state,
        "until": until,
        "count": 1,
        "kind": ErrorKind.MODEL_MISSING,
    }
    return RemoteModel(**(values | fields))  # type: ignore[arg-type]


def roundtrip(record: RemoteKey | RemoteModel, *, skew: float = 0.0) -> RemoteKey | RemoteModel:
    """Encode in one process and decode in another whose monotonic clock reads ``skew`` more."""
    wire = encode(record, now=NOW, wall=WALL)
    return decode(wire, now=NOW + skew, wall=WALL, cooldown=COOL)


def test_records_cross_as_wall_clock_times_onto_the_receivers_clock() -> None:
    sent = key(prober="host:2:def", model="gpt-4o")
    got = roundtrip(sent, skew=500.0)
    assert got == attrs.evolve(sent, at=NOW + 500.0, cooldown_until=NOW + 530.0)
    healthy = model(HealthState.HEALTHY, until=None, probe_until=None)
    assert roundtrip(healthy) == healthy


def test_a_deadline_is_clamped_to_what_local_policy_could_set() -> None:
    far = roundtrip(key(until=NOW + 10**9))
    assert isinstance(far, RemoteKey)
    assert far.cooldown_until == NOW + COOL.profile_max
    future = roundtrip(key(at=NOW + 99))  # a change from a clock ahead happened now
    assert future.at == NOW


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\xff\xfe", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"v": 2}', "unknown version"),
        ('{"v": 1, "origin": "", "target": "t", "at": 1}', "origin"),
        ('{"v": 1, "origin": "o\\u0000", "target": "t", "at": 1}', "origin"),
        ('{"v": 1, "origin": "o", "target": "t", "at": "soon"}', "at must be"),
        ('{"v": 1, "origin": "o", "target": "t", "at": 1, "kind": "nope"}', "kind"),
        ('{"v": 1, "origin": "o", "target": "t", "at": 1, "type": "key", "failures": -1}', "count"),
        (
            HEAD + '"type": "model", "state": "x", "count": 1}',
            "state",
        ),
        (
            HEAD + '"type": "model", "state": "cooling", "count": 1}',
            "needs until",
        ),
        ('{"v": 1, "origin": "o", "target": "t", "at": 1, "type": "what"}', "unknown type"),
        (
            HEAD + '"type": "key", "failures": 1, "until": NaN}',
            "finite",
        ),
    ],
)
def test_malformed_or_foreign_values_are_rejected_with_a_reason(
    raw: str | bytes, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        decode(raw, now=NOW, wall=WALL, cooldown=COOL)


def test_the_wire_form_holds_no_error_text() -> None:
    wire = json.loads(encode(model(), now=NOW, wall=WALL))
    assert set(wire) == {
        "v",
        "origin",
        "target",
        "at",
        "kind",
        "type",
        "state",
        "until",
        "count",
        "probe_until",
    }


# --- keys ---------------------------------------------------------------------------------


def test_a_remote_cooldown_cools_a_ready_key_and_says_where_from() -> None:
    merged = key_remote(KeyState(), key(), NOW, grace=1.0)
    assert merged.whole.until == NOW + 30
    assert merged.whole.failures == 2
    assert merged.last_kind is ErrorKind.RATE_LIMIT
    assert merged.whole.origin == "host:1:abc"
    assert merged.whole.changed_at == NOW
    assert merged.whole.probe_until is None  # nobody named as prober: the first here probes


def test_a_rate_limit_for_one_model_cools_only_that_model() -> None:
    merged = key_remote(KeyState(), key(model="gpt-4o"), NOW, grace=1.0)
    assert merged.whole == CLEAR
    assert merged.limits["gpt-4o"].until == NOW + 30
    assert key_gate(merged, "gpt-4o", NOW) == "cooling"
    assert key_gate(merged, "gpt-4o-mini", NOW) == "ready"


def test_a_remote_transition_never_shortens_a_local_cooldown() -> None:
    local = KeyState(whole=Cooldown(until=NOW + 100, failures=1, changed_at=NOW - 1))
    shorter = key_remote(local, key(until=NOW + 30), NOW, grace=1.0)
    assert shorter.whole.until == NOW + 100
    assert shorter.whole.origin is None
    assert shorter.whole.failures == 2  # the count is evidence too
    recovered = key_remote(local, key(until=None, failures=0), NOW, grace=1.0)
    assert recovered == local


def test_a_remote_recovery_applies_once_the_local_cooldown_ended() -> None:
    ended = Cooldown(until=NOW - 1, failures=3, changed_at=NOW - 10, probe_until=NOW + 5)
    merged = key_remote(KeyState(whole=ended), key(until=None, failures=0), NOW, grace=1.0)
    assert merged.whole.until is None
    assert merged.whole.failures == 0
    assert merged.whole.probe_until is None


def test_old_news_never_changes_a_key_that_changed_here_later() -> None:
    local = KeyState(whole=Cooldown(changed_at=NOW))  # healed here, after the remote failure
    assert key_remote(local, key(at=NOW - 0.5), NOW, grace=1.0) == local
    expired = key_remote(KeyState(), key(until=NOW - 1), NOW, grace=1.0)
    assert expired == KeyState()  # a cooldown already over is no news either


def test_the_lease_holders_cooldown_keeps_the_probe_for_it_past_the_end() -> None:
    merged = key_remote(KeyState(), key(prober="host:1:abc"), NOW, grace=2.0)
    assert merged.whole.probe_until == NOW + 32
    longer = KeyState(whole=Cooldown(until=NOW + 50, changed_at=NOW - 1))
    assert key_remote(longer, key(prober="p"), NOW, grace=2.0).whole.probe_until == NOW + 52


# --- models -------------------------------------------------------------------------------


def test_a_remote_cooling_model_cools_here_and_disabled_is_stricter() -> None:
    cooled = model_remote(HEALTHY, model(), NOW, grace=1.0)
    assert (cooled.state, cooled.until, cooled.origin) == (
        HealthState.COOLING,
        NOW + 60,
        "host:1:abc",
    )
    disabled = model_remote(
        cooled, model(HealthState.DISABLED, until=NOW + 30, count=3), NOW, grace=1.0
    )
    assert disabled.state is HealthState.DISABLED
    assert disabled.until == NOW + 30
    assert disabled.reason == "model_missing failed 3 times in a row"
    # A cooling from elsewhere never downgrades a model disabled here.
    local = ModelRow(state=HealthState.DISABLED, until=NOW + 10, changed_at=NOW - 1)
    assert model_remote(local, model(until=NOW + 99), NOW, grace=1.0) == local


def test_a_remote_healthy_never_cuts_a_local_cooldown_but_heals_an_expired_one() -> None:
    cooling = ModelRow(state=HealthState.COOLING, until=NOW + 5, changed_at=NOW - 1)
    healthy = model(HealthState.HEALTHY, until=None)
    assert model_remote(cooling, healthy, NOW, grace=1.0) == cooling
    expired = attrs.evolve(cooling, until=NOW - 1)
    healed = model_remote(expired, healthy, NOW, grace=1.0)
    assert healed.state is HealthState.HEALTHY
    assert healed.origin == "host:1:abc"
    # A probe of this process still running keeps its lease.
    probing = attrs.evolve(expired, probe_until=NOW + 9, probe_holder=4)
    kept = model_remote(probing, healthy, NOW, grace=1.0)
    assert kept.state is HealthState.HEALTHY
    assert kept.probe_until == NOW + 9


def test_probation_elsewhere_makes_a_healthy_model_skip_here_until_its_lease_ends() -> None:
    row = model_remote(
        HEALTHY, model(HealthState.PROBING, until=NOW, probe_until=NOW + 8), NOW, grace=1.0
    )
    assert row.state is HealthState.PROBING
    assert row.probe_until == NOW + 8
    assert row.probe_holder is None


def test_old_news_never_changes_a_model_that_changed_here_later() -> None:
    row = ModelRow(changed_at=NOW + 1)
    assert model_remote(row, model(), NOW + 2, grace=1.0) == row
