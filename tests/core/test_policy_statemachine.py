"""The cooldown and health transitions of runtime/_policy.py, driven at random against a
small reference model written from DESIGN.md's tables ("Time, cooldown and health").

The reference is deliberately naive: plain fields and the sentences of the design, no
shared code with the policy module. Every outcome comes from a call that began some time
ago (``ago``): one that began before the target last changed is old news and must leave
it as it is, except the final outcome of the probe whose commit made it callable again.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from switchover import CooldownConfig, ErrorKind, HealthState
from switchover._core._classify import Failure
from switchover._core._policy import (
    CLEAR,
    HEALTHY,
    KeyState,
    key_commit,
    key_failure,
    key_gate,
    key_grant,
    key_release,
    key_reset,
    key_success,
    model_commit,
    model_failure,
    model_gate,
    model_grant,
    model_release,
    model_success,
    model_view,
)

CFG = CooldownConfig(
    profile_min=1.0,
    profile_max=40.0,
    model_base={
        "rate_limit": 3.0,
        "transient": 1.0,
        "auth": 6.0,
        "balance": 6.0,
        "model_missing": 6.0,
    },
    model_max=50.0,
    disable_after=3,
    disabled_probe_interval=30.0,
)
LEASE = 10.0
KEY_KINDS = {ErrorKind.RATE_LIMIT, ErrorKind.AUTH, ErrorKind.BALANCE}
MODEL_KINDS = [
    ErrorKind.RATE_LIMIT,
    ErrorKind.TRANSIENT,
    ErrorKind.AUTH,
    ErrorKind.BALANCE,
    ErrorKind.MODEL_MISSING,
]
DISABLING = {ErrorKind.AUTH, ErrorKind.BALANCE, ErrorKind.MODEL_MISSING}

RETRY_AFTER = st.one_of(st.none(), st.floats(min_value=0, max_value=100))
#: How long before now the reporting call began.
AGO = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=60))
M = "p/m"


class RefKey:
    """One cooldown of a key (the whole key's, or one model's rate limit), as DESIGN.md
    describes it."""

    def __init__(self, changed: float = -math.inf) -> None:
        self.n = 0  # consecutive failures: survives expiry, reset only by success
        self.until: float | None = None
        self.lease: float | None = None
        self.lease_since: float | None = None  # when the probe's lease was granted
        self.trial: float | None = None  # that grant, once the probe committed
        self.changed = changed  # when it last cooled or healed

    def old(self, began: float) -> bool:
        # A call that began before the last change; the committed probe's outcome is news.
        return began < self.changed and not (self.trial is not None and began >= self.trial)

    def succeed(self, began: float, now: float) -> None:
        if self.old(began):
            return
        if self.until is not None:
            self.changed = now
        self.n, self.until, self.lease, self.trial = 0, None, None, None

    def commit(self, began: float, now: float) -> None:
        """The probe's first content event: the cooldown is over, its count kept."""
        if self.until is None or now < self.until or self.lease_since is None:
            return
        if began < self.lease_since:
            return  # not the probe
        self.until, self.lease, self.trial, self.changed = None, None, self.lease_since, now
        self.lease_since = None

    def fail(
        self, kind: ErrorKind, retry_after: float | None, jitter: float, began: float, now: float
    ) -> None:
        if self.old(began):
            return  # in flight when the key changed: the same episode
        self.lease, self.trial = None, None
        if kind not in KEY_KINDS:
            # Not the key's fault. Where DESIGN.md is silent, the foundation's choice: a call
            # that got past the key proves a key whose cooldown ended is back in service.
            if self.until is not None and now >= self.until:
                self.until, self.changed = None, now
            return
        self.n += 1
        if kind is ErrorKind.BALANCE:
            seconds = CFG.profile_max  # a balance failure: profile_max at once
        else:
            grown = CFG.profile_min * 2 ** (self.n - 1) * jitter
            seconds = max(grown, retry_after or 0.0)
            seconds = min(max(seconds, CFG.profile_min), CFG.profile_max)  # clamp
        until = now + seconds
        # A new cooldown never shortens an existing one.
        self.until = until if self.until is None else max(self.until, until)
        self.changed = now

    def callable(self, now: float) -> bool:
        return self.until is None or now >= self.until


