"""Pure cooldown, health and retry transitions: no threads, a fake clock's numbers, and
freezegun for expiry on the default clock."""

from __future__ import annotations

import random

import attrs
import pytest
from freezegun import freeze_time
from switchover import CooldownConfig, ErrorKind, HealthState, RetryConfig
from switchover._core._classify import Failure
from switchover._core._clock import SystemClock
from switchover._core._policy import (
    DISABLING_KINDS,
    HEALTHY,
    KEY_KINDS,
    MODEL_KINDS,
    KeyState,
    ModelRow,
    key_commit,
    key_cooldown,
    key_failure,
    key_gate,
    key_grant,
    key_jitter,
    key_release,
    key_reset,
    key_success,
    model_commit,
    model_failure,
    model_gate,
    model_grant,
    model_release,
    model_success,
    model_suspect,
    model_view,
    retry_delay,
)
from switchover.testing import FakeClock

K = ErrorKind
CFG = CooldownConfig()
NOW = 1_000.0
M = "p/m"  # the model a key's calls are for
LATER = 1e9  # a call begun after every change in a test: fresh news


def count(state: KeyState) -> int:
    """The consecutive failures that count for a call on M: the whole key's or M's."""
    return max(track.failures for track in state.tracks(M))


def fail(kind: ErrorKind, retry_after: float | None = None) -> Failure:
    return Failure(kind=kind, message=f"{kind} happened", retry_after=retry_after)


