"""The chaos scenario loader: every built-in loads; bad files name the field."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support import assert_scenario_refused
from switchover.bench._scenario import (
    ScenarioError,
    Traffic,
    load_scenario,
    parse_scenario,
    scenario_names,
)

GOOD = """
name = "mine"
duration = 60
chain = ["openai/gpt-4o", "claude/claude-sonnet-4-5"]

[[faults]]
target = "openai@main"
kind = "rate_limit"
retry_after = 10
start = 5
end = 30
"""


def test_every_built_in_scenario_loads() -> None:
    names = scenario_names()
    assert len(names) == 17
    for name in names:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.description


def test_a_file_with_defaults() -> None:
    scenario = parse_scenario(GOOD)
    assert scenario.speedup == 80.0
    assert [p.name for p in scenario.providers] == ["openai", "claude"]
    (fault,) = scenario.faults
    assert str(fault.target) == "openai@main"
    assert fault.hard
    assert fault.active(5.0)
    assert not fault.active(30.0)
    assert scenario.load.long_until == 60.0
    assert (scenario.load.mode, scenario.traffic) == ("open", Traffic())
    assert scenario.traffic.ttft == (0.3, 2.0)
    assert scenario.traffic.tokens == (50, 800)
    assert scenario.traffic.tokens_per_second == (30.0, 120.0)
    assert scenario.providers[0].key_order == "priority"
    assert scenario.targets()[:2] == [("openai", "gpt-4o", "main"), ("openai", "gpt-4o", "backup")]


def test_the_key_order_scenarios_load_one_key_beyond_its_quota_and_two_under_it() -> None:
    priority = load_scenario("key-order-priority")
    round_robin = load_scenario("key-order-round-robin")
    assert (priority.provider("openai").key_order, round_robin.provider("openai").key_order) == (
        "priority",
        "round_robin",
    )
    assert priority.faults == round_robin.faults == ()
    assert priority.quotas == round_robin.quotas
    per_second = {str(q.target): q.requests / q.window for q in priority.quotas}
    assert set(per_second) == {"openai/gpt-4o@main", "openai/gpt-4o@backup"}
    assert all(rate < priority.load.rate < 2 * rate for rate in per_second.values())


def test_a_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    assert load_scenario(path).name == "mine"


def test_a_periodic_fault_has_one_episode_per_period() -> None:
    scenario = load_scenario("flapping-primary")
    (fault,) = scenario.faults
    assert fault.episodes(scenario.duration) == [(20 + 8 * i, 24 + 8 * i) for i in range(10)]
    assert fault.active(21.0)
    assert not fault.active(25.0)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        pytest.param(("duration = 60", "duration = -1"), "duration", "> 0", id="negative-duration"),
        pytest.param(
            ('name = "mine"', 'name = "mine"\ncolour = 3'),
            "colour",
            "unknown key",
            id="unknown-key",
        ),
        pytest.param(
            ('kind = "rate_limit"', 'kind = "meteor"'),
            "faults[0].kind",
            "is not one of",
            id="bad-kind",
        ),
        pytest.param(
            ('"openai@main"', '"azure@main"'), "faults[0].target", "no provider", id="bad-provider"
        ),
        pytest.param(
            ('"openai@main"', '"openai/gpt-5@main"'), "faults[0].target", "no model", id="bad-model"
        ),
        pytest.param(
            ('"openai@main"', '"openai@spare"'),
            "faults[0].target",
            "no key profile",
            id="bad-profile",
        ),
        pytest.param(
            ("end = 30", "end = 5"), "faults[0].end", "after start", id="end-before-start"
        ),
        pytest.param(("end = 30", "end = 99"), "faults[0].end", "<= 60", id="end-after-duration"),
        pytest.param(
            ('"claude/claude-sonnet-4-5"]', '"claude/opus"]'),
            "chain[1]",
            "not 'provider/model'",
            id="bad-chain",
        ),
        pytest.param(
            ('kind = "rate_limit"', 'kind = "auth"'),
            "faults[0].retry_after",
            "only a 'rate_limit'",
            id="retry-after-on-auth",
        ),
        pytest.param(
            ("start = 5", 'start = "soon"'),
            "faults[0].start",
            "must be a number",
            id="string-start",
        ),
        pytest.param(
            ("\n[[faults]]", "\n[load]\nrate = 0\n[[faults]]"), "load.rate", "> 0", id="zero-rate"
        ),
        pytest.param(
            ("end = 30", "end = 30\nperiod = 4"),
            "faults[0].down",
            "go together",
            id="period-without-down",
        ),
        pytest.param(
            ("\n[[faults]]", '\n[load]\nmode = "burst"\n[[faults]]'),
            "load.mode",
            "'open' or 'closed'",
            id="bad-load-mode",
        ),
        pytest.param(
            ("\n[[faults]]", '\n[load]\nmode = "closed"\nclients = 500\n[[faults]]'),
            "load.clients",
            "<= 64",
            id="too-many-clients",
        ),
        pytest.param(
            ("\n[[faults]]", "\n[traffic]\nttft = [2, 1]\n[[faults]]"),
            "traffic.ttft",
            "must not be below",
            id="ttft-upside-down",
        ),
        pytest.param(
            ("\n[[faults]]", "\n[traffic]\ntokens = 50\n[[faults]]"),
            "traffic.tokens",
            "[low, high] pair",
            id="tokens-not-a-pair",
        ),
        pytest.param(
            ("\n[[faults]]", "\n[traffic]\ntokens_per_second = [0, 10]\n[[faults]]"),
            "traffic.tokens_per_second",
            "> 0",
            id="zero-token-rate",
        ),
        pytest.param(
            (
                "\n[[faults]]",
                '\n[[quotas]]\ntarget = "openai@main"\nrequests = 0\nwindow = 20\n[[faults]]',
            ),
            "quotas[0].requests",
            "must be a positive integer, got 0",
            id="zero-quota",
        ),
        pytest.param(
            (
                "\n[[faults]]",
                '\n[[quotas]]\ntarget = "openai"\nrequests = 5\nwindow = 20\n[[faults]]',
            ),
            "quotas[0].target",
            "must name one key",
            id="quota-on-a-provider",
        ),
        pytest.param(
            ("\n[[faults]]", "\n[operator]\nidle_timeout = 0\n[[faults]]"),
            "operator.idle_timeout",
            "> 0",
            id="zero-timeout",
        ),
    ],
)
def test_bad_fields_are_named(change: tuple[str, str], field: str, words: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    assert_scenario_refused(text, field, words)


def test_missing_required_fields() -> None:
    with pytest.raises(ScenarioError, match="chain: is required"):
        parse_scenario('name = "x"\nduration = 10')
    with pytest.raises(ScenarioError, match="duration: is required"):
        parse_scenario('name = "x"\nchain = ["openai/gpt-4o"]')


def test_broken_toml_and_unknown_names() -> None:
    with pytest.raises(ScenarioError, match="toml"):
        parse_scenario("name = ")
    with pytest.raises(ScenarioError, match="no built-in scenario") as caught:
        load_scenario("no-such-scenario")
    assert "rate-limit-storm" in str(caught.value)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario("/nonexistent/file.toml")


def test_infinite_values_are_refused() -> None:
    with pytest.raises(ScenarioError, match="duration"):
        parse_scenario(GOOD.replace("duration = 60", "duration = inf"))
    assert math.isfinite(parse_scenario(GOOD).duration)
