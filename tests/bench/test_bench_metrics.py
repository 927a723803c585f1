"""Chaos metrics on small hand-made histories."""

from __future__ import annotations

import pytest
from switchover.bench._load import Record
from switchover.bench._metrics import (
    Call,
    compute,
    detect_recover,
    onset_calls,
    percentile,
    retry_after_error,
    wasted_calls,
)
from switchover.bench._scenario import parse_scenario

SCENARIO = """
name = "t"
duration = 100
speedup = 1  # the 20 ms reaction allowance stays 0.02 story seconds
chain = ["openai/gpt-4o", "claude/claude-sonnet-4-5"]

[[faults]]
target = "openai@main"
kind = "{kind}"
start = 20
end = 60
{extra}
"""


def scenario(kind: str = "auth", extra: str = "") -> object:
    return parse_scenario(SCENARIO.format(kind=kind, extra=extra))


def call(at: float, target: str = "openai/gpt-4o@main", kind: str = "ok", request: int = 0) -> Call:
    provider, rest = target.split("/", 1)
    model, profile = rest.split("@")
    return Call(at=at, provider=provider, model=model, profile=profile, request=request, kind=kind)


def record(id: int, at: float, *, ok: bool = True, retry_after: float | None = None) -> Record:
    return Record(
        id=id,
        at=at,
        long=False,
        start=at,
        first=at + 0.5 if ok else None,
        end=at + 1.0,
        served="x" if ok else None,
        error=None if ok else "chain exhausted",
        retry_after=retry_after,
    )


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)


def test_calls_before_the_fault_is_known_are_not_wasted() -> None:
    s = scenario()
    calls = [call(10), call(21, kind="auth"), call(21, kind="auth"), call(40, kind="auth")]
    # The second call at 21 started with the first: nothing was known yet.
    assert wasted_calls(s, calls) == []


def test_retries_and_early_calls_are_wasted_but_one_probe_per_gap_is_not() -> None:
    s = scenario()
    revealing = call(21, kind="auth")
    retry = call(21.01, kind="auth")  # the same request: it knew at once
    probe = call(26.5, kind="auth")  # 5.5 s after: an allowed probe
    too_soon = call(28, kind="auth")  # 1.5 s after the probe
    second_probe = call(32, kind="auth")
    other_key = call(22, target="openai/gpt-4o@backup")
    after = call(61)
    wasted = wasted_calls(s, [revealing, retry, probe, too_soon, second_probe, other_key, after])
    assert wasted == [retry, too_soon]


def test_onset_counts_the_calls_into_a_window_but_not_its_allowed_probes() -> None:
    s = scenario()
    revealing = call(21, kind="auth", request=1)
    concurrent = call(21.01, kind="auth", request=2)  # past the gate before the news came
    retry = call(21.01, kind="auth", request=1)  # wasted: its request knew
    probe = call(26.5, kind="auth", request=3)  # allowed: not counted
    # Bound: the revealing request's 3 tries (retry_attempts) + 1 caller past the gate.
    assert onset_calls(s, [revealing, concurrent, retry, probe, call(61)]) == (3.0, 4.0, True)
    assert onset_calls(s, [call(10), call(61)]) == (None, None, None)  # never hit


def test_onset_over_its_bound_when_callers_arrive_after_the_failure_was_known() -> None:
    s = scenario()
    revealing = call(21, kind="auth", request=1)
    late = [call(21.5 + i / 10, kind="auth", request=2 + i) for i in range(4)]
    # No one else was past the gate: the bound is the revealing request's 3 tries.
    assert onset_calls(s, [revealing, *late]) == (5.0, 3.0, False)


def test_onset_bound_counts_each_concurrent_caller_once() -> None:
    s = scenario("hang")  # a hang is known only after the 10 s first-token timeout
    revealing = call(21, kind="hang", request=1)
    other = call(22, kind="hang", request=2)
    other_again = call(23, kind="hang", request=2)
    third = call(24, kind="hang", request=3)
    assert onset_calls(s, [revealing, other, other_again]) == (3.0, 4.0, True)
    assert onset_calls(s, [revealing, other, other_again, third]) == (4.0, 5.0, True)


def test_retry_after_widens_the_probe_gap() -> None:
    s = scenario("rate_limit", "retry_after = 20")
    calls = [call(21, kind="rate_limit"), call(30, kind="rate_limit"), call(44, kind="rate_limit")]
    assert wasted_calls(s, calls) == [calls[1]]


def test_a_hang_is_known_only_once_its_timeout_ran_out() -> None:
    s = parse_scenario(SCENARIO.format(kind="hang", extra="").replace("openai@main", "openai"))
    hung = [
        call(21, kind="hang"),
        call(25, kind="hang", request=1),
        call(31.5, kind="hang", request=2),
    ]
    # first_token_timeout is 10 s: known at 31; the call at 25 was before, the one at 31.5 is
    # within the 5 s gap after that.
    assert wasted_calls(s, hung) == [hung[2]]


def test_soft_faults_waste_nothing() -> None:
    s = scenario("server_error", "share = 0.5")
    assert wasted_calls(s, [call(21, kind="server_error"), call(21.1, kind="server_error")]) == []


def test_detection_and_recovery() -> None:
    s = scenario()
    records = [record(0, 21), record(1, 24), record(2, 61), record(3, 65)]
    calls = [
        call(21, kind="auth", request=0),
        call(21, target="openai/gpt-4o@backup", request=0),
        call(24, target="openai/gpt-4o@backup", request=1),
        call(61, target="openai/gpt-4o@backup", request=2),
        call(65, request=3),
    ]
    detect, recover, never = detect_recover(s, records, calls)
    assert detect == pytest.approx(4.0)  # request 1, sent at 24, avoided main
    assert recover == pytest.approx(5.0)  # request 3, sent at 65, was served by main
    assert never == 0


def test_never_recovered() -> None:
    s = scenario()
    records = [record(0, 61)]
    calls = [call(61, target="openai/gpt-4o@backup", request=0)]
    assert detect_recover(s, records, calls) == (None, None, 1)


def test_retry_after_error_compares_the_hint_with_the_next_success() -> None:
    records = [record(0, 10, ok=False, retry_after=5.0), record(1, 20)]
    # failed at 11, next served request sent at 20: waited 9 s, the hint said 5 s.
    assert retry_after_error(records) == pytest.approx(-4.0)
    assert retry_after_error([record(0, 10)]) is None


def test_compute_adds_it_up() -> None:
    s = scenario()
    records = [record(0, 10), record(1, 21, ok=False), record(2, 30)]
    calls = [
        call(10, request=0),
        call(21, kind="auth", request=1),
        call(21.5, kind="auth", request=1),
    ]
    m = compute(s, records, calls)
    assert m.requests == 3
    assert m.success == pytest.approx(200 / 3)
    assert m.p50 == pytest.approx(1.0)
    assert m.attempts == pytest.approx(1.0)
    assert m.wasted == 1
    assert m.errors == {"chain exhausted": 1}
    assert m.throughput == pytest.approx(0.02)
    assert m.to_dict()["wasted"] == 1
