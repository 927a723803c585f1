"""Issue 15 item 1: a provider raising a BaseException that is not an Exception.

pykka stops *every* actor of the process when a handler raises one (its ``_actor_loop``
calls ``ActorRegistry.stop_all()``); switchover must turn it into a typed failure, keep
the actor alive, leave other runtimes alone and say so at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import pytest
import support
from hostile import HostileProvider, LibraryAbort, Raise
from switchover import (
    ChainExhausted,
    Config,
    Request,
    RetryConfig,
    Runtime,
    StreamInterrupted,
    SwitchoverError,
)

pytestmark = pytest.mark.timeout(60)

HI = ({"role": "user", "content": "hi"},)
BASE_EXCEPTIONS: list[Callable[[], BaseException]] = [
    asyncio.CancelledError,
    SystemExit,
    KeyboardInterrupt,
    LibraryAbort,
    GeneratorExit,
]
IDS = ["CancelledError", "SystemExit", "KeyboardInterrupt", "LibraryAbort", "GeneratorExit"]


def _config() -> Config:
    return support.make_config(retry=RetryConfig(attempts=1), request_timeout=10.0)


@pytest.mark.parametrize("make", BASE_EXCEPTIONS, ids=IDS)
@pytest.mark.parametrize("point", ["open", "first"])
def test_base_exception_before_commit_is_a_typed_failure_and_kills_nothing(
    make: Callable[[], BaseException], point: str, caplog: pytest.LogCaptureFixture
) -> None:
    hostile = HostileProvider(lambda call: Raise(make, point) if call.model == "bad" else None)
    config = _config()
    bystander = Runtime(config, providers={p.name: HostileProvider() for p in config.providers})
    victim = Runtime(config, providers={p.name: hostile for p in config.providers})
    with bystander, victim, caplog.at_level(logging.WARNING):
        request = Request(model="openai/bad", messages=HI, fallback_models=("claude/good",))
        done = victim.complete(request)  # the next chain entry serves it
        assert done.text == "hello"
        assert done.attempts[0].outcome == "error"
        assert done.attempts[0].message == f"adapter error: {make().__class__.__name__}"
        with pytest.raises(ChainExhausted):
            victim.complete(Request(model="openai/bad", messages=HI))
        # Every actor of both runtimes is still alive and serving.
        assert victim.complete(Request(model="openai/good", messages=HI)).text == "hello"
        assert bystander.complete(Request(model="openai/good", messages=HI)).text == "hello"
        assert all(a.restarts == 0 for a in bystander.inspect().actors)
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(type(make()).__name__ in r.getMessage() for r in warned), warned


@pytest.mark.parametrize(
    "make", [asyncio.CancelledError, LibraryAbort, GeneratorExit], ids=IDS[:2] + IDS[4:]
)
def test_base_exception_mid_stream_is_stream_interrupted(
    make: Callable[[], BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    hostile = HostileProvider(lambda call: Raise(make, "mid"))
    config = _config()
    with Runtime(config, providers={p.name: hostile for p in config.providers}) as rt:
        with caplog.at_level(logging.WARNING), pytest.raises(StreamInterrupted) as caught:
            rt.complete(Request(model="openai/m", messages=HI))
        assert caught.value.partial_text == "hel"
        hostile.plan = lambda call: None
        assert rt.complete(Request(model="openai/m", messages=HI)).text == "hello"
    assert any(type(make()).__name__ in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("make", [KeyboardInterrupt, SystemExit], ids=IDS[2:0:-1])
def test_an_exit_signal_in_the_callers_thread_reaches_the_caller(
    make: Callable[[], BaseException],
) -> None:
    """Ctrl-C (or a SIGTERM handler's sys.exit) arriving while the caller reads its stream
    is the caller's own: it propagates, and the stream is released, not failed."""
    hostile = HostileProvider(lambda call: Raise(make, "mid"))
    config = _config()
    with Runtime(config, providers={p.name: hostile for p in config.providers}) as rt:
        with pytest.raises(type(make())):
            rt.complete(Request(model="openai/m", messages=HI))
        support.flush(rt)
        key = next(a for a in rt.inspect().actors if a.name == "profile:openai/main")
        assert (key.state["failures"], key.state["calls"]) == (0, 1)
        hostile.plan = lambda call: None
        assert rt.complete(Request(model="openai/m", messages=HI)).text == "hello"


def test_a_base_exception_in_close_kills_nothing() -> None:
    hostile = HostileProvider(lambda call: Raise(asyncio.CancelledError, "close"))
    config = _config()
    with Runtime(config, providers={p.name: hostile for p in config.providers}) as rt:
        for _ in range(3):
            with contextlib.suppress(SwitchoverError):
                rt.complete(Request(model="openai/m", messages=HI))
        hostile.plan = lambda call: None
        assert rt.complete(Request(model="openai/m", messages=HI)).text == "hello"
        assert all(a.restarts == 0 for a in rt.inspect().actors)
