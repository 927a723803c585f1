"""Quotas in chaos scenarios: the ``[[quotas]]`` table, the fleet's rolling window per key
and model with the provider's real 429, the oracle keeping under it, the ``rate_limited``
metric and the key-order pairs of the report."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from support import assert_scenario_refused
from switchover._cli import main
from switchover.bench import cli as chaos_cli
from switchover.bench._client import body, endpoint, headers
from switchover.bench._fleet import Fleet, FleetCall, QuotaBook, Schedule, key_for
from switchover.bench._metrics import Call, compute, onset_calls, wasted_calls
from switchover.bench._report import key_order, key_order_notes, report_dict
from switchover.bench._scenario import (
    Quota,
    ScenarioError,
    Target,
    key_order_pairs,
    load_scenario,
    parse_scenario,
)
from switchover.bench._suite import Run, ScenarioResult
from switchover.bench._systems import healthy_target
from switchover.testing import FakeClock, FakeServer

GOOD = """
name = "quota"
duration = 60
speedup = 10
chain = ["openai/gpt-4o", "claude/claude-sonnet-4-5"]

[[quotas]]
target = "openai/gpt-4o@main"
requests = 3
window = 20

[[quotas]]
target = "claude@default"
requests = 2
window = 5
"""


NO_QUOTAS = GOOD[: GOOD.index("[[quotas]]")]


# --- the table --------------------------------------------------------------------------------


def test_quotas_are_read() -> None:
    scenario = parse_scenario(GOOD)
    assert scenario.quotas == (
        Quota(target=Target("openai", "gpt-4o", "main"), requests=3, window=20.0),
        Quota(target=Target("claude", None, "default"), requests=2, window=5.0),
    )
    assert parse_scenario(NO_QUOTAS).quotas == ()


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        pytest.param(
            ("requests = 3", "requests = 0"),
            "quotas[0].requests",
            "must be a positive integer, got 0",
            id="zero-requests",
        ),
        pytest.param(
            ("requests = 3", "requests = 2.5"),
            "quotas[0].requests",
            "must be a positive integer, got 2.5",
            id="fractional-requests",
        ),
        pytest.param(
            ("requests = 3", "requests = true"),
            "quotas[0].requests",
            "must be a positive integer, got True",
            id="boolean-requests",
        ),
        pytest.param(
            ("requests = 3\n", ""), "quotas[0].requests", "is required", id="missing-requests"
        ),
        pytest.param(
            ("window = 20", "window = 0"),
            "quotas[0].window",
            "must be > 0 and <= 86400, got 0",
            id="zero-window",
        ),
        pytest.param(
            ("window = 20", "window = inf"), "quotas[0].window", "must be finite", id="inf-window"
        ),
        pytest.param(
            ("window = 20", "window = 100000"),
            "quotas[0].window",
            "<= 86400, got 100000",
            id="window-over-a-day",
        ),
        pytest.param(("window = 20\n", ""), "quotas[0].window", "is required", id="no-window"),
        pytest.param(
            ('"openai/gpt-4o@main"', '"openai/gpt-4o"'),
            "quotas[0].target",
            "must name one key ('provider[/model]@profile'), got openai/gpt-4o",
            id="no-profile",
        ),
        pytest.param(
            ('"openai/gpt-4o@main"', '"openai/gpt-4o@spare"'),
            "quotas[0].target",
            "no key profile 'spare'",
            id="unknown-profile",
        ),
        pytest.param(
            ('"openai/gpt-4o@main"', '"openai/gpt-5@main"'),
            "quotas[0].target",
            "no model 'gpt-5'",
            id="unknown-model",
        ),
        pytest.param(
            ("window = 20", "window = 20\nburst = 4"),
            "quotas[0].burst",
            "unknown key",
            id="unknown-key",
        ),
        pytest.param(
            ("window = 5", "window = -5"),
            "quotas[1].window",
            "must be > 0 and <= 86400, got -5",
            id="second-table-named",
        ),
    ],
)
def test_bad_quotas_are_named(change: tuple[str, str], field: str, problem: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    assert_scenario_refused(text, field, problem)


def test_quotas_must_be_tables() -> None:
    text = NO_QUOTAS.replace("speedup = 10", "speedup = 10\nquotas = 3")
    with pytest.raises(
        ScenarioError, match=r"quotas: must be an array of tables \(\[\[quotas\]\]\)"
    ):
        parse_scenario(text)


# --- the rolling window -------------------------------------------------------------------------


def test_a_window_admits_its_requests_then_refuses_until_the_oldest_leaves() -> None:
    quota = Quota(target=Target("openai", "gpt-4o", "main"), requests=3, window=20.0)
    book = QuotaBook([quota])
    for at in (1.0, 2.0, 4.0):
        assert book.take("openai", "gpt-4o", "main", at) is None
    assert not book.has_room("openai", "gpt-4o", "main", 5.0)
    assert book.take("openai", "gpt-4o", "main", 5.0) == (quota, 16.0)
    # A refused call does not count: the call at 1 leaves the window at 21.
    assert book.take("openai", "gpt-4o", "main", 20.5) == (quota, 0.5)
    assert book.take("openai", "gpt-4o", "main", 21.0) is None
    assert book.take("openai", "gpt-4o", "main", 21.5) == (quota, 0.5)
    # Other keys and other models have their own windows, or none.
    assert book.take("openai", "gpt-4o", "backup", 5.0) is None
    assert book.take("openai", "gpt-4o-mini", "main", 5.0) is None


def test_a_quota_without_a_model_counts_each_model_of_the_key_apart() -> None:
    quota = Quota(target=Target("openai", None, "main"), requests=1, window=10.0)
    book = QuotaBook([quota])
    assert book.take("openai", "gpt-4o", "main", 0.0) is None
    assert book.take("openai", "gpt-4o-mini", "main", 0.0) is None
    assert book.take("openai", "gpt-4o", "main", 3.0) == (quota, 7.0)


def test_slack_lengthens_every_window() -> None:
    quota = Quota(target=Target("openai", None, "main"), requests=1, window=10.0)
    book = QuotaBook([quota], slack=1.0)
    assert book.take("openai", "gpt-4o", "main", 0.0) is None
    assert book.take("openai", "gpt-4o", "main", 10.5) == (quota, 0.5)
    assert book.has_room("openai", "gpt-4o", "main", 11.0)


def _post(server: FakeServer, api: str, profile: str, model: str, provider: str) -> httpx.Response:
    url = endpoint(api, server.base_url(api))
    payload = body(api, model, [{"role": "user", "content": "[req 7] hello"}], 16)
    return httpx.post(url, json=payload, headers=headers(api, key_for(provider, profile)))


@pytest.mark.parametrize(
    ("provider", "model", "type_", "limit"),
    [
        pytest.param("openai", "gpt-4o", "rate_limit_exceeded", "Limit 3, Used 3", id="openai"),
        pytest.param(
            "claude", "claude-sonnet-4-5", "rate_limit_error", "limit of 2 requests", id="anthropic"
        ),
    ],
)
def test_the_fleet_answers_over_quota_with_the_real_429(
    provider: str, model: str, type_: str, limit: str
) -> None:
    # The scenario's rule on a loopback server whose clock only moves when told to.
    scenario = parse_scenario(GOOD)
    fleet_provider = scenario.provider(provider)
    api = fleet_provider.api
    quota = next(q for q in scenario.quotas if q.target.provider == provider)
    profile = quota.target.profile
    assert profile is not None
    clock = FakeClock()
    calls: list[FleetCall] = []
    schedule = Schedule(scenario, fleet_provider, random.Random(1), calls.append)
    schedule.arm(clock.now())
    with FakeServer(default=schedule.reply, clock=clock) as server:
        server.rule(schedule)
        statuses = []
        for _ in range(quota.requests + 1):
            statuses.append(_post(server, api, profile, model, provider).status_code)
            clock.advance(1.0 / scenario.speedup)  # one story second
        refused = _post(server, api, profile, model, provider)
        clock.advance(quota.window / scenario.speedup)
        later = _post(server, api, profile, model, provider)

    assert statuses == [200] * quota.requests + [429]
    assert refused.status_code == 429
    # The oldest call (story 0) leaves the window at `window`; the refused call came at
    # story requests + 1: Retry-After is the rest, on the run's clock.
    wait = (quota.window - (quota.requests + 1)) / scenario.speedup
    assert float(refused.headers["retry-after"]) == pytest.approx(wait, abs=1e-3)
    if api == "openai":
        assert int(refused.headers["retry-after-ms"]) == round(wait * 1000)
    else:  # Anthropic sends retry-after only
        assert "retry-after-ms" not in refused.headers
    error = refused.json()["error"]
    assert type_ in (error.get("code"), error.get("type"))
    assert limit in error["message"]
    assert later.status_code == 200
    kinds = [c.kind for c in calls]
    assert kinds == ["ok"] * quota.requests + ["quota", "quota", "ok"]
    assert {c.request_id for c in calls} == {7}


def test_the_fleet_process_counts_calls_per_key() -> None:
    # Count-based through the real fleet process: a window longer than the test.
    scenario = attrs.evolve(
        parse_scenario(GOOD),
        quotas=(Quota(target=Target("openai", None, "main"), requests=2, window=3000.0),),
    )
    with Fleet() as fleet:
        urls = fleet.start(scenario, 1)
        armed = time.monotonic()
        fleet.arm(armed)
        answers = []
        with httpx.Client() as client:
            for profile in ("main", "main", "backup", "main", "main"):
                url = endpoint("openai", urls["openai"])
                payload = body("openai", "gpt-4o", [{"role": "user", "content": "hi"}], 16)
                response = client.post(
                    url, json=payload, headers=headers("openai", key_for("openai", profile))
                )
                answers.append((profile, response.status_code, response.headers))
        calls = fleet.stop()
    assert [status for _, status, _ in answers] == [200, 200, 200, 429, 429]
    assert [c.kind for c in calls] == ["ok", "ok", "ok", "quota", "quota"]
    assert all(c.at >= armed for c in calls)
    # Retry-After: what is left of the first call's window, at most the whole window.
    wait = float(answers[3][2]["retry-after"])
    full = 3000.0 / scenario.speedup
    assert full - 5.0 < wait <= full


# --- the oracle -------------------------------------------------------------------------------


def test_the_oracle_skips_a_key_over_quota() -> None:
    scenario = load_scenario("key-order-priority")
    book = QuotaBook(scenario.quotas)
    assert healthy_target(scenario, 0.0, book) == ("openai", "gpt-4o", "main")
    for at in range(45):
        assert book.take("openai", "gpt-4o", "main", at * 0.1) is None
    assert healthy_target(scenario, 5.0, book) == ("openai", "gpt-4o", "backup")
    for at in range(45):
        assert book.take("openai", "gpt-4o", "backup", at * 0.1) is None
    assert healthy_target(scenario, 5.0, book) == ("claude", "claude-sonnet-4-5", "default")
    assert healthy_target(scenario, 25.0, book) == ("openai", "gpt-4o", "main")


# --- the metric ---------------------------------------------------------------------------------


def _call(at: float, kind: str, profile: str = "main", request: int = 0) -> Call:
    return Call(
        at=at, provider="openai", model="gpt-4o", profile=profile, request=request, kind=kind
    )


FAULTED = """
name = "t"
duration = 100
speedup = 1
chain = ["openai/gpt-4o", "claude/claude-sonnet-4-5"]