class RefModel:
    """A model's health row, as DESIGN.md describes it."""

    def __init__(self, changed: float = -math.inf) -> None:
        self.state = HealthState.HEALTHY
        self.until: float | None = None
        self.kind: ErrorKind | None = None
        self.count = 0
        self.lease: float | None = None
        self.lease_since: float | None = None
        self.trial: float | None = None  # the committed probe's grant, until its outcome
        self.changed = changed

    def news(self, began: float, prober: bool) -> bool:
        trial = prober and self.trial is not None and began >= self.trial
        return began >= self.changed or trial

    def old_news(self, prober: bool) -> None:
        """An old outcome changes nothing, but the probe holder's call is over: its lease
        ends."""
        if prober:
            self.lease = self.lease_since = self.trial = None

    def commit(self, began: float, now: float) -> None:
        """The probe holder's first content event: healthy for everyone, count kept."""
        if self.state is HealthState.HEALTHY or self.lease_since is None:
            return
        if began < self.lease_since:
            return  # another request holds the probe now
        if began < self.changed:
            return  # another call failed the model after the probe began: old news
        self.state, self.until, self.lease, self.changed = HealthState.HEALTHY, None, None, now
        self.trial, self.lease_since = self.lease_since, None

    def fail(
        self, kind: ErrorKind, retry_after: float | None, began: float, now: float, prober: bool
    ) -> None:
        if not self.news(began, prober):
            self.old_news(prober)
            return
        self.trial = None
        count = self.count + 1 if kind is self.kind else 1  # counts run per kind
        lease = None if prober else self.lease
        if prober:
            self.lease_since = None
        disables = kind in DISABLING and count >= CFG.disable_after
        if self.state is HealthState.DISABLED and not disables:
            # Only a reset or a probe after the interval lets traffic back.
            if prober:
                self.until = now + CFG.disabled_probe_interval
                self.changed = now
            self.lease = lease
            return
        self.kind, self.count, self.lease, self.changed = kind, count, lease, now
        if disables:
            self.state = HealthState.DISABLED
            self.until = now + CFG.disabled_probe_interval
            return
        seconds = min(
            CFG.model_max, max(CFG.model_base[str(kind)] * 2 ** (count - 1), retry_after or 0.0)
        )
        until = now + seconds
        if self.state is HealthState.COOLING and self.until is not None:
            until = max(until, self.until)
        self.state, self.until = HealthState.COOLING, until

    def heal(self, began: float, now: float) -> None:
        """A success reported by the probe holder."""
        if not self.news(began, True):
            self.old_news(True)
            return
        changed = self.changed if self.state is HealthState.HEALTHY else now
        self.__init__(changed)  # type: ignore[misc]

    def grant(self, now: float) -> bool:
        if self.state is HealthState.HEALTHY:
            return True
        assert self.until is not None
        if now < self.until:
            return False
        if self.lease is not None and now < self.lease:
            return False  # exactly one probe
        self.lease, self.lease_since = now + LEASE, now
        return True

    def shown(self, now: float) -> HealthState:
        if self.state is HealthState.COOLING and self.until is not None and now >= self.until:
            return HealthState.PROBING
        return self.state


