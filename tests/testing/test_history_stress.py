"""The history checker over whole runs: 32 threads and 20,000 mixed-fault requests on real
time, and proof that the checker catches a runtime that ignores its gates."""

from __future__ import annotations

import collections
import logging
import random
import threading
from collections.abc import Iterator

import pytest
from fleet import request
from switchover import Runtime, SwitchoverError
from switchover._core._clock import SystemClock
from switchover._core._observe import AttemptRecord, KeyChange, ModelChange, RequestClosed
from switchover.actors import _chain as chain_module
from switchover.testing import FLEET_MODELS, ScriptedProvider, fleet_config, random_faults
from switchover.testing._history import History

THREADS = 32
REQUESTS = 20_000
BUDGET = 60.0  # seconds, the whole run


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    # Thousands of expected failures would otherwise be logged (and captured) one by one.
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def run_fleet(requests: int, seed: int) -> tuple[History, collections.Counter[str], float]:
    """Drive ``requests`` through a mixed-fault fleet from THREADS threads."""
    config = fleet_config()
    scripted = ScriptedProvider()
    scripted.rule(random_faults(random.Random(seed)))
    history = History()
    seen: collections.Counter[str] = collections.Counter()
    clock = SystemClock()

    def caller(index: int, rt: Runtime) -> None:
        rng = random.Random(seed * 1000 + index)
        for _ in range(requests // THREADS):
            req = request(rng.choice(FLEET_MODELS), rng.choice(FLEET_MODELS))
            try:
                with rt.stream(req) as stream:
                    for _event in stream:
                        pass
                seen["served"] += 1
            except SwitchoverError as error:
                seen[type(error).__name__] += 1

    started = clock.now()
    providers = {p.name: scripted for p in config.providers}
    with Runtime(config, providers=providers, observers=[history], rng=random.Random(seed)) as rt:
        threads = [threading.Thread(target=caller, args=(i, rt)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return history, seen, clock.now() - started


@pytest.mark.timeout(180)
def test_20000_mixed_fault_requests_from_32_threads_break_no_rule() -> None:
    history, seen, took = run_fleet(REQUESTS, seed=11)

    assert took < BUDGET, f"the run took {took:.1f}s"
    assert sum(seen.values()) == REQUESTS // THREADS * THREADS
    history.assert_valid(fleet_config())
    # Every terminal outcome the callers saw is the one the history holds.
    ends = collections.Counter(r.outcome for r in history.of_type(RequestClosed))  # type: ignore[union-attr]
    assert ends["served"] == seen["served"]
    assert ends["exhausted"] == seen["ChainExhausted"]
    assert ends["interrupted"] == seen["StreamInterrupted"]
    # The run exercised what the rules are about, not only the happy path.
    calls = [a for a in history.of_type(AttemptRecord) if isinstance(a, AttemptRecord)]
    outcomes = collections.Counter(a.outcome for a in calls)
    assert seen["served"] > REQUESTS // 2
    assert outcomes["error"] > 1000
    assert outcomes["skipped"] > 1000
    assert sum(a.probe for a in calls) > 50
    assert len(history.of_type(KeyChange)) > 500
    states = collections.Counter(m.state for m in history.of_type(ModelChange))  # type: ignore[union-attr]
    assert states.keys() >= {"cooling", "healthy"}


def always(answer: object) -> object:
    return lambda *args, **kwargs: answer


@pytest.mark.parametrize(
    ("target", "name", "rules"),
    [
        pytest.param(chain_module, "key_gate", {"key_cooldown"}, id="no-key-gate"),
        pytest.param(chain_module, "model_gate", {"model_gate"}, id="no-model-gate"),
        pytest.param(
            chain_module._Walk, "_key_open", {"key_cooldown"}, id="key-not-re-read-per-call"
        ),
        pytest.param(
            chain_module._Walk, "_model_open", {"model_gate"}, id="model-not-re-read-per-call"
        ),
    ],
)
def test_the_checker_catches_a_runtime_that_ignores_its_gates(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str, rules: set[str]
) -> None:
    answer = "ready" if name.endswith("gate") else True
    monkeypatch.setattr(target, name, always(answer))
    history, _, _ = run_fleet(4_000, seed=5)
    assert rules <= {v.rule for v in history.check(fleet_config())}
