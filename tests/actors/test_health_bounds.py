"""Issue 15 item 8: the health table is bounded: rows of models the configuration does not
name expire once healthy or long past their cooldown, the stalest are evicted beyond a
cap, and reset() drops them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import support
from hostile import HostileProvider, Raise
from switchover import ChainExhausted, ProviderFailure, Request, RetryConfig, Runtime
from switchover._core._classify import Failure
from switchover._core._vocab import ErrorKind
from switchover.actors import _health
from switchover.testing import FakeClock

pytestmark = pytest.mark.timeout(120)

HI = ({"role": "user", "content": "hi"},)
FALLBACK = "claude/claude-sonnet-4-5"


def _down() -> ProviderFailure:
    return ProviderFailure(Failure(kind=ErrorKind.TRANSIENT, message="down"))


@pytest.fixture
def failing(clock: FakeClock) -> Iterator[tuple[Runtime, HostileProvider]]:
    config = support.make_config(
        retry=RetryConfig(attempts=1), fallbacks=(FALLBACK,), request_timeout=10.0
    )
    hostile = HostileProvider(lambda call: Raise(_down, "open") if call.model != "good" else None)
    rt = Runtime(config, providers={p.name: hostile for p in config.providers}, clock=clock)
    with rt:
        yield rt, hostile


def _fail(rt: Runtime, model: str) -> None:
    with pytest.raises(ChainExhausted):
        rt.complete(Request(model=model, messages=HI))


def _unconfigured(rt: Runtime) -> set[str]:
    support.flush(rt)
    return set(rt.health()) - {FALLBACK, "openai/gpt-4o-mini"}


def test_reset_drops_the_rows_of_unconfigured_models(failing: tuple[Runtime, object]) -> None:
    rt, _ = failing
    for index in range(5):
        _fail(rt, f"openai/made-up-{index}")
    assert len(_unconfigured(rt)) == 5
    rt.reset()
    assert _unconfigured(rt) == set()
    assert FALLBACK in rt.health()  # configured models are always listed


def test_a_row_goes_once_its_model_is_healthy(
    failing: tuple[Runtime, HostileProvider], clock: FakeClock
) -> None:
    rt, hostile = failing
    _fail(rt, "openai/flaky")
    assert _unconfigured(rt) == {"openai/flaky"}
    clock.advance(3600)
    hostile.plan = lambda call: None
    assert rt.complete(Request(model="openai/flaky", messages=HI)).text == "hello"
    assert _unconfigured(rt) == set()


def test_a_row_long_past_its_cooldown_expires(
    failing: tuple[Runtime, object], clock: FakeClock
) -> None:
    rt, _ = failing
    _fail(rt, "openai/once")
    clock.advance(10.0 + 3600.0 + 1)  # the cooldown, then the longest cooldown
    _fail(rt, "openai/other")  # any message lets the health actor sweep
    assert _unconfigured(rt) == {"openai/other"}


def test_the_table_is_capped_evicting_the_stalest(
    failing: tuple[Runtime, object], monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    rt, _ = failing
    monkeypatch.setattr(_health, "MAX_ROWS", 20)
    for index in range(50):
        _fail(rt, f"openai/m{index}")
        clock.advance(0.01)
    rows = _unconfigured(rt)
    assert len(rows) == 20
    assert rows == {f"openai/m{index}" for index in range(30, 50)}
    assert FALLBACK in rt.health()
