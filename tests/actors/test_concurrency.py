"""Many threads through one runtime: calls run in parallel, every request gets exactly one
outcome, and stop() leaves nothing running. These use the real clock; time bounds are
generous (they catch serialisation and hangs, not jitter on a busy machine)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bodies as b
import pykka
import pytest
from support import StartRuntime, make_config, providers
from switchover import (
    ChainExhausted,
    Completion,
    CooldownConfig,
    DeadlineExceeded,
    ProviderCall,
    Request,
    RequestRejected,
    RetryConfig,
    Runtime,
    RuntimeStoppedError,
    StreamInterrupted,
    SystemClock,
)
from switchover.testing import Cut, Fail, Hang, Refuse, Reply, ScriptedProvider, Step, StreamError

MESSAGES = ({"role": "user", "content": "hi"},)
ACTOR_THREADS = ("ProfileActor-", "HealthActor-", "ChainActor-", "SupervisorActor-")


def req(model: str, *fallbacks: str, **kwargs: Any) -> Request:
    return Request(model=model, messages=MESSAGES, fallback_models=fallbacks, **kwargs)


def actor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(ACTOR_THREADS)]


def test_32_threads_through_one_key_run_in_parallel(start: StartRuntime) -> None:
    # Defect 9: the reference serialised every call behind one manager.
    provider = ScriptedProvider(Reply("ok", delay=0.2))
    rt = start(make_config(chain_workers=32), clock=SystemClock(), provider=provider)
    barrier = threading.Barrier(32)

    def call(_: int) -> Completion:
        barrier.wait(timeout=30)
        return rt.complete(req("local/llama3"))

    began = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        done = list(pool.map(call, range(32)))
    elapsed = time.monotonic() - began
    assert elapsed < 32 * 0.2 / 2, f"32 calls of 200 ms took {elapsed:.2f}s: serialised?"
    assert {(d.text, d.served_by.profile) for d in done} == {("ok", "default")}
    assert len(provider.calls) == 32


FAULTS: list[Step] = [
    *[Reply("fine", chunks=3)] * 8,
    Fail(429, b.OPENAI_RATE_LIMIT, headers={"retry-after-ms": "2"}),
    Fail(401, b.ANTHROPIC_AUTH),
    Fail(429, b.OPENAI_QUOTA),
    Fail(500, b.OPENAI_SERVER_ERROR),
    Fail(529, b.ANTHROPIC_OVERLOADED),
    Fail(502, b.CLOUDFLARE_502),
    Fail(404, b.OPENAI_MODEL_MISSING),
    Fail(400, b.OPENAI_TOO_LONG_STRING),
    Fail(400, b.OPENAI_MAX_TOKENS),
    Fail(400, b.OPENAI_CONTEXT),
    Fail(400, b.ANTHROPIC_ROLES),
    StreamError(b.ANTHROPIC_OVERLOADED),
    StreamError("garbage"),
    Cut(after=2),
    Refuse(),
    Reply("slow", delay=0.01),
]
ERRORS = (ChainExhausted, RequestRejected, DeadlineExceeded, StreamInterrupted)


def test_8_threads_x_200_mixed_fault_requests_each_get_exactly_one_outcome(
    start: StartRuntime,
) -> None:
    rng = random.Random(2024)
    lock = threading.Lock()

    def pick(call: ProviderCall) -> Step:
        with lock:
            return rng.choice(FAULTS)

    provider = ScriptedProvider()
    provider.rule(pick)
    tiny = CooldownConfig(
        profile_min=0.0005,
        profile_max=0.002,
        model_base=dict.fromkeys(
            ("rate_limit", "transient", "auth", "balance", "model_missing"), 0.0005
        ),
        model_max=0.002,
        disabled_probe_interval=0.002,
    )
    config = make_config(
        chain_workers=8,
        retry=RetryConfig(attempts=2, min_delay=0.0, max_delay=0.001),
        cooldown=tiny,
        request_timeout=20.0,
    )
    rt = start(config, clock=SystemClock(), provider=provider)
    models = ["openai/gpt-4o", "claude/claude-3-haiku-20240307", "local/llama3", "fast"]

    def worker(seed: int) -> list[Any]:
        local = random.Random(seed)
        results: list[Any] = []
        for _ in range(200):
            chain = local.sample(models, k=local.randint(1, 3))
            request = req(*chain, max_tokens=local.choice([None, 256]))
            try:
                results.append(rt.complete(request))
            except ERRORS as error:
                results.append(error)
        return results

    with ThreadPoolExecutor(8) as pool:
        per_thread = list(pool.map(worker, range(8)))
    assert [len(results) for results in per_thread] == [200] * 8
    kinds = Counter(type(r).__name__ for results in per_thread for r in results)
    assert kinds["Completion"] > 0
    assert kinds["ChainExhausted"] > 0
    assert kinds["RequestRejected"] > 0
    for result in (r for results in per_thread for r in results):
        if isinstance(result, Completion):
            assert result.attempts[-1].outcome == "ok"
            assert [a.outcome for a in result.attempts].count("ok") == 1
        elif isinstance(result, ChainExhausted | RequestRejected | DeadlineExceeded):
            assert all(a.outcome != "ok" for a in result.attempts)
    snapshot = rt.inspect()
    assert all(s.restarts == 0 for s in snapshot.actors)
    assert all(not s.state.get("busy") for s in snapshot.actors if s.kind == "chain")


class Entered:
    """Wraps a provider; ``entered`` is set once ``calls`` calls are in open()."""

    def __init__(self, inner: ScriptedProvider, calls: int) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self._want = calls
        self._count = 0
        self._lock = threading.Lock()

    def open(self, call: ProviderCall) -> Iterator[Any]:
        with self._lock:
            self._count += 1
            if self._count >= self._want:
                self.entered.set()
        return self.inner.open(call)

    def close(self) -> None:
        pass


def test_stop_ends_in_flight_requests_and_leaves_no_actor_thread() -> None:
    before = set(threading.enumerate())
    provider = Entered(ScriptedProvider(Hang()), calls=3)
    config = make_config(chain_workers=4)
    rt = Runtime(config, providers={p.name: provider for p in config.providers}).start()
    assert len(actor_threads()) == len(rt.inspect().actors)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(rt.complete, req("local/llama3", timeout=60.0)) for _ in range(3)]
        assert provider.entered.wait(30)
        began = time.monotonic()
        rt.stop()
        stopped_in = time.monotonic() - began
        for future in futures:
            with pytest.raises(RuntimeStoppedError):
                future.result(timeout=30)
    assert stopped_in < 10.0
    assert actor_threads() == []
    assert set(threading.enumerate()) <= before
    assert pykka.ActorRegistry.get_all() == []


def test_calls_after_stop_raise_runtime_stopped(start: StartRuntime) -> None:
    rt = start()
    rt.complete(req("openai/gpt-4o"))
    rt.stop()
    rt.stop()  # idempotent
    assert actor_threads() == []
    for later in (
        lambda: rt.complete(req("openai/gpt-4o")),
        lambda: rt.stream(req("openai/gpt-4o")),
        rt.health,
        rt.reset,
        rt.inspect,
        rt.start,
    ):
        with pytest.raises(RuntimeStoppedError):
            later()


def test_a_runtime_that_never_started_is_not_running() -> None:
    config = make_config()
    rt = Runtime(config, providers={p.name: ScriptedProvider() for p in config.providers})
    with pytest.raises(RuntimeStoppedError):
        rt.complete(req("openai/gpt-4o"))
    rt.stop()


def test_the_context_manager_stops_every_actor() -> None:
    provider = ScriptedProvider()
    config = make_config(providers=providers())
    with Runtime(config, providers={p.name: provider for p in config.providers}) as rt:
        assert rt.complete(req("claude/claude-3-haiku-20240307")).text == "ok"
        assert actor_threads()
    assert actor_threads() == []
    assert pykka.ActorRegistry.get_all() == []


def test_a_closed_stream_frees_its_worker_at_once(start: StartRuntime) -> None:
    rt = start(make_config(chain_workers=1))
    for _ in range(5):
        stream = rt.stream(req("openai/gpt-4o"))
        stream.close()
    assert rt.complete(req("openai/gpt-4o")).text == "ok"
