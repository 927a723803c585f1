"""The history checker: each rule on hand-made runs (broken and sound), and what a real
runtime records."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from fleet import request, small_config
from switchover import ChainExhausted, HealthState, RequestRejected, Runtime, StreamInterrupted
from switchover._core._observe import (
    AttemptRecord,
    KeyChange,
    ModelChange,
    RequestClosed,
    RequestOpened,
)
from switchover.testing import Cut, Fail, FakeClock, Reply, ScriptedProvider
from switchover.testing._history import RULES, History, Record, Violation, check

CONFIG = small_config(profiles=2)  # provider a: p0, p1; retry.attempts 2 -> 5 calls a model


def opened(request_id: int = 1, *chain: str, deadline: float = 100.0) -> RequestOpened:
    return RequestOpened(request_id, chain or ("a/m",), deadline, at=0.0)


def closed(request_id: int = 1, outcome: Any = "served") -> RequestClosed:
    return RequestClosed(request_id, outcome, at=99.0)


def call(
    at: float,
    *,
    request_id: int = 1,
    model: str = "a/m",
    profile: str = "p0",
    probe: bool = False,
    outcome: Any = "error",
    took: float = 0.01,
    start: float | None = None,
    first_at: float | None = None,
) -> AttemptRecord:
    return AttemptRecord(
        request_id=request_id,
        model=model,
        provider=model.split("/", maxsplit=1)[0],
        profile=profile,
        outcome=outcome,
        kind=None,
        probe=probe,
        gate_at=at,
        start=at + 0.001 if start is None else start,
        end=at + took,
        first_at=first_at,
    )


def cooldown(
    until: float | None,
    before: float,
    after: float,
    profile: str = "p0",
    *,
    model: str | None = None,
    reset: bool = False,
) -> KeyChange:
    return KeyChange(
        "a", profile, until, before, after, model=model, cause="reset" if reset else None
    )


def health(
    state: HealthState,
    until: float | None,
    before: float,
    after: float,
    model: str = "a/m",
    *,
    reset: bool = False,
    cause: Any = None,
) -> ModelChange:
    return ModelChange(model, state, until, before, after, cause="reset" if reset else cause)


COOLING, DISABLED, HEALTHY = HealthState.COOLING, HealthState.DISABLED, HealthState.HEALTHY
PROBING = HealthState.PROBING


def one_request(*records: Record, chain: tuple[str, ...] = ()) -> list[Record]:
    return [opened(1, *chain), *records, closed(1)]


CASES = [
    # (records, the rules they break)
    pytest.param(one_request(call(1.0), call(2.0, profile="p1")), [], id="sound"),
    # terminal
    pytest.param([opened(1), call(1.0)], ["terminal"], id="never-closed"),
    pytest.param([opened(1), closed(1), closed(1, "stopped")], ["terminal"], id="closed-twice"),
    pytest.param([closed(7)], ["terminal"], id="closed-never-opened"),
    pytest.param([opened(1), opened(1), closed(1)], ["terminal"], id="opened-twice"),
    pytest.param([call(1.0, request_id=3)], ["terminal"], id="attempt-of-no-request"),
    # key_cooldown
    pytest.param(
        one_request(cooldown(20.0, 9.0, 10.0), call(11.0)), ["key_cooldown"], id="key-cooling"
    ),
    pytest.param(
        one_request(cooldown(20.0, 9.0, 10.0), call(11.0, profile="p1")),
        [],
        id="other-key-free",
    ),
    pytest.param(
        one_request(cooldown(20.0, 9.0, 10.0), call(9.5)),
        [],
        id="cooldown-published-while-reading",
    ),
    pytest.param(one_request(cooldown(20.0, 9.0, 10.0), call(10.0)), [], id="tie-is-not-proof"),
    pytest.param(one_request(cooldown(20.0, 9.0, 10.0), call(20.0)), [], id="key-expired"),
    pytest.param(
        one_request(
            cooldown(20.0, 9.0, 10.0),
            cooldown(None, 12.0, 12.5, reset=True),
            call(11.9, start=12.1),
        ),
        [],
        id="reset-may-have-been-seen",
    ),
    pytest.param(
        one_request(cooldown(20.0, 9.0, 10.0), cooldown(None, 12.0, 12.5), call(11.0, took=5)),
        ["key_cooldown"],
        id="reset-came-too-late",
    ),
    pytest.param(
        one_request(cooldown(20.0, 9.0, 10.0), cooldown(30.0, 15.0, 15.5), call(16.0)),
        ["key_cooldown"],
        id="cooldown-extended",
    ),
    # model_gate
    pytest.param(
        one_request(health(COOLING, 20.0, 9.0, 10.0), call(11.0)),
        ["model_gate"],
        id="model-cooling",
    ),
    pytest.param(
        one_request(health(COOLING, 20.0, 9.0, 10.0), call(11.0, probe=True)),
        ["model_gate"],
        id="probe-before-the-wait-ended",
    ),
    pytest.param(
        one_request(health(COOLING, 20.0, 9.0, 10.0), call(21.0)),
        ["model_gate"],
        id="cooldown-over-but-no-probe",
    ),
    pytest.param(
        one_request(health(COOLING, 20.0, 9.0, 10.0), call(21.0, probe=True)),
        [],
        id="granted-probe",
    ),
    pytest.param(
        one_request(health(DISABLED, 50.0, 9.0, 10.0), call(30.0)),
        ["model_gate"],
        id="model-disabled",
    ),
    pytest.param(
        one_request(
            health(COOLING, 20.0, 9.0, 10.0),
            health(HEALTHY, None, 12.0, 12.1, reset=True),
            call(13),
        ),
        [],
        id="healthy-again",
    ),
    # evidence: a heal inside a cooldown must come from a call that began after it
    pytest.param(
        one_request(
            call(5.0, outcome="ok", took=6.9, profile="p1"),  # a long stream begun before
            health(COOLING, 20.0, 9.0, 10.0),
            health(HEALTHY, None, 12.0, 12.1),  # healed by that old news
            call(13),
        ),
        ["evidence"],
        id="old-news-healed-a-model",
    ),
    pytest.param(
        one_request(
            call(9.5, outcome="ok", took=2.0, profile="p1"),  # gates read while it cooled
            health(COOLING, 20.0, 9.0, 10.0),
            health(HEALTHY, None, 12.0, 12.1),
            call(13),
        ),
        [],
        id="a-call-that-may-have-missed-the-cooling-heals",
    ),
    pytest.param(
        one_request(
            call(5.0, outcome="ok", took=6.9, profile="p1"),
            health(COOLING, 20.0, 9.0, 10.0),
            health(HEALTHY, None, 12.0, 12.1),
            call(21.0),
        ),
        [],
        id="after-the-cooldown-anything-goes",
    ),
    pytest.param(
        one_request(
            call(5.0, outcome="ok", took=6.9, profile="p1"),  # a long stream begun before
            health(PROBING, 9.0, 9.0, 9.1),  # a request is retrying the model in place
            health(HEALTHY, None, 12.0, 12.1),  # healed by that old news
            call(13, model="a/m"),
            call(14, model="a/n"),
            chain=("a/m", "a/n"),
        ),
        ["evidence"],
        id="old-news-ended-a-probation",
    ),
    pytest.param(
        one_request(
            health(PROBING, 9.0, 9.0, 9.1),
            call(10.0, model="a/m"),  # nothing after a/m in its chain: it may call
        ),
        [],
        id="a-last-entry-may-call-a-model-on-probation",
    ),
    pytest.param(
        one_request(
            health(PROBING, 9.0, 9.0, 9.1),
            call(9.5, outcome="ok", probe=True, took=2.0),  # the holder's retry succeeded
            health(HEALTHY, None, 11.6, 11.7),
            call(12.0, model="a/m", profile="p1"),
            call(13.0, model="a/n"),
            chain=("a/m", "a/n"),
        ),
        [],
        id="the-holder-ends-the-probation",
    ),
    pytest.param(
        [
            # Probation begun at 10; its holder's retry committed (the model is healthy for
            # everyone at 10.7) and was cut later: the calls after the commit are sound.
            *one_request(call(10.5, probe=True, took=5.0, first_at=10.6), chain=("a/m", "a/n")),
            health(PROBING, 10.0, 10.0, 10.01, cause="suspect"),
            health(HEALTHY, None, 10.7, 10.71, cause="commit"),
            opened(2, "a/m", "a/n"),
            call(11.0, request_id=2, profile="p1", outcome="ok"),
            closed(2),
        ],
        [],
        id="a-probation-ends-at-its-probes-commit",
    ),
    pytest.param(
        [
            # The same heal with no committed probe behind it proves nothing.
            *one_request(call(10.5, probe=True, took=5.0), chain=("a/m", "a/n")),
            health(PROBING, 10.0, 10.0, 10.01, cause="suspect"),
            health(HEALTHY, None, 10.7, 10.71, cause="commit"),
            opened(2, "a/m", "a/n"),
            call(11.0, request_id=2, profile="p1", outcome="ok"),
            closed(2),
        ],
        ["evidence"],
        id="a-commit-heal-without-a-committed-probe",
    ),
    pytest.param(
        [
            # A probation nobody probed (its holder gave the probe back without a call)
            # is forgotten when the health table expires the row: the model is healthy.
            health(PROBING, 10.0, 10.0, 10.01, cause="suspect"),
            health(HEALTHY, None, 12.0, 12.01, cause="forgotten"),
            *one_request(call(12.5, outcome="ok"), chain=("a/m", "a/n")),
        ],
        [],
        id="a-forgotten-probation-ends",
    ),
    pytest.param(
        [
            # The same calls with no expiry in between: still on probation.
            health(PROBING, 10.0, 10.0, 10.01, cause="suspect"),
            health(HEALTHY, None, 12.0, 12.01, cause="success"),
            *one_request(call(12.5, outcome="ok"), chain=("a/m", "a/n")),
        ],
        ["evidence"],
        id="an-unexplained-heal-of-a-probation",
    ),
    pytest.param(
        one_request(
            call(5.0, outcome="ok", took=6.9),
            cooldown(20.0, 9.0, 10.0),
            cooldown(None, 12.0, 12.5),
            call(13.0),
        ),
        ["evidence"],
        id="old-news-healed-a-key",
    ),
    pytest.param(
        one_request(
            cooldown(20.0, 9.0, 10.0, model="a/n"),
            call(11.0),
            call(12.0, model="a/n", profile="p1"),
            chain=("a/m", "a/n"),
        ),
        [],
        id="a-rate-limit-cools-a-key-for-one-model",
    ),
    pytest.param(
        one_request(cooldown(20.0, 9.0, 10.0, model="a/m"), call(11.0)),
        ["key_cooldown"],
        id="per-model-rate-limit",
    ),
    pytest.param(
        one_request(health(COOLING, 20.0, 9.0, 10.0, model="a/n"), call(11.0)),
        [],
        id="other-model-cooling",
    ),
    # single_probe
    pytest.param(
        [
            *one_request(call(21.0, probe=True, took=2.0)),
            opened(2),
            call(22.0, request_id=2, probe=True, profile="p1"),
            closed(2),
        ],
        ["single_probe"],
        id="two-probes-at-once",
    ),
    pytest.param(
        [
            *one_request(call(21.0, probe=True, took=2.0)),
            opened(2),
            call(23.5, request_id=2, probe=True, profile="p1"),
            closed(2),
        ],
        [],
        id="probes-one-after-another",
    ),
    pytest.param(
        [
            # The first probe committed at 21.3 and streams on; the model cooled again
            # (another request's failure) and its next probe came while the first streamed.
            *one_request(call(21.0, probe=True, took=9.0, first_at=21.2, outcome="ok")),
            health(HEALTHY, None, 21.3, 21.31, cause="commit"),
            health(COOLING, 22.5, 21.5, 21.51),
            opened(2),
            call(23.0, request_id=2, probe=True, profile="p1"),
            closed(2),
        ],
        [],
        id="a-probe-ends-at-its-commit",
    ),
    pytest.param(
        [
            *one_request(call(21.0, probe=True, took=9.0, first_at=24.0, outcome="ok")),
            health(HEALTHY, None, 24.1, 24.11, cause="commit"),
            opened(2),
            call(22.0, request_id=2, probe=True, profile="p1"),
            closed(2),
        ],
        ["single_probe"],
        id="a-second-probe-before-the-first-committed",
    ),
    # chain_order
    pytest.param(
        one_request(call(1.0, model="a/n"), call(2.0), chain=("a/m", "a/n")),
        ["chain_order"],
        id="walked-back",
    ),
    pytest.param(
        one_request(call(1.0, outcome="skipped"), call(2.0, model="a/n"), chain=("a/m", "a/n")),
        [],
        id="skip-then-next",
    ),
    pytest.param(one_request(call(1.0, model="a/x")), ["chain_order"], id="outside-the-chain"),
    # attempt_bound
    pytest.param(one_request(*(call(float(i)) for i in range(5))), [], id="calls-at-the-bound"),
    pytest.param(
        one_request(*(call(float(i)) for i in range(6))), ["attempt_bound"], id="too-many-calls"
    ),
    pytest.param(
        one_request(*(call(float(i), outcome="skipped") for i in range(9))),
        [],
        id="skips-are-not-calls",
    ),
    # deadline
    pytest.param(
        [opened(1, deadline=5.0), call(4.0, took=3.0), closed(1)], [], id="ends-after-deadline"
    ),
    pytest.param(
        [opened(1, deadline=5.0), call(4.999, start=5.0), closed(1)],
        ["deadline"],
        id="starts-at-deadline",
    ),
]


@pytest.mark.parametrize(("records", "broken"), CASES)
def test_each_rule(records: list[Record], broken: list[str]) -> None:
    violations = check(records, CONFIG)
    assert sorted({v.rule for v in violations}) == broken, violations
    assert all(v.rule in RULES for v in violations)


def test_every_rule_has_a_case_that_breaks_it() -> None:
    broken = {rule for param in CASES for rule in param.values[1]}  # type: ignore[attr-defined]
    assert broken == set(RULES)


def test_violations_are_data_and_assert_valid_lists_them() -> None:
    history = History([opened(1), cooldown(20.0, 9.0, 10.0), call(11.0), call(12.0)])
    violations = history.check(CONFIG)
    assert violations == (
        Violation("terminal", 1, "0 terminal outcomes (none), not 1"),
        Violation(
            "key_cooldown", 1, "called a/p0 at 11.000000, inside its cooldown until 20.000000"
        ),
        Violation(
            "key_cooldown", 1, "called a/p0 at 12.000000, inside its cooldown until 20.000000"
        ),
    )
    with pytest.raises(AssertionError, match=r"3 history violations:\n\[terminal\] request 1"):
        history.assert_valid(CONFIG)
    with pytest.raises(AssertionError, match=r"and 2 more"):
        history.assert_valid(CONFIG, show=1)
    assert len(history) == 4
    assert history.of_type(KeyChange) == [cooldown(20.0, 9.0, 10.0)]


# --- what a runtime records -----------------------------------------------------------------


@pytest.fixture
def recorded() -> Iterator[tuple[Runtime, ScriptedProvider, History]]:
    scripted, history = ScriptedProvider(), History()
    config = small_config(profiles=2)
    with Runtime(
        config,
        providers={"a": scripted},
        observers=[history],
        clock=FakeClock(),
        rng=random.Random(1),
    ) as rt:
        yield rt, scripted, history
    history.assert_valid(config)


def outcomes(history: History) -> list[str]:
    return [r.outcome for r in history.records if isinstance(r, RequestClosed)]


def test_a_served_request_is_recorded_call_by_call(
    recorded: tuple[Runtime, ScriptedProvider, History],
) -> None:
    rt, scripted, history = recorded
    key = rt.config.providers[0].profiles["p0"]
    scripted.script("m", Fail(429, {"error": {"code": "rate_limit_exceeded"}}), key=key)
    rt.complete(request("a/m"))
    rt.stop()  # the actors handle what they were told before they stop
    records = history.records
    assert isinstance(records[0], RequestOpened)
    assert records[0].chain == ("a/m",)
    calls = [r for r in records if isinstance(r, AttemptRecord)]
    assert [(c.profile, c.outcome) for c in calls] == [("p0", "error"), ("p1", "ok")]
    assert all(c.gate_at <= c.start <= c.end for c in calls)
    assert outcomes(history) == ["served"]
    assert any(isinstance(r, KeyChange) and r.profile == "p0" for r in records)


def test_every_way_a_request_ends_is_recorded_once(
    recorded: tuple[Runtime, ScriptedProvider, History],
) -> None:
    rt, scripted, history = recorded
    scripted.script("gone", Fail(404, {"error": {"code": "model_not_found"}}))
    with pytest.raises(ChainExhausted):
        rt.complete(request("a/gone"))
    scripted.script("long", Fail(400, {"error": {"code": "context_length_exceeded"}}))
    with pytest.raises(RequestRejected):
        rt.complete(request("a/long"))
    scripted.script("cut", Cut(after=1))
    with pytest.raises(StreamInterrupted):
        rt.complete(request("a/cut"))
    scripted.script("two", Reply("one two", chunks=2))
    with rt.stream(request("a/two")) as stream:
        next(iter(stream))  # then leave early
    rt.stop()
    assert outcomes(history) == ["exhausted", "rejected", "interrupted", "released"]
    models = [r for r in history.records if isinstance(r, ModelChange)]
    assert [(m.model, m.state) for m in models] == [
        ("a/gone", COOLING),
        ("a/cut", COOLING),
    ]
