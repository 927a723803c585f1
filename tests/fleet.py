"""Configs and helpers shared by the reliability tests (supervision, history, lifecycle).

The mixed-fault fleet itself lives in :mod:`switchover.testing` (the soak script uses it too)."""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from typing import Any

import pykka
from switchover import (
    ActorSnapshot,
    Config,
    ProviderConfig,
    Request,
    RetryConfig,
    Runtime,
    RuntimeStoppedError,
    TextDelta,
)
from switchover._core._clock import SystemClock
from switchover.actors import Supervisor
from switchover.actors.messages import Inspect
from switchover.testing import Hang, Reply


def small_config(*, workers: int = 4, timeout: float = 30.0, profiles: int = 2) -> Config:
    """One provider ``a`` with ``profiles`` keys; default cooldowns (long enough to observe)."""
    keys = {f"p{i}": f"sk-a-{i}-0123456789abcdef" for i in range(profiles)}
    return Config(
        providers=[
            ProviderConfig(name="a", api="openai", base_url="http://a.invalid", profiles=keys)
        ],
        retry=RetryConfig(attempts=2, min_delay=0.0, max_delay=0.0),
        chain_workers=workers,
        request_timeout=timeout,
    )


def request(model: str = "a/m", *fallbacks: str, **kwargs: object) -> Request:
    return Request(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        fallback_models=fallbacks,
        **kwargs,  # type: ignore[arg-type]
    )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def actor_threads() -> list[threading.Thread]:
    """Live pykka actor threads (named after their actor class)."""
    return [t for t in threading.enumerate() if t.name.split("-")[0].endswith("Actor")]


def supervisor_of(rt: Runtime) -> Supervisor:
    """The running runtime's supervisor (tests reach inside)."""
    supervisor = rt._supervisor
    assert supervisor is not None
    return supervisor


def ref_of(rt: Runtime, name: str) -> pykka.ActorRef[Any]:
    """The current incarnation of actor ``name``."""
    ref = supervisor_of(rt).directory.members[name].ref
    assert ref is not None
    return ref


def live(rt: Runtime, name: str) -> ActorSnapshot:
    """The actor's own answer to Inspect, however long a loaded machine makes it take."""
    snapshot = supervisor_of(rt).directory.ask(name, Inspect(), 10.0)
    assert isinstance(snapshot, ActorSnapshot)
    return snapshot


#: How long a stopped request may take to end: generous on a loaded 2-core machine; a
#: request that hangs would take its whole (long) timeout.
PROMPT = 10.0


def slow_or_hanging(model: str) -> Reply | Hang:
    """The answer for :func:`stop_under_load`: ``*/hang`` hangs, anything else streams
    one chunk and then waits an hour for the next."""
    return Hang() if model == "hang" else Reply("one two three", chunks=3, chunk_delay=3600.0)


def stop_under_load(
    rt: Runtime, provider: str, workers_hanging: Callable[[], bool], in_flight: int = 64
) -> tuple[collections.Counter[str], float]:
    """Put ``in_flight`` requests in flight and stop ``rt``: ``chain_workers`` callers read
    committed streams, as many walks hang in the provider (``workers_hanging()`` says when
    they all do), the rest wait for a worker. Returns the outcomes and how long the
    callers took to end after ``stop()`` began."""
    workers = rt.config.chain_workers
    outcomes: collections.Counter[str] = collections.Counter()
    reading = threading.Semaphore(0)

    def end(call: Callable[[], object]) -> None:
        try:
            call()
            outcomes["served"] += 1
        except RuntimeStoppedError:
            outcomes["stopped"] += 1

    def read_stream() -> None:
        with rt.stream(request(f"{provider}/slow")) as stream:
            for event in stream:
                if isinstance(event, TextDelta):
                    reading.release()

    readers = [threading.Thread(target=end, args=(read_stream,)) for _ in range(workers)]
    for thread in readers:
        thread.start()
    for _ in readers:  # every reader has committed: its worker is free again
        assert reading.acquire(timeout=PROMPT)
    hang = request(f"{provider}/hang")
    waiters = [
        threading.Thread(target=end, args=(lambda: rt.complete(hang),))
        for _ in range(in_flight - workers)
    ]
    for thread in waiters:
        thread.start()
    assert workers_hanging(), "every worker is stuck in the provider"

    clock = SystemClock()
    stopping = clock.now()
    rt.stop()
    for thread in [*readers, *waiters]:
        thread.join(PROMPT)
    assert not any(t.is_alive() for t in [*readers, *waiters]), "a caller hung"
    return outcomes, clock.now() - stopping
