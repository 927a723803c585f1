"""The load: open loop (the same planned requests for every system, sent on schedule) or
closed loop (a fixed number of callers, each sending its next request when the last ended).

Open-loop arrivals are a Poisson process drawn from the scenario's seed, so every system
sees the same requests at the same moments. Each request runs on a thread of a bounded
pool; a request that waits for a free thread keeps its scheduled time, so queueing shows up
in its latency, as it would for a real caller. Closed-loop callers send as fast as the
system answers them, so a system that serves faster serves more requests.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from ._scenario import Scenario

#: Threads sending requests; also the chain workers of switchover.
CLIENT_THREADS = 64
#: Wall seconds to wait for a stopped system's request threads to end.
JOIN_TIMEOUT = 2.0


@attrs.frozen
class Planned:
    """One request of the plan: its number, when it is sent (story s) and its prompt."""

    id: int
    at: float
    long: bool = False

    def messages(self, scenario: Scenario) -> list[dict[str, Any]]:
        text = f"[req {self.id}] Say something short."
        if self.long:
            text += " context" * (scenario.load.long_tokens * 4 // 8)
        return [{"role": "user", "content": text}]


def plan(scenario: Scenario) -> list[Planned]:
    """The scenario's open-loop requests: Poisson arrivals over its duration, seeded (none
    for a closed loop: its callers make their requests as they go)."""
    rng = random.Random(scenario.seed)
    load = scenario.load
    out: list[Planned] = []
    if load.mode == "closed":
        return out
    t = rng.expovariate(load.rate)
    while t < scenario.duration:
        long = load.long_from <= t < load.long_until and rng.random() < load.long_share
        out.append(Planned(id=len(out), at=t, long=long))
        t += rng.expovariate(load.rate)
    return out


@attrs.frozen
class Outcome:
    """What a system made of one request. ``served`` is ``provider/model@profile`` of the
    answer; ``error`` a short name of the failure; ``retry_after`` a wait hint (story s)."""

    served: str | None = None
    error: str | None = None
    retry_after: float | None = None


@attrs.frozen
class Record:
    """One request as the caller saw it; times in story seconds from the start."""

    id: int
    at: float
    long: bool
    start: float
    first: float | None
    end: float | None
    served: str | None
    error: str | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.end is not None

    @property
    def latency(self) -> float | None:
        """From the scheduled send to the last token (story s)."""
        return None if self.end is None else self.end - self.at

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class System(Protocol):
    """A system under test: started on the fleet, sent requests from many threads."""

    name: str

    def start(self, scenario: Scenario, urls: Mapping[str, str]) -> None: ...

    def send(
        self, planned: Planned, messages: Sequence[Mapping[str, Any]], first: Callable[[], None]
    ) -> Outcome: ...

    def stop(self) -> None: ...


class Clock:
    """Story time of the run: ``story()`` seconds since ``t0`` times the speedup."""

    def __init__(self, scenario: Scenario, t0: float) -> None:
        self.t0 = t0
        self.speedup = scenario.speedup

    def story(self, moment: float | None = None) -> float:
        return ((time.monotonic() if moment is None else moment) - self.t0) * self.speedup

    def moment(self, story: float) -> float:
        return self.t0 + story / self.speedup


def drive(
    system: System,
    scenario: Scenario,
    requests: Sequence[Planned],
    clock: Clock,
    *,
    on_done: Callable[[int], None] | None = None,
    drain: float | None = None,
    finish: Callable[[], None] = lambda: None,
) -> list[Record]:
    """Send ``requests`` on schedule; return one record per request, in plan order.

    Requests still running ``drain`` story seconds after the end of the scenario (default:
    the operator's request timeout) are recorded as ``unfinished``. Then ``finish()``
    stops the system, and its request threads are joined (up to ``JOIN_TIMEOUT``) so
    that none of them leaks into the next run.
    """
    if scenario.load.mode == "closed":
        return _closed_loop(system, scenario, clock, on_done=on_done, drain=drain, finish=finish)
    records: list[Record | None] = [None] * len(requests)
    done = threading.Semaphore(0)

    def run(planned: Planned) -> None:
        records[planned.id] = _send(system, scenario, planned, clock)
        done.release()
        if on_done is not None:
            on_done(1)

    pool = concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS, thread_name_prefix="chaos-load")
    futures = []
    try:
        for planned in requests:
            delay = clock.moment(planned.at) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(run, planned))
        grace = scenario.operator.request_timeout if drain is None else drain
        limit = clock.moment(scenario.duration + grace)
        for _ in requests:
            if not done.acquire(timeout=max(0.0, limit - time.monotonic())):
                break
        finished = list(records)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        finish()
        concurrent.futures.wait(futures, timeout=JOIN_TIMEOUT)
    return [
        record if record is not None else _unfinished(planned)
        for planned, record in zip(requests, finished, strict=True)
    ]


def _unfinished(planned: Planned) -> Record:
    return Record(
        id=planned.id,
        at=planned.at,
        long=planned.long,
        start=planned.at,
        first=None,
        end=None,
        served=None,
        error="unfinished",
    )


def _send(system: System, scenario: Scenario, planned: Planned, clock: Clock) -> Record:
    """Send one request and record it as the caller saw it."""
    first: list[float] = []
    start = clock.story()
    try:
        outcome = system.send(
            planned,
            planned.messages(scenario),
            lambda: first.append(clock.story()) if not first else None,
        )
    except Exception as error:  # a system's bug is one failed request, not a dead run
        outcome = Outcome(error=f"crash: {type(error).__name__}")
    return Record(
        id=planned.id,
        at=planned.at,
        long=planned.long,
        start=start,
        first=first[0] if first else None,
        end=clock.story(),
        served=outcome.served if outcome.error is None else None,
        error=outcome.error,
        retry_after=outcome.retry_after,
    )


def _closed_loop(
    system: System,
    scenario: Scenario,
    clock: Clock,
    *,
    on_done: Callable[[int], None] | None,
    drain: float | None,
    finish: Callable[[], None],
) -> list[Record]:
    """``clients`` callers, each sending its next request once the last one ended, until
    the scenario's end; a request still running ``drain`` story seconds later is cut off."""
    load = scenario.load
    records: dict[int, Record] = {}
    numbers = itertools.count()
    rng = random.Random(scenario.seed)
    longs = [rng.random() < load.long_share for _ in range(4096)]

    def caller() -> None:
        wait = clock.moment(0.0) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        while (at := clock.story()) < scenario.duration:
            number = next(numbers)  # atomic under the GIL: every request gets its own
            long = load.long_from <= at < load.long_until and longs[number % len(longs)]
            planned = Planned(id=number, at=at, long=long)
            records[number] = _unfinished(planned)  # until it ends
            records[number] = _send(system, scenario, planned, clock)
            if on_done is not None:
                on_done(1)

    threads = [
        threading.Thread(target=caller, name=f"chaos-client-{i}", daemon=True)
        for i in range(load.clients)
    ]
    for thread in threads:
        thread.start()
    grace = scenario.operator.request_timeout if drain is None else drain
    limit = clock.moment(scenario.duration + grace)
    for thread in threads:
        thread.join(max(0.0, limit - time.monotonic()))
    finish()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    return [records[number] for number in sorted(dict(records))]
