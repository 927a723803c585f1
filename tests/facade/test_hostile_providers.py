"""Issue 15: a seeded fuzz of custom providers that raise every kind of exception at every
point of a stream, from several threads at once.

Every request ends served or with a SwitchoverError (an exit signal raised in the
caller's own thread propagates as itself, by design); nothing hangs; no actor stays dead;
no key shows in any error's text, its printed traceback or a log record.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import traceback
from collections.abc import Callable

import pytest
import support
from hostile import POINTS, HostileProvider, LibraryAbort, Raise, Unprintable
from switchover import (
    Config,
    ErrorKind,
    Failure,
    ProviderConfig,
    ProviderFailure,
    Request,
    RetryConfig,
    Runtime,
    SwitchoverError,
    SystemClock,
)

pytestmark = pytest.mark.timeout(120)

KEY = "sk-proj-HOSTILEfuzz8MANDOLINglacierPUMICEx"
SEED = 1515
REQUESTS = 240
THREADS = 6
BUDGET = 20.0  # seconds of wall time at most; the fuzz stops early if it runs out
HI = ({"role": "user", "content": "hi"},)
EXITS = (KeyboardInterrupt, SystemExit)


class AdapterError(Exception):
    """A library's own Exception subclass."""


def _makers(key: str) -> list[Callable[[], BaseException]]:
    kinds = list(ErrorKind)
    return [
        lambda: RuntimeError("boom"),
        lambda: ValueError(f"rejected key {key}"),
        lambda: OSError(104, f"reset (Authorization: Bearer {key})"),
        lambda: AdapterError("x" * 2_000_000),
        Unprintable,
        lambda: RecursionError("deep"),
        lambda: ProviderFailure(
            Failure(kind=random.choice(kinds), message=f"provider says {key}", status=500)
        ),
        asyncio.CancelledError,
        GeneratorExit,
        lambda: LibraryAbort(f"aborted with {key}"),
        lambda: SystemExit(3),
        KeyboardInterrupt,
    ]


def test_hostile_providers_under_load_end_every_request_typed_or_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    makers = _makers(KEY)
    rng = random.Random(SEED)
    lock = threading.Lock()

    def plan(call: object) -> Raise | None:
        with lock:
            if rng.random() < 0.25:
                return None
            return Raise(rng.choice(makers), rng.choice(POINTS))

    hostile = HostileProvider(plan)
    config = Config(
        providers=[
            ProviderConfig(name=name, api="openai", base_url="http://x.test", profiles=profiles)
            for name, profiles in [
                ("a", {"one": KEY, "two": support.OPENAI_BACKUP}),
                ("b", {"one": support.CLAUDE_KEY}),
            ]
        ],
        fallbacks=("b/last",),
        retry=RetryConfig(attempts=2, min_delay=0.0, max_delay=0.0),
        request_timeout=5.0,
        chain_workers=4,
    )
    clock = SystemClock()
    outcomes: list[str] = []
    problems: list[str] = []
    give_up = clock.now() + BUDGET
    ids = iter(range(REQUESTS))

    def worker() -> None:
        for index in ids:
            if clock.now() > give_up:
                return
            request = Request(model=f"a/m{index % 7}", messages=HI, fallback_models=("b/n",))
            try:
                done = rt.complete(request)
                outcome = "served" if done.text == "hello" else f"bad text {done.text!r}"
                texts = [a.message for a in done.attempts]
            except SwitchoverError as error:
                outcome = type(error).__name__
                texts = [str(error), "".join(traceback.format_exception(error))]
                texts += [a.message for a in getattr(error, "attempts", ())]
            except EXITS as error:  # raised in this, the caller's, thread: it is ours
                outcome = type(error).__name__
                texts = [str(error)]
            except BaseException as error:
                outcome = f"untyped {type(error).__name__}"
                texts = []
            with lock:
                outcomes.append(outcome)
                if outcome.startswith(("untyped", "bad")):
                    problems.append(outcome)
                problems.extend(f"key in {t[:80]!r}" for t in texts if KEY[8:24] in t)

    with (
        caplog.at_level(logging.DEBUG),
        Runtime(config, providers={"a": hostile, "b": hostile}) as rt,
    ):
        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(BUDGET + 30)
        assert not any(t.is_alive() for t in threads), "a request hung"
        # No actor is dead for good: each one answers, and a clean request is served.
        hostile.plan = lambda call: None
        rt.reset()  # the fuzz cooled keys and models down
        for index in range(7):
            assert rt.complete(Request(model=f"a/m{index}", messages=HI)).text == "hello"
        snapshot = rt.inspect()
        assert not any(a.stale for a in snapshot.actors), [
            a.name for a in snapshot.actors if a.stale
        ]
    assert problems == []
    assert len(outcomes) >= 50, f"only {len(outcomes)} requests in {BUDGET}s"
    assert "served" in outcomes
    formatter = logging.Formatter()
    leaked = [r.name for r in caplog.records if KEY[8:24] in formatter.format(r)]
    assert leaked == []
    counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    print(f"{len(outcomes)} requests: {counts}")
