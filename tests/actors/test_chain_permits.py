"""Permits a walk takes are given back on every way out of a chain entry, and they last as
long as the walk that holds them."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from fleet import live, request, small_config
from switchover import Attempt, ChainExhausted, Runtime
from switchover.actors._chain import _Walk
from switchover.testing import Fail, FakeClock, ScriptedProvider

RATE_LIMITED = Fail(429, {"error": {"code": "rate_limit_exceeded", "message": "slow down"}})
MISSING = Fail(404, {"error": {"code": "model_not_found", "message": "gone"}})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scripted() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def rt(clock: FakeClock, scripted: ScriptedProvider) -> Iterator[Runtime]:
    with Runtime(
        small_config(), providers={"a": scripted}, clock=clock, rng=random.Random(2)
    ) as runtime:
        yield runtime


def test_a_key_permit_is_released_when_the_walk_leaves_without_calling(
    rt: Runtime, scripted: ScriptedProvider, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rt.config.providers[0].profiles["p0"]
    scripted.script("m", RATE_LIMITED, key=key)
    assert rt.complete(request("a/m")).served_by.profile == "p1"  # p0 cools down
    live(rt, "profile:a/p0")  # ...once its actor has handled the 429
    scripted.script("m", ScriptedProvider().default, key=key)
    clock.advance(60.0)  # p0's cooldown is over: the next walk must take a permit for it

    # The walk takes p0's permit, then finds the model cooled by another request.
    monkeypatch.setattr(_Walk, "_model_open", lambda *args, **kwargs: False)
    with pytest.raises(ChainExhausted):
        rt.complete(request("a/m"))
    monkeypatch.undo()

    # Had the permit leaked, p0 would read "probe in flight" and p1 would serve.
    assert rt.complete(request("a/m")).served_by.profile == "p0"


def test_a_probe_lasts_until_its_request_deadline_not_a_fixed_lease(
    rt: Runtime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    others: list[tuple[Attempt, ...]] = []
    probes: list[str] = []

    def rule(call: object) -> Fail:
        if probes == ["a/gone"]:  # the probe's own call, still running 100 s later
            probes.append("another request")
            clock.advance(100.0)
            try:
                rt.complete(request("a/gone"))
            except ChainExhausted as error:
                others.append(error.attempts)
        return MISSING

    scripted.rule(rule)
    with pytest.raises(ChainExhausted):
        rt.complete(request("a/gone"))  # a/gone cools down (60 s for model_missing)
    live(rt, "health")  # ...once the health actor has handled it
    clock.advance(61.0)

    # A request with a long timeout probes; its probe must hold well past
    # config.request_timeout (30 s here) counted from the grant.
    probes.append("a/gone")
    with pytest.raises(ChainExhausted):
        rt.complete(request("a/gone", timeout=600.0))

    assert [[a.message for a in attempts] for attempts in others] == [["model probe in flight"]]