class Top(random.Random):
    """An RNG whose ``uniform`` always returns its upper bound."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Bottom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


# --- key cooldown ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (5, 80.0), (6, 160.0), (7, 300.0), (40, 300.0)],
)
def test_key_cooldown_doubles_and_is_clamped(failures: int, seconds: float) -> None:
    assert key_cooldown(CFG, failures, fail(K.RATE_LIMIT), 1.0) == seconds


def test_key_cooldown_never_drops_below_profile_min_with_jitter() -> None:
    assert key_cooldown(CFG, 1, fail(K.AUTH), 0.9) == 5.0
    assert key_cooldown(CFG, 2, fail(K.AUTH), 0.9) == pytest.approx(9.0)
    assert key_cooldown(CFG, 2, fail(K.AUTH), 1.1) == pytest.approx(11.0)


def test_key_jitter_is_within_ten_percent() -> None:
    rng = random.Random(1)
    draws = [key_jitter(rng) for _ in range(2000)]
    assert min(draws) >= 0.9
    assert max(draws) <= 1.1
    assert min(draws) < 0.92
    assert max(draws) > 1.08
    assert key_jitter(Bottom()) == pytest.approx(0.9)
    assert key_jitter(Top()) == pytest.approx(1.1)


def test_key_cooldown_uses_retry_after_as_a_floor_and_profile_max_as_a_ceiling() -> None:
    assert key_cooldown(CFG, 1, fail(K.RATE_LIMIT, retry_after=42.0), 1.0) == 42.0
    assert key_cooldown(CFG, 5, fail(K.RATE_LIMIT, retry_after=42.0), 1.0) == 80.0
    assert key_cooldown(CFG, 1, fail(K.RATE_LIMIT, retry_after=9_999.0), 1.0) == 300.0


def test_balance_cools_a_key_for_profile_max_at_once() -> None:
    assert key_cooldown(CFG, 1, fail(K.BALANCE), 1.0) == CFG.profile_max


def test_shrunk_cooldown_config_is_honoured() -> None:
    cfg = CooldownConfig(profile_min=0.1, profile_max=0.5)
    assert [key_cooldown(cfg, n, fail(K.AUTH), 1.0) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]


def test_key_failure_counts_and_cools_only_for_key_kinds() -> None:
    state = key_failure(KeyState(), M, fail(K.RATE_LIMIT), NOW, NOW, cfg=CFG, jitter=1.0)
    assert (count(state), state.until(M)) == (1, NOW + 5.0)
    assert (state.calls, state.errors, state.last_kind) == (1, 1, K.RATE_LIMIT)
    for kind in set(ErrorKind) - KEY_KINDS:
        other = key_failure(KeyState(), M, fail(kind), NOW, NOW, cfg=CFG, jitter=1.0)
        assert (count(other), other.until(M)) == (0, None), kind


def test_key_kinds_are_exactly_rate_limit_auth_balance() -> None:
    assert {K.RATE_LIMIT, K.AUTH, K.BALANCE} == KEY_KINDS


def test_a_new_key_cooldown_never_shortens_an_existing_one() -> None:
    state = key_failure(KeyState(), M, fail(K.BALANCE), NOW, NOW, cfg=CFG, jitter=1.0)
    assert state.until(M) == NOW + 300.0
    later = key_failure(state, M, fail(K.AUTH), NOW + 1.0, NOW + 1.0, cfg=CFG, jitter=1.0)
    assert count(later) == 2
    assert later.until(M) == NOW + 300.0
    limited = key_failure(state, M, fail(K.RATE_LIMIT), NOW + 1.0, NOW + 1.0, cfg=CFG, jitter=1.0)
    assert limited.until(M) == NOW + 300.0  # the whole key's cooldown still holds for M


def test_failure_count_survives_cooldown_expiry() -> None:
    # The reference deleted the count when the cooldown expired, so backoff never grew.
    clock = FakeClock(start=NOW)
    state = key_failure(
        KeyState(), M, fail(K.RATE_LIMIT), clock.now(), clock.now(), cfg=CFG, jitter=1.0
    )
    clock.advance(5.0)
    assert key_gate(state, M, clock.now()) == "expired"
    state, granted = key_grant(state, M, clock.now(), lease=60.0)
    assert granted
    assert count(state) == 1
    state = key_failure(state, M, fail(K.RATE_LIMIT), clock.now(), clock.now(), cfg=CFG, jitter=1.0)
    assert count(state) == 2
    assert state.until(M) == clock.now() + 10.0
    clock.advance(10.0)
    state = key_failure(state, M, fail(K.RATE_LIMIT), clock.now(), clock.now(), cfg=CFG, jitter=1.0)
    assert state.until(M) == clock.now() + 20.0


def test_failure_count_resets_only_on_success() -> None:
    state = key_failure(KeyState(), M, fail(K.AUTH), NOW, NOW, cfg=CFG, jitter=1.0)
    state = key_failure(state, M, fail(K.TRANSIENT), NOW + 10, NOW + 10, cfg=CFG, jitter=1.0)
    state = key_release(state, M, LATER)
    assert count(state) == 1
    state = key_success(state, M, LATER, LATER)
    assert (count(state), state.until(M)) == (0, None)
    assert (state.calls, state.successes, state.errors) == (4, 1, 2)


def test_a_non_key_failure_on_an_expired_key_puts_it_back_in_service() -> None:
    state = key_failure(KeyState(), M, fail(K.RATE_LIMIT), NOW, NOW, cfg=CFG, jitter=1.0)
    cooling = key_failure(state, M, fail(K.TRANSIENT), NOW + 1.0, NOW + 1.0, cfg=CFG, jitter=1.0)
    assert key_gate(cooling, M, NOW + 1.0) == "cooling"
    back = key_failure(state, M, fail(K.TRANSIENT), NOW + 6.0, NOW + 6.0, cfg=CFG, jitter=1.0)
    assert key_gate(back, M, NOW + 6.0) == "ready"
    assert count(back) == 1


def test_key_grant_hands_an_expired_key_to_one_caller_per_lease() -> None:
    state = key_failure(KeyState(), M, fail(K.RATE_LIMIT), NOW, NOW, cfg=CFG, jitter=1.0)
    assert key_grant(state, M, NOW + 1.0, lease=30.0) == (state, False)
    state, first = key_grant(state, M, NOW + 6.0, lease=30.0)
    _, second = key_grant(state, M, NOW + 7.0, lease=30.0)
    assert (first, second) == (True, False)
    _, after_lease = key_grant(state, M, NOW + 36.0, lease=30.0)
    assert after_lease
    released = key_release(state, M, LATER)
    assert key_grant(released, M, NOW + 7.0, lease=30.0)[1]


def test_key_grant_on_a_ready_key_takes_no_lease() -> None:
    state, granted = key_grant(KeyState(), M, NOW, lease=30.0)
    assert granted
    assert state == KeyState()


def test_key_reset_clears_cooldown_and_count_but_keeps_counters() -> None:
    state = key_failure(KeyState(), M, fail(K.AUTH), NOW, NOW, cfg=CFG, jitter=1.0)
    state = key_reset(state)
    assert (state.until(M), count(state)) == (None, 0)
    assert (state.calls, state.errors) == (1, 1)


@freeze_time("2026-03-01 12:00:00")
def test_key_cooldown_expires_on_the_default_clock() -> None:
    import time

    clock = SystemClock()
    state = key_failure(
        KeyState(), M, fail(K.RATE_LIMIT), clock.now(), clock.now(), cfg=CFG, jitter=1.0
    )
    with freeze_time("2026-03-01 12:00:04.9"):
        assert key_gate(state, M, clock.now()) == "cooling"
    with freeze_time("2026-03-01 12:00:05"):
        assert key_gate(state, M, clock.now()) == "expired"
    assert time.monotonic() == clock.now()


def test_key_cooldown_expires_when_freezegun_ticks() -> None:
    with freeze_time("2026-03-01 12:00:00") as frozen:
        clock = SystemClock()
        state = key_failure(
            KeyState(), M, fail(K.AUTH), clock.now(), clock.now(), cfg=CFG, jitter=1.0
        )
        frozen.tick(4.0)
        assert key_gate(state, M, clock.now()) == "cooling"
        frozen.tick(1.0)
        assert key_gate(state, M, clock.now()) == "expired"


# --- evidence ordered by when calls began -----------------------------------------------------


def burst(state: KeyState, kind: ErrorKind, n: int, began: float, now: float) -> KeyState:
    """``n`` calls that all began at ``began`` fail one after another from ``now``."""
    for i in range(n):
        failure = fail(kind, retry_after=1.0)
        state = key_failure(state, M, failure, began, now + i * 0.01, cfg=CFG, jitter=1.0)
    return state


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_a_burst_of_simultaneous_key_failures_is_one_episode(kind: ErrorKind) -> None:
    # Issue 15 item 2: eight calls in flight at once all get a 429 (retry-after 1).
    state = burst(KeyState(), kind, 8, began=NOW, now=NOW + 0.5)
    assert count(state) == 1
    expected = CFG.profile_max if kind is K.BALANCE else CFG.profile_min
    assert state.until(M) == pytest.approx(NOW + 0.5 + expected)
    assert (state.calls, state.errors) == (8, 8)  # the counters still see every call


def test_a_key_failure_after_the_cooldown_began_is_a_new_episode() -> None:
    state = key_failure(KeyState(), M, fail(K.RATE_LIMIT), NOW, NOW, cfg=CFG, jitter=1.0)
    state, _ = key_grant(state, M, NOW + 6.0, lease=30.0)
    state = key_failure(state, M, fail(K.RATE_LIMIT), NOW + 6.0, NOW + 7.0, cfg=CFG, jitter=1.0)
    assert (count(state), state.until(M)) == (2, NOW + 17.0)


def test_a_success_that_began_before_a_key_cooled_does_not_heal_it() -> None:
    state = key_failure(KeyState(), M, fail(K.AUTH), NOW, NOW + 1.0, cfg=CFG, jitter=1.0)
    old = key_success(state, M, NOW - 5.0, NOW + 2.0)
    assert (count(old), old.until(M)) == (1, NOW + 6.0)
    assert (old.calls, old.successes) == (2, 1)
    fresh = key_success(state, M, NOW + 6.0, NOW + 7.0)  # the probe, after the cooldown
    assert (count(fresh), fresh.until(M)) == (0, None)


def test_a_failure_that_began_before_a_key_recovered_does_not_cool_it_again() -> None:
    state = key_failure(KeyState(), M, fail(K.RATE_LIMIT), NOW, NOW + 1.0, cfg=CFG, jitter=1.0)
    state = key_success(state, M, NOW + 6.0, NOW + 7.0)  # recovered through its probe
    old = key_failure(state, M, fail(K.RATE_LIMIT), NOW + 0.5, NOW + 8.0, cfg=CFG, jitter=1.0)
    assert (count(old), key_gate(old, M, NOW + 8.0)) == (0, "ready")


def test_a_rate_limit_cools_a_key_for_that_model_only() -> None:
    state = key_failure(KeyState(), "p/a", fail(K.RATE_LIMIT), NOW, NOW, cfg=CFG, jitter=1.0)
    assert key_gate(state, "p/a", NOW + 1.0) == "cooling"
    assert key_gate(state, "p/b", NOW + 1.0) == "ready"
    auth = key_failure(KeyState(), "p/a", fail(K.AUTH), NOW, NOW, cfg=CFG, jitter=1.0)
    assert key_gate(auth, "p/b", NOW + 1.0) == "cooling"  # auth cools the whole key


def test_a_success_on_another_model_keeps_a_models_rate_limit() -> None:
    # Issue 15 item 3: the same key's success for the next model wiped the cooldown.
    state = key_failure(KeyState(), "p/a", fail(K.RATE_LIMIT), NOW, NOW, cfg=CFG, jitter=1.0)
    state = key_success(state, "p/b", NOW + 0.1, NOW + 1.0)
    assert key_gate(state, "p/a", NOW + 1.0) == "cooling"
    assert state.limits["p/a"].failures == 1


def test_an_old_outcome_does_not_end_a_key_probe_lease() -> None:
    state = key_failure(KeyState(), M, fail(K.RATE_LIMIT), NOW, NOW, cfg=CFG, jitter=1.0)
    state, granted = key_grant(state, M, NOW + 6.0, lease=30.0)
    assert granted
    for old in (
        key_failure(state, M, fail(K.TRANSIENT), NOW - 1.0, NOW + 7.0, cfg=CFG, jitter=1.0),
        key_release(state, M, NOW - 1.0),
    ):
        assert not key_grant(old, M, NOW + 8.0, lease=30.0)[1], "the probe is still out"
    assert key_grant(key_release(state, M, NOW + 6.0), M, NOW + 8.0, lease=30.0)[1]


def test_a_burst_of_simultaneous_model_failures_is_one_episode() -> None:
    row = HEALTHY
    for i in range(8):
        row = model_failure(row, fail(K.RATE_LIMIT, retry_after=1.0), NOW, NOW + 0.5 + i, CFG)
    assert (row.state, row.count, row.until) == (HealthState.COOLING, 1, NOW + 30.5)


def test_a_success_that_began_before_a_model_failed_does_not_heal_it() -> None:
    row = model_failure(HEALTHY, fail(K.TRANSIENT), NOW, NOW + 1.0, CFG)
    assert model_success(row, NOW - 3.0, NOW + 2.0, prober=False) == row
    assert model_success(row, NOW - 3.0, NOW + 2.0, prober=True) == row
    suspect = model_suspect(HEALTHY, fail(K.TRANSIENT), NOW, lease=30.0, holder=1)
    assert suspect is not None
    assert model_success(suspect, NOW - 3.0, NOW + 2.0, prober=False) == suspect
    healed = model_success(row, NOW + 11.0, NOW + 12.0, prober=True)
    assert (healed.state, healed.changed_at) == (HealthState.HEALTHY, NOW + 12.0)


def test_a_failure_that_began_before_a_model_recovered_does_not_cool_it() -> None:
    row = model_failure(HEALTHY, fail(K.TRANSIENT), NOW, NOW + 1.0, CFG)
    row, _ = model_grant(row, NOW + 11.0, lease=30.0)
    row = model_success(row, NOW + 11.0, NOW + 12.0, prober=True)
    assert model_failure(row, fail(K.TRANSIENT), NOW + 0.5, NOW + 13.0, CFG) == row


def test_a_mid_stream_cut_of_a_call_begun_while_healthy_still_counts() -> None:
    row = model_success(HEALTHY, NOW, NOW + 1.0, prober=False)  # a healthy row stays as it was
    cut = model_failure(row, fail(K.TRANSIENT), NOW + 0.5, NOW + 20.0, CFG, prober=False)
    assert (cut.state, cut.count) == (HealthState.COOLING, 1)


def test_a_probe_that_moved_on_speaks_for_itself_only() -> None:
    row = model_failure(HEALTHY, fail(K.TRANSIENT), NOW, NOW, CFG)
    row, _ = model_grant(row, NOW + 10.0, lease=5.0, holder=1)
    row, reason = model_grant(row, NOW + 16.0, lease=5.0, holder=2)  # the first lease ran out
    assert reason is None
    assert model_release(row, NOW + 10.0) == row  # the first probe's stream, closed late
    assert model_release(row, NOW + 16.0).probe_until is None


# --- a probe's commit ends its probation; its own outcome still counts --------------------------


def probing_key(failures: int = 1) -> KeyState:
    """A key rate-limited for M ``failures`` times, its cooldown over, the probe granted at
    NOW + 100 (so the probe's call began then)."""
    state = KeyState()
    for i in range(failures):
        state = key_failure(state, M, fail(K.RATE_LIMIT), NOW + i, NOW + i, cfg=CFG, jitter=1.0)
    state, granted = key_grant(state, M, NOW + 100.0, lease=30.0)
    assert granted
    return state


def test_a_key_probe_commit_puts_the_key_back_in_service_keeping_its_count() -> None:
    state = key_commit(probing_key(2), M, NOW + 100.0, NOW + 101.0)
    assert key_gate(state, M, NOW + 101.0) == "ready"
    assert count(state) == 2
    # Its clean end clears the count; a cut after commit cools the key for longer.
    assert count(key_success(state, M, NOW + 100.0, NOW + 120.0)) == 0
    cut = key_failure(state, M, fail(K.RATE_LIMIT), NOW + 100.0, NOW + 120.0, cfg=CFG, jitter=1.0)
    assert (count(cut), cut.until(M)) == (3, NOW + 120.0 + 20.0)


def test_a_key_commit_of_a_call_that_is_not_the_probe_changes_nothing() -> None:
    state = probing_key()
    assert key_commit(state, M, NOW + 99.0, NOW + 101.0) == state  # began before the lease
    ready = KeyState()
    assert key_commit(ready, M, NOW, NOW + 1.0) == ready


def test_after_a_key_commit_an_older_call_is_still_old_news() -> None:
    state = key_commit(probing_key(), M, NOW + 100.0, NOW + 101.0)
    # A call that began during the cooldown (before the probe) fails after the commit.
    old = key_failure(state, M, fail(K.RATE_LIMIT), NOW + 50.0, NOW + 102.0, cfg=CFG, jitter=1.0)
    assert key_gate(old, M, NOW + 102.0) == "ready"
    # A reset forgets the trial: the probe's late cut is then old news like any other.
    reset = key_reset(state)
    assert key_failure(reset, M, fail(K.RATE_LIMIT), NOW + 100.0, NOW + 102.0, cfg=CFG, jitter=1.0)


def probing_row(
    kind: ErrorKind = K.TRANSIENT, failures: int = 1, at: float = NOW + 100.0
) -> ModelRow:
    """A model cooled ``failures`` times, its probe granted to request 7 ``at``."""
    row = HEALTHY
    for i in range(failures):
        row = model_failure(row, fail(kind), NOW + i, NOW + i, CFG)
    row, reason = model_grant(row, at, lease=30.0, holder=7)
    assert reason is None
    return row


def test_a_model_probe_commit_makes_it_healthy_for_everyone_keeping_its_count() -> None:
    row = model_commit(probing_row(failures=2), NOW + 100.0, NOW + 101.0)
    assert (row.state, row.count, row.probe_until, row.changed_at) == (
        HealthState.HEALTHY,
        2,
        None,
        NOW + 101.0,
    )
    assert model_grant(row, NOW + 101.0, lease=30.0) == (row, None)  # anyone may call it
    assert model_success(row, NOW + 100.0, NOW + 120.0, prober=True).count == 0


def test_a_committed_probe_cut_mid_stream_cools_the_model_for_longer() -> None:
    row = model_commit(probing_row(failures=2), NOW + 100.0, NOW + 101.0)
    cut = model_failure(row, fail(K.TRANSIENT), NOW + 100.0, NOW + 120.0, CFG)
    assert (cut.state, cut.count, cut.until) == (HealthState.COOLING, 3, NOW + 120.0 + 40.0)


def test_a_committed_probation_ends_too() -> None:
    suspect = model_suspect(HEALTHY, fail(K.TRANSIENT), NOW, lease=30.0, holder=7)
    assert suspect is not None
    row = model_commit(suspect, NOW + 1.0, NOW + 2.0)  # the holder's retry committed
    assert (row.state, row.count) == (HealthState.HEALTHY, 0)
    assert model_view("m", row, NOW + 2.0).state is HealthState.HEALTHY


def test_a_model_commit_that_is_not_the_holders_changes_nothing() -> None:
    row = probing_row()
    assert model_commit(row, NOW + 99.0, NOW + 101.0) == row  # began before the lease
    assert model_commit(HEALTHY, NOW, NOW + 1.0) == HEALTHY
    cooling = model_failure(HEALTHY, fail(K.TRANSIENT), NOW, NOW, CFG)  # nobody let through
    assert model_commit(cooling, NOW + 20.0, NOW + 21.0) == cooling


def test_after_a_model_commit_only_the_probe_and_newer_calls_are_news() -> None:
    row = model_commit(probing_row(), NOW + 100.0, NOW + 101.0)
    # Begun during the cooldown, before the probe: old news either way.
    assert model_failure(row, fail(K.TRANSIENT), NOW + 50.0, NOW + 102.0, CFG) == row
    assert model_failure(row, fail(K.TRANSIENT), NOW + 50.0, NOW + 102.0, CFG, prober=False) == row
    # Begun after the commit: counts, and continues the run of failures.
    newer = model_failure(row, fail(K.TRANSIENT), NOW + 101.5, NOW + 103.0, CFG, prober=False)
    assert (newer.state, newer.count) == (HealthState.COOLING, 2)
    # Once it has, the probe's own late verdict is old news.
    assert model_success(newer, NOW + 100.0, NOW + 104.0, prober=True) == newer


def test_a_new_probation_after_a_commit_is_not_healed_by_the_old_probe() -> None:
    row = model_commit(probing_row(), NOW + 100.0, NOW + 101.0)
    suspect = model_suspect(row, fail(K.TRANSIENT), NOW + 102.0, lease=30.0, holder=8)
    assert suspect is not None
    assert suspect.trial is None
    assert model_success(suspect, NOW + 100.0, NOW + 110.0, prober=True) == suspect


def test_a_committed_probe_closed_early_ends_its_trial_keeping_the_count() -> None:
    row = model_release(model_commit(probing_row(), NOW + 100.0, NOW + 101.0), NOW + 100.0)
    assert (row.state, row.count, row.trial) == (HealthState.HEALTHY, 1, None)
    assert model_failure(row, fail(K.TRANSIENT), NOW + 100.0, NOW + 110.0, CFG) == row


def test_a_probe_commit_after_another_call_failed_the_model_is_old_news() -> None:
    # Request 7 probes; a call that began after the probe (one with no later chain entry,
    # say) fails and cools the model again while the probe is still starting.
    row = probing_row()
    cooled = model_failure(row, fail(K.TRANSIENT), NOW + 100.5, NOW + 102.0, CFG, prober=False)
    assert (cooled.state, cooled.count, cooled.probe_holder) == (HealthState.COOLING, 2, 7)
    # The probe began before that failure: its commit and its success heal nothing.
    assert model_commit(cooled, NOW + 100.2, NOW + 103.0) == cooled
    done = model_success(cooled, NOW + 100.2, NOW + 110.0, prober=True)
    assert (done.state, done.count, done.until) == (cooled.state, 2, cooled.until)
    # But its call is over: the next probe need not wait for its lease to run out.
    assert done.probe_until is None
    assert cooled.until is not None
    assert model_grant(done, cooled.until, lease=30.0, holder=8)[1] is None


def test_an_old_failure_of_the_probe_holder_ends_its_lease_only() -> None:
    row = probing_row()
    cooled = model_failure(row, fail(K.TRANSIENT), NOW + 100.5, NOW + 102.0, CFG, prober=False)
    done = model_failure(cooled, fail(K.TRANSIENT), NOW + 100.2, NOW + 104.0, CFG)
    assert attrs.evolve(done, probe_until=None, probe_holder=None, probe_since=None) == (
        attrs.evolve(cooled, probe_until=None, probe_holder=None, probe_since=None)
    )
    assert done.probe_until is None
    # Anyone else's old news leaves the lease alone.
    other = model_failure(cooled, fail(K.TRANSIENT), NOW + 50.0, NOW + 104.0, CFG, prober=False)
    assert other == cooled


def test_a_disabled_model_is_back_at_its_probes_commit() -> None:
    probe_at = NOW + 2.0 + CFG.disabled_probe_interval
    row = probing_row(K.MODEL_MISSING, failures=3, at=probe_at)
    assert row.state is HealthState.DISABLED
    row = model_commit(row, probe_at, probe_at + 1.0)
    assert (row.state, row.reason, row.count) == (HealthState.HEALTHY, None, 3)
    again = model_failure(row, fail(K.MODEL_MISSING), probe_at, probe_at + 2.0, CFG)
    assert again.state is HealthState.DISABLED


# --- model health ----------------------------------------------------------------------------


def cooling_seconds(kind: ErrorKind, times: int, cfg: CooldownConfig = CFG) -> list[float]:
    row = HEALTHY
    seconds = []
    now = NOW
    for _ in range(times):
        row = model_failure(row, fail(kind), now, now, cfg)
        assert row.until is not None
        seconds.append(row.until - now)
        now = row.until  # the next failure comes when the cooldown has ended
    return seconds


def test_model_cooldown_doubles_per_kind_and_caps_at_model_max() -> None:
    assert cooling_seconds(K.RATE_LIMIT, 9) == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert cooling_seconds(K.TRANSIENT, 4) == [10, 20, 40, 80]
    assert cooling_seconds(K.AUTH, 2) == [60, 120]


def test_model_cooldown_respects_tuned_bases() -> None:
    cfg = CooldownConfig(model_base={"transient": 0.5}, model_max=3.0)
    assert cooling_seconds(K.TRANSIENT, 5, cfg) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert cfg.model_base["rate_limit"] == 30.0  # the other bases keep their defaults


def test_model_cooldown_uses_retry_after_as_a_floor() -> None:
    row = model_failure(HEALTHY, fail(K.RATE_LIMIT, retry_after=95.0), NOW, NOW, CFG)
    assert row.until == NOW + 95.0
    row = model_failure(HEALTHY, fail(K.RATE_LIMIT, retry_after=99_999.0), NOW, NOW, CFG)
    assert row.until == NOW + CFG.model_max


def test_model_cooldown_never_shortens() -> None:
    row = model_failure(HEALTHY, fail(K.RATE_LIMIT, retry_after=500.0), NOW, NOW, CFG)
    row = model_failure(row, fail(K.TRANSIENT), NOW + 1.0, NOW + 1.0, CFG)
    assert row.until == NOW + 500.0
    assert (row.kind, row.count) == (K.TRANSIENT, 1)


@pytest.mark.parametrize("kind", sorted(DISABLING_KINDS))
def test_three_in_a_row_disables(kind: ErrorKind) -> None:
    row = HEALTHY
    now = NOW
    for expected in (HealthState.COOLING, HealthState.COOLING, HealthState.DISABLED):
        row = model_failure(row, fail(kind), now, now, CFG)
        assert row.state is expected
        assert row.until is not None
        now = row.until
    assert row.count == 3
    assert row.reason is not None
    assert str(kind) in row.reason
    assert row.until == now  # the disabled wait is disabled_probe_interval
    assert model_gate(row, now - 1.0) == "cooling"


@pytest.mark.parametrize("kind", [K.RATE_LIMIT, K.TRANSIENT])
def test_rate_limit_and_transient_never_disable(kind: ErrorKind) -> None:
    row = HEALTHY
    for _ in range(10):
        row = model_failure(row, fail(kind), NOW, NOW, CFG)
    assert row.state is HealthState.COOLING


def test_counts_are_per_kind() -> None:
    # The reference shared one count: two blips then one auth error meant a 1 h lockout.
    row = model_failure(HEALTHY, fail(K.TRANSIENT), NOW, NOW, CFG)
    row = model_failure(row, fail(K.TRANSIENT), NOW + 10, NOW + 10, CFG)
    row = model_failure(row, fail(K.AUTH), NOW + 40, NOW + 40, CFG)
    assert (row.state, row.kind, row.count) == (HealthState.COOLING, K.AUTH, 1)
    assert row.until == NOW + 40 + 60.0
    row = model_failure(row, fail(K.AUTH), NOW + 100, NOW + 100, CFG)
    row = model_failure(row, fail(K.BALANCE), NOW + 220, NOW + 220, CFG)
    assert row.state is HealthState.COOLING  # auth, auth, balance is not three in a row


def test_disable_after_is_tunable() -> None:
    row = model_failure(HEALTHY, fail(K.MODEL_MISSING), NOW, NOW, CooldownConfig(disable_after=1))
    assert row.state is HealthState.DISABLED


def test_a_disabled_model_lets_one_probe_through_after_the_probe_interval() -> None:
    cfg = CooldownConfig(disable_after=1, disabled_probe_interval=100.0)
    row = model_failure(HEALTHY, fail(K.AUTH), NOW, NOW, cfg)
    assert model_grant(row, NOW + 99.0, lease=5.0)[1] == "disabled"
    row, reason = model_grant(row, NOW + 100.0, lease=5.0)
    assert reason is None
    assert model_grant(row, NOW + 101.0, lease=5.0)[1] == "probe in flight"
    again = model_failure(row, fail(K.AUTH), NOW + 102.0, NOW + 102.0, cfg)
    assert again.state is HealthState.DISABLED
    assert again.until == NOW + 202.0


def test_model_grant_single_probe_and_release() -> None:
    row = model_failure(HEALTHY, fail(K.TRANSIENT), NOW, NOW, CFG)
    assert model_grant(row, NOW + 5.0, lease=30.0)[1] == "cooling"
    row, first = model_grant(row, NOW + 10.0, lease=30.0)
    _, second = model_grant(row, NOW + 10.0, lease=30.0)
    assert (first, second) == (None, "probe in flight")
    assert model_grant(row, NOW + 40.0, lease=30.0)[1] is None  # a lost probe expires
    assert model_grant(model_release(row, LATER), NOW + 11.0, lease=30.0)[1] is None
    assert model_grant(HEALTHY, NOW, lease=30.0) == (HEALTHY, None)


def test_model_suspect_puts_only_a_healthy_model_on_probation() -> None:
    row = model_suspect(HEALTHY, fail(K.TRANSIENT), NOW, lease=30.0)
    assert row is not None
    assert (row.state, row.count, row.probe_until) == (HealthState.PROBING, 0, NOW + 30.0)
    assert model_gate(row, NOW) == "expired"
    assert model_grant(row, NOW + 1.0, lease=30.0)[1] == "probe in flight"
    assert model_view("m", row, NOW + 1.0).state is HealthState.PROBING
    # The holder's failure after its retries cools the model, counting one failure.
    cooled = model_failure(row, fail(K.TRANSIENT), NOW + 2.0, NOW + 2.0, CFG)
    assert (cooled.state, cooled.count) == (HealthState.COOLING, 1)
    assert model_suspect(cooled, fail(K.TRANSIENT), NOW + 3.0, lease=30.0) is None
    assert model_suspect(row, fail(K.TRANSIENT), NOW + 3.0, lease=30.0) is None


def test_model_view_reads_probing_once_cooling_ends() -> None:
    row = model_failure(HEALTHY, fail(K.RATE_LIMIT), NOW, NOW, CFG)
    view = model_view("openai/gpt-4o", row, NOW + 10.0)
    assert view.state is HealthState.COOLING
    assert view.cooldown_remaining == 20.0
    assert (view.consecutive_failures, view.last_error) == (1, "rate_limit happened")
    assert model_view("openai/gpt-4o", row, NOW + 30.0).state is HealthState.PROBING
    healthy = model_view("m", HEALTHY, NOW)
    assert (healthy.state, healthy.cooldown_remaining, healthy.consecutive_failures) == (
        HealthState.HEALTHY,
        None,
        0,
    )


def test_model_expiry_on_the_default_clock() -> None:
    with freeze_time("2026-03-01 12:00:00") as frozen:
        clock = SystemClock()
        row = model_failure(HEALTHY, fail(K.TRANSIENT), clock.now(), clock.now(), CFG)
        frozen.tick(9.5)
        assert model_view("m", row, clock.now()).state is HealthState.COOLING
        frozen.tick(0.5)
        assert model_view("m", row, clock.now()).state is HealthState.PROBING


def test_model_kinds() -> None:
    assert {K.RATE_LIMIT, K.TRANSIENT, K.AUTH, K.BALANCE, K.MODEL_MISSING} == MODEL_KINDS
    assert {K.AUTH, K.BALANCE, K.MODEL_MISSING} == DISABLING_KINDS
    assert set(CFG.model_base) == {str(k) for k in MODEL_KINDS}


def test_model_failure_does_not_touch_the_input_row() -> None:
    row = model_failure(HEALTHY, fail(K.TRANSIENT), NOW, NOW, CFG)
    assert HEALTHY.state is HealthState.HEALTHY
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        row.count = 5  # type: ignore[misc]


# --- in-place retries ------------------------------------------------------------------------


def test_retry_delay_is_full_jitter_growing_to_max_delay() -> None:
    retry = RetryConfig(attempts=8, min_delay=0.5, max_delay=8.0)
    ceilings = [retry_delay(retry, tries, Top()) for tries in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(retry_delay(retry, tries, Bottom()) == 0.0 for tries in range(1, 8))
    rng = random.Random(3)
    draws = [retry_delay(retry, 2, rng) for _ in range(500)]
    assert 0.0 <= min(draws) < 0.1
    assert 0.9 < max(draws) <= 1.0


def test_retry_delay_never_overflows() -> None:
    retry = RetryConfig(attempts=20, min_delay=1.0, max_delay=8.0)
    assert retry_delay(retry, 10_000, Top()) == 8.0
