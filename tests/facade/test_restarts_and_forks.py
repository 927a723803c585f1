"""Issue 15 items 9 and 11: outcomes told to a restarting actor reach its replacement; a
stream inherited by a forked child is refused there; stopping with streams in flight
warns about nothing."""

from __future__ import annotations

import logging
import os
import threading

import pytest
import support
from hostile import HostileProvider, Raise
from switchover import (
    ChainExhausted,
    ErrorKind,
    Failure,
    ProviderFailure,
    Request,
    RetryConfig,
    Runtime,
    RuntimeStoppedError,
    TextDelta,
)
from switchover.testing import FakeServer, Reply, ScriptedProvider, inject_crash, inject_hold

pytestmark = pytest.mark.timeout(60)

HI = ({"role": "user", "content": "hi"},)
KEY = "profile:openai/main"


def _down() -> ProviderFailure:
    return ProviderFailure(Failure(kind=ErrorKind.TRANSIENT, message="down"))


def test_outcomes_told_while_a_key_actor_restarts_reach_its_replacement() -> None:
    config = support.make_config(retry=RetryConfig(attempts=1), request_timeout=10.0)
    hostile = HostileProvider(lambda call: Raise(_down, "open"))
    with Runtime(config, providers={p.name: hostile for p in config.providers}) as rt:
        release = threading.Event()
        try:
            # The supervisor is busy: the key actor's crash report waits in its mailbox,
            # so the key actor stays dead while requests tell it their outcomes.
            assert inject_hold(rt, "supervisor", release).wait(timeout=10)
            inject_crash(rt, KEY, wait=False)
            directory = rt._running().directory
            ref = directory.members[KEY].ref
            assert ref is not None
            ref.actor_stopped.wait(timeout=10)
            for index in range(3):  # three models: a failed one cools and is skipped
                with pytest.raises(ChainExhausted):
                    rt.complete(Request(model=f"openai/m{index}", messages=HI))
        finally:
            release.set()
        assert rt._running().wait_replaced(KEY, ref.actor_urn, 10)
        support.flush(rt)
        key = next(a for a in rt.inspect().actors if a.name == KEY)
        assert key.restarts == 1
        assert key.state["failures"] == 3, key.state


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_stream_inherited_by_a_forked_child_is_refused_there() -> None:
    text = "".join(f"chunk{i} " for i in range(40))
    with FakeServer(default=Reply(text=text, chunks=40, chunk_delay=0.01)) as server:
        config = support.make_config(
            providers=[
                support.ProviderConfig(
                    name="openai",
                    api="openai",
                    base_url=server.openai_url,
                    profiles={"main": support.OPENAI_MAIN},
                )
            ],
            aliases={},
        )
        with Runtime(config) as rt, rt.stream(Request(model="openai/m", messages=HI)) as stream:
            first = next(stream)
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    next(stream)
                    outcome = "read"
                except RuntimeStoppedError as error:
                    outcome = "refused" if "another process" in str(error) else "other"
                except BaseException as error:
                    outcome = type(error).__name__
                stream.close()
                del stream
                os.write(write, outcome.encode())
                os._exit(0)
            os.close(write)
            with os.fdopen(read) as pipe:
                outcome = pipe.read()
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert outcome == "refused"
            rest = [e.text for e in stream if isinstance(e, TextDelta)]
            assert isinstance(first, TextDelta)
            assert first.text + "".join(rest) == text


def test_stopping_with_streams_in_flight_warns_about_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = support.make_config()
    provider = ScriptedProvider(Reply(text="abcdef", chunks=6))
    rt = Runtime(config, providers={p.name: provider for p in config.providers}).start()
    streams = [rt.stream(Request(model="openai/m", messages=HI)) for _ in range(8)]
    with caplog.at_level(logging.DEBUG, logger="switchover.actors"):
        rt.stop()
        for stream in streams:
            stream.close()
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == []
    assert any("dropped" in r.getMessage() for r in caplog.records)
