"""A chaos run with metrics: the Prometheus counters agree exactly with the ground truth
(the fleet's record of every call, the caller's record of every request)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from switchover.bench._observed import AGAIN, BASELINE, observer_costs
from switchover.bench._report import write_prometheus
from switchover.bench._scenario import parse_scenario
from switchover.bench._suite import run_suite

# The primary key is revoked, then the primary model is rate limited on every key for a
# while: key rotation, key cooldowns and failovers to the second model, all in one run.
SCENARIO = """
name = "metrics"
description = "a revoked key, then a rate-limited model"
seed_defect = ""
duration = 30
speedup = 20
seed = 5
chain = ["openai/gpt-4o", "claude/claude-sonnet-4-5"]

[load]
rate = 3

[[faults]]
target = "openai@main"
kind = "auth"
start = 4

[[faults]]
target = "openai/gpt-4o"
kind = "rate_limit"
start = 12
end = 20
retry_after = 2
"""


@pytest.fixture(scope="module")
def result():
    (result,) = run_suite([parse_scenario(SCENARIO)], ("switchover",), metrics=True)
    return result


def _counters(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = collections.defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


def test_counters_agree_with_the_ground_truth(result) -> None:
    run = result.run("switchover")
    assert run.prometheus is not None
    counters = _counters(run.prometheus)
    requests = collections.Counter()
    for labels, value in counters["switchover_requests_total"]:
        requests[labels["outcome"]] += value
    assert sum(requests.values()) == len(run.records)
    assert requests["served"] == sum(r.ok for r in run.records)

    # Every call the fleet answered is one attempt, on the same key, with the same kind;
    # except that an answer which reached switchover after its own timeout counts there as
    # a transient failure (the fleet cannot see that it came too late).
    fleet = collections.Counter(
        (c.provider, c.profile, c.kind) for c in run.calls if c.request is not None
    )
    counted = collections.Counter()
    for labels, value in counters["switchover_attempts_total"]:
        kind = "ok" if labels["outcome"] == "ok" else labels["kind"]
        counted[labels["provider"], labels["profile"], kind] += value
    for provider, profile in {(p, k) for p, k, _ in fleet | counted}:
        ours = {kind: n for (p, k, kind), n in counted.items() if (p, k) == (provider, profile)}
        theirs = {kind: n for (p, k, kind), n in fleet.items() if (p, k) == (provider, profile)}
        assert sum(ours.values()) == sum(theirs.values()), (provider, profile, ours, theirs)
        late = ours.get("transient", 0) - theirs.get("transient", 0)
        shortfall = {k: theirs[k] - ours.get(k, 0) for k in theirs if k != "transient"}
        assert all(n >= 0 for n in shortfall.values()), (provider, profile, ours, theirs)
        assert sum(shortfall.values()) == late, (provider, profile, ours, theirs)
    assert fleet["openai", "main", "auth"] >= 1
    assert fleet["openai", "backup", "rate_limit"] >= 1

    # Each request that failed over called the second model: as many failovers as such
    # requests, every one away from the first model.
    moved = {c.request for c in run.calls if c.request is not None and c.provider == "claude"}
    failovers = counters["switchover_failovers_total"]
    assert sum(v for _, v in failovers) == len(moved)
    assert {labels["from_model"] for labels, v in failovers if v} == {"openai/gpt-4o"}
    ttft = sum(v for labels, v in counters["switchover_time_to_first_token_seconds_count"])
    assert ttft == requests["served"]


def test_samples_are_written_next_to_the_report(result, tmp_path: Path) -> None:
    [path] = write_prometheus([result], tmp_path)
    assert path == tmp_path / "metrics-metrics.prom"
    assert "switchover_attempts_total" in path.read_text()


def test_observer_costs_table_has_a_row_per_variant() -> None:
    table = observer_costs((1,), 20)
    variants = list(table.columns[1].cells)
    assert variants[0] == BASELINE
    assert "metrics" in variants
    assert "metrics + tracing (SDK)" in variants
    assert variants[-1] == AGAIN