class Policies(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.key, self.ref_whole, self.ref_limit = KeyState(), RefKey(), RefKey()
        self.row, self.ref_model = HEALTHY, RefModel()

    @rule(seconds=st.floats(min_value=0, max_value=80))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    # -- the key ---------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from(list(ErrorKind)),
        retry_after=RETRY_AFTER,
        jitter=st.floats(min_value=0.9, max_value=1.1),
        ago=AGO,
    )
    def key_fails(
        self, kind: ErrorKind, retry_after: float | None, jitter: float, ago: float
    ) -> None:
        failure = Failure(kind=kind, message=str(kind), retry_after=retry_after)
        began = self.now - ago
        self.key = key_failure(self.key, M, failure, began, self.now, cfg=CFG, jitter=jitter)
        # A rate limit cools the key for the call's model; auth and balance the whole key;
        # the other track (and every track, for other kinds) sees a call that got past it.
        other = ErrorKind.TRANSIENT
        whole_kind = kind if kind is not ErrorKind.RATE_LIMIT else other
        limit_kind = kind if kind is ErrorKind.RATE_LIMIT else other
        self.ref_whole.fail(whole_kind, retry_after, jitter, began, self.now)
        self.ref_limit.fail(limit_kind, retry_after, jitter, began, self.now)

    @rule(ago=AGO)
    def key_succeeds(self, ago: float) -> None:
        self.key = key_success(self.key, M, self.now - ago, self.now)
        self.ref_whole.succeed(self.now - ago, self.now)
        self.ref_limit.succeed(self.now - ago, self.now)

    @rule(ago=AGO)
    def the_key_probe_commits(self, ago: float) -> None:
        self.key = key_commit(self.key, M, self.now - ago, self.now)
        self.ref_whole.commit(self.now - ago, self.now)
        self.ref_limit.commit(self.now - ago, self.now)

    @rule()
    def key_is_released(self) -> None:
        self.key = key_release(self.key, M, self.now)
        for ref in (self.ref_whole, self.ref_limit):
            ref.lease = ref.lease_since = ref.trial = None

    @rule()
    def key_is_reset(self) -> None:
        self.key = key_reset(self.key)
        self.ref_whole, self.ref_limit = RefKey(), RefKey()

    @rule()
    def key_is_asked_for(self) -> None:
        self.key, granted = key_grant(self.key, M, self.now, LEASE)
        refs = [r for r in (self.ref_whole, self.ref_limit) if r.until is not None]
        expected = all(r.callable(self.now) for r in refs) and not any(
            r.lease is not None and self.now < r.lease for r in refs
        )
        if expected:
            for ref in refs:
                ref.lease, ref.lease_since = self.now + LEASE, self.now
        assert granted == expected

    @invariant()
    def key_agrees(self) -> None:
        whole, limit = self.key.whole, self.key.limits.get(M, CLEAR)
        for track, ref in ((whole, self.ref_whole), (limit, self.ref_limit)):
            assert track.failures == ref.n
            assert (track.until is None) == (ref.until is None)
            if ref.until is not None:
                assert track.until is not None
                assert math.isclose(track.until, ref.until)
        callable_ = self.ref_whole.callable(self.now) and self.ref_limit.callable(self.now)
        assert (key_gate(self.key, M, self.now) != "cooling") == callable_

    # -- the model -------------------------------------------------------------------------

    @rule(kind=st.sampled_from(MODEL_KINDS), retry_after=RETRY_AFTER, prober=st.booleans(), ago=AGO)
    def model_fails(
        self, kind: ErrorKind, retry_after: float | None, prober: bool, ago: float
    ) -> None:
        failure = Failure(kind=kind, message=str(kind), retry_after=retry_after)
        began = self.now - ago
        # Only the call that holds the live lease speaks as the prober.
        prober = prober and self.holds(began)
        self.row = model_failure(self.row, failure, began, self.now, CFG, prober=prober)
        self.ref_model.fail(kind, retry_after, began, self.now, prober)

    def holds(self, began: float) -> bool:
        since = self.row.probe_since if self.row.trial is None else self.row.trial
        return since is None or began >= since

    @rule(ago=AGO)
    def the_probe_commits(self, ago: float) -> None:
        self.row = model_commit(self.row, self.now - ago, self.now)
        self.ref_model.commit(self.now - ago, self.now)

    @rule(ago=AGO)
    def the_probe_succeeds(self, ago: float) -> None:
        began = self.now - ago
        if not self.holds(began):
            return
        self.row = model_success(self.row, began, self.now, prober=True)
        self.ref_model.heal(began, self.now)

    @precondition(lambda self: self.ref_model.lease is not None or self.ref_model.trial is not None)
    @rule()
    def the_probe_is_released(self) -> None:
        self.row = model_release(self.row, self.now)
        self.ref_model.lease = self.ref_model.lease_since = self.ref_model.trial = None

    @rule()
    def model_is_asked_for(self) -> None:
        self.row, reason = model_grant(self.row, self.now, LEASE)
        assert (reason is None) == self.ref_model.grant(self.now)

    @invariant()
    def model_agrees(self) -> None:
        ref = self.ref_model
        assert self.row.state is ref.state
        assert self.row.count == ref.count  # a healthy model counts only during a trial
        if ref.state is not HealthState.HEALTHY:
            assert self.row.kind is ref.kind
            assert self.row.until is not None
            assert ref.until is not None
            assert math.isclose(self.row.until, ref.until)
        ready = model_gate(self.row, self.now) == "ready"
        assert ready == (ref.state is HealthState.HEALTHY)
        assert model_view("m", self.row, self.now).state is ref.shown(self.now)
        assert (self.row.probe_until is not None and self.now < self.row.probe_until) == (
            ref.lease is not None and self.now < ref.lease
        )


Policies.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPolicies = Policies.TestCase
