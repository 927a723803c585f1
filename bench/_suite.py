"""Run scenarios against every system, one after another, on a fresh fleet each time."""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

import attrs

from ._fleet import Fleet, FleetCall
from ._load import Clock, Record, System, drive, plan
from ._metrics import Call, Metrics, compute
from ._scenario import Scenario
from ._systems import Oracle, Sample, Switchover

#: Systems in table order; ``litellm`` runs only when LiteLLM is installed.
SYSTEMS = ("switchover", "seed", "litellm", "oracle")
#: Wall seconds between arming the fleet and the first moment of the story.
LEAD = 0.05
#: How many of a run's history violations it keeps as text (all are counted).
FIRST_VIOLATIONS = 5


def make_system(name: str, *, metrics: bool = False) -> System | str:
    """A fresh system, or why it cannot run; ``metrics`` turns switchover's metrics on."""
    if name == "switchover":
        return Switchover(metrics=metrics)
    if name == "oracle":
        return Oracle()
    if name == "seed":
        from .baselines.seed import Seed

        return Seed()
    if name == "litellm":
        from .baselines import litellm_router

        return litellm_router.make()
    raise ValueError(f"unknown system {name!r}; expected one of {', '.join(SYSTEMS)}")


@attrs.frozen
class Run:
    """One system on one scenario: what happened, and what it adds up to."""

    system: str
    records: tuple[Record, ...] = ()
    calls: tuple[Call, ...] = ()
    samples: tuple[Sample, ...] = ()
    metrics: Metrics | None = None
    skipped: str | None = None
    wall: float = 0.0
    speedup: float = 0.0
    #: switchover's Prometheus samples (text format), in a run with metrics.
    prometheus: str | None = None
    #: How many rules of :mod:`switchover.testing`'s history checker switchover's run broke
    #: (None: a system with no history), and the first ``FIRST_VIOLATIONS`` as text.
    violations: int | None = None
    first_violations: tuple[str, ...] = ()


@attrs.frozen
class ScenarioResult:
    scenario: Scenario
    runs: tuple[Run, ...]

    def run(self, system: str) -> Run | None:
        return next((r for r in self.runs if r.system == system), None)


def _story_calls(calls: Sequence[FleetCall], clock: Clock) -> tuple[Call, ...]:
    return tuple(
        Call(
            at=clock.story(c.at),
            provider=c.provider,
            model=c.model,
            profile=c.profile,
            request=c.request_id,
            kind=c.kind,
        )
        for c in calls
    )


def run_system(
    fleet: Fleet,
    scenario: Scenario,
    name: str,
    *,
    on_request: Callable[[int], None] | None = None,
    drain: float | None = None,
    metrics: bool = False,
) -> Run:
    """Run one system through ``scenario`` on fresh fleet servers."""
    system = make_system(name, metrics=metrics)
    if isinstance(system, str):
        return Run(system=name, skipped=system)
    # A system too costly in CPU for the suite's compression runs the same story slower.
    scenario = attrs.evolve(scenario, speedup=scenario.speedup / getattr(system, "slowdown", 1))
    began = time.monotonic()
    urls = fleet.start(scenario, scenario.seed)
    try:
        system.start(scenario, urls)
        t0 = time.monotonic() + LEAD
        fleet.arm(t0)
        clock = Clock(scenario, t0)
        watch = getattr(system, "watch", None)
        if watch is not None:
            watch(clock)
        records = drive(
            system,
            scenario,
            plan(scenario),
            clock,
            on_done=on_request,
            drain=drain,
            finish=system.stop,
        )
    finally:
        fleet_calls = fleet.stop()
    calls = _story_calls(fleet_calls, clock)
    samples = tuple(getattr(system, "samples", ()))
    # Checked once drive() has joined the request threads: every record is in.
    check = getattr(system, "violations", None)
    violations = None if check is None else check()
    return Run(
        system=name,
        records=tuple(records),
        calls=calls,
        samples=samples,
        metrics=compute(scenario, records, calls),
        wall=time.monotonic() - began,
        speedup=scenario.speedup,
        prometheus=getattr(system, "prometheus", None),
        violations=None if violations is None else len(violations),
        first_violations=tuple(str(v) for v in (violations or ())[:FIRST_VIOLATIONS]),
    )