[[faults]]
target = "openai@main"
kind = "{kind}"
start = 20
end = 60

[[quotas]]
target = "openai@main"
requests = 1
window = 100
"""


def test_rate_limited_counts_quota_and_rate_limit_answers_only() -> None:
    scenario = parse_scenario(FAULTED.format(kind="rate_limit"))
    calls = [
        _call(1, "ok"),
        _call(2, "quota"),
        _call(3, "quota", request=1),
        _call(21, "rate_limit", profile="backup"),
        _call(22, "balance", profile="backup"),
        _call(23, "server_error", profile="backup"),
    ]
    assert compute(scenario, [], calls).rate_limited == 3
    assert compute(scenario, [], calls).to_dict()["rate_limited"] == 3
    assert compute(scenario, [], calls[:1]).rate_limited == 0


def test_calls_a_quota_refused_are_not_calls_into_a_fault_window() -> None:
    scenario = parse_scenario(FAULTED.format(kind="auth"))
    revealing = _call(21, "auth")
    later = [_call(22, "quota", request=1), _call(23, "quota", request=2)]
    assert wasted_calls(scenario, [revealing, *later]) == []
    assert onset_calls(scenario, [revealing, *later])[0] == 1.0
    # The same calls answered by the fault are wasted: the filter is what spares them.
    faulted = [attrs.evolve(c, kind="auth") for c in later]
    assert wasted_calls(scenario, [revealing, *faulted]) == faulted
    # A quota refusal is never the call that reveals the fault.
    assert onset_calls(scenario, later) == (None, None, None)


# --- the key-order pairs --------------------------------------------------------------------


def _result(scenario_name: str, counts: dict[str, int]) -> ScenarioResult:
    scenario = load_scenario(scenario_name)
    runs = []
    for system, limited in counts.items():
        calls = [_call(float(i), "quota", request=i) for i in range(limited)] + [_call(50.0, "ok")]
        runs.append(Run(system=system, metrics=compute(scenario, [], calls)))
    runs.append(Run(system="litellm", skipped="not installed"))
    return ScenarioResult(scenario=scenario, runs=tuple(runs))


def test_the_built_in_key_order_scenarios_are_a_pair() -> None:
    priority = load_scenario("key-order-priority")
    round_robin = load_scenario("key-order-round-robin")
    others = [load_scenario(name) for name in ("rate-limit-storm", "revoked-key")]
    assert key_order_pairs([round_robin, *others, priority]) == [(priority, round_robin)]
    # Anything else that differs breaks the pair: the seed, a quota, or no key order at all.
    reseeded = attrs.evolve(round_robin, seed=99)
    assert key_order_pairs([priority, reseeded]) == []
    unquoted = attrs.evolve(round_robin, quotas=round_robin.quotas[:1])
    assert key_order_pairs([priority, unquoted]) == []
    assert key_order_pairs([priority, attrs.evolve(priority, name="copy")]) == []


def test_the_report_pairs_the_key_orders() -> None:
    results = [
        _result("key-order-priority", {"switchover": 17, "seed": 4, "oracle": 0}),
        _result("rate-limit-storm", {"switchover": 2}),
        _result("key-order-round-robin", {"switchover": 0, "seed": 4, "oracle": 0}),
    ]
    expected = {
        "priority": "key-order-priority",
        "round_robin": "key-order-round-robin",
        "rate_limited": {
            "switchover": {"priority": 17, "round_robin": 0},
            "seed": {"priority": 4, "round_robin": 4},
            "oracle": {"priority": 0, "round_robin": 0},
        },
        "fewer_with_round_robin": True,
    }
    assert report_dict(results)["key_order"] == [expected]
    assert report_dict(results)["scenarios"][0]["systems"]["switchover"]["rate_limited"] == 17
    assert key_order_notes(results) == [
        "key order (key-order-priority / key-order-round-robin): switchover got 17 429s "
        "with priority, 0 with round_robin ✓ (fewer with round_robin)"
    ]
    same = [results[0], _result("key-order-round-robin", {"switchover": 17})]
    assert key_order(same)[0]["fewer_with_round_robin"] is False
    assert key_order_notes(same)[0].endswith("✗ (not fewer with round_robin)")
    # Without switchover in both there is nothing to say.
    alone = [results[0], _result("key-order-round-robin", {"oracle": 0})]
    assert key_order(alone)[0]["fewer_with_round_robin"] is None
    assert key_order_notes(alone) == []
    assert key_order(results[:2]) == []


def test_the_cli_prints_the_pair_after_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = {
        "key-order-priority": _result("key-order-priority", {"switchover": 9, "oracle": 0}),
        "key-order-round-robin": _result("key-order-round-robin", {"switchover": 0, "oracle": 0}),
    }

    def fake_suite(scenarios: Any, systems: Any, *, on_result: Any, **_: Any) -> list:
        out = []
        for scenario in scenarios:
            result = attrs.evolve(made[scenario.name], scenario=scenario)
            result = ScenarioResult(
                scenario=scenario,
                runs=tuple(r for r in result.runs if r.system in systems),
            )
            on_result(result)
            out.append(result)
        return out

    monkeypatch.setattr(chaos_cli, "run_suite", fake_suite)
    argv = ["chaos", "--scenario", "key-order-priority", "--scenario", "key-order-round-robin"]
    assert (
        main([*argv, "--systems", "switchover,oracle", "--out", str(tmp_path), "--no-plots"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    note = (
        "key order (key-order-priority / key-order-round-robin): switchover got 9 429s "
        "with priority, 0 with round_robin ✓ (fewer with round_robin)"
    )
    assert note in lines
    last_row = max(i for i, line in enumerate(lines) if line.startswith("│ key-order-round-robin"))
    assert lines.index(note) > last_row
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["key_order"][0]["rate_limited"]["switchover"] == {"priority": 9, "round_robin": 0}