#: Systems run in a process of their own, on a fleet of their own, alongside the others,
#: each with the module it needs: LiteLLM's runs are four times slower (see
#: ``LiteLLM.slowdown``) and would alone take most of the suite's two minutes. Its process
#: costs the others about a sixth of a core.
APART = {"litellm": "litellm"}
#: Wall seconds to wait for the process running the APART systems to send a run.
APART_TIMEOUT = 120.0


def _run_apart(
    conn: Connection, scenarios: Sequence[Scenario], systems: Sequence[str], drain: float | None
) -> None:
    """In a child process: run ``systems`` on every scenario; send each Run as it ends."""
    with Fleet() as fleet:
        for scenario in scenarios:
            for name in systems:
                conn.send(run_system(fleet, scenario, name, drain=drain))
    conn.close()


@contextlib.contextmanager
def _apart(
    scenarios: Sequence[Scenario], systems: Sequence[str], drain: float | None
) -> Iterator[Callable[[], Run]]:
    """Start ``systems`` on their own process; yield a function returning their next Run."""
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe(duplex=False)
    # Not a daemon: it starts a fleet process of its own.
    process = context.Process(
        target=_run_apart, args=(child, scenarios, systems, drain), name="chaos-apart"
    )
    process.start()
    child.close()

    def receive() -> Run:
        deadline = time.monotonic() + APART_TIMEOUT
        while not conn.poll(0.5):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the process running {', '.join(systems)} stopped answering")
        run: Run = conn.recv()
        return run

    try:
        yield receive
    finally:
        conn.close()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()


def run_suite(
    scenarios: Sequence[Scenario],
    systems: Sequence[str] = SYSTEMS,
    *,
    on_run: Callable[[Scenario, str], None] | None = None,
    on_request: Callable[[int], None] | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
    drain: float | None = None,
    metrics: bool = False,
) -> list[ScenarioResult]:
    """Every scenario against every system; callbacks report progress. An installed APART
    system runs at the same time as the others, in its own process on its own fleet.
    ``metrics`` runs switchover with its Prometheus metrics on (see ``Run.prometheus``)."""
    apart = [
        name
        for name in systems
        if name in APART and importlib.util.find_spec(APART[name]) is not None
    ]
    results = []
    separate = _apart(scenarios, apart, drain) if apart else contextlib.nullcontext()
    with Fleet() as fleet, separate as receive:
        for scenario in scenarios:
            runs: dict[str, Run] = {}
            for name in systems:
                if name in apart:
                    continue
                if on_run is not None:
                    on_run(scenario, name)
                runs[name] = run_system(
                    fleet, scenario, name, on_request=on_request, drain=drain, metrics=metrics
                )
            for name in apart:
                if on_run is not None:
                    on_run(scenario, name)
                assert receive is not None
                runs[name] = receive()
                if on_request is not None:
                    on_request(len(runs[name].records))
            result = ScenarioResult(scenario=scenario, runs=tuple(runs[n] for n in systems))
            if on_result is not None:
                on_result(result)
            results.append(result)
    return results


def suite_dict(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """Everything measured, as plain JSON types (see report.json)."""
    out = []
    for result in results:
        s = result.scenario
        out.append(
            {
                "name": s.name,
                "description": s.description,
                "duration": s.duration,
                "speedup": s.speedup,
                "chain": list(s.chain),
                "systems": {
                    run.system: (
                        {"skipped": run.skipped}
                        if run.metrics is None
                        else {
                            **run.metrics.to_dict(),
                            "speedup": run.speedup,
                            "wall_seconds": round(run.wall, 3),
                            # The history checker's verdict (None: no history kept).
                            "violations": run.violations,
                            "first_violations": list(run.first_violations),
                        }
                    )
                    for run in result.runs
                },
            }
        )
    return {"scenarios": out}
