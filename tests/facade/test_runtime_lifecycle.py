"""Lifecycle: stop() under load ends every request promptly, start/stop cycles leak no
thread or descriptor, and a runtime used after os.fork() says to create it after forking."""

from __future__ import annotations

import os
import random
import threading

import pytest
from fleet import (
    PROMPT,
    actor_threads,
    open_fds,
    request,
    slow_or_hanging,
    small_config,
    stop_under_load,
)
from switchover import ProviderCall, Runtime, RuntimeStoppedError
from switchover.testing import Hang, Reply, ScriptedProvider
from switchover.testing._history import History

WORKERS = 16
IN_FLIGHT = 64


def test_stop_with_64_requests_in_flight_ends_each_promptly_and_leaves_nothing() -> None:
    """16 callers read committed streams, 16 walks hang inside the provider, and 32 wait
    for a free worker; stop() ends all of them."""
    scripted = ScriptedProvider()
    hanging = threading.Semaphore(0)

    def rule(call: ProviderCall) -> Hang | Reply:
        if call.model == "hang":
            hanging.release()
        return slow_or_hanging(call.model)

    scripted.rule(rule)
    history = History()
    config = small_config(workers=WORKERS, timeout=600.0)
    threads_before, fds_before = len(actor_threads()), open_fds()
    rt = Runtime(config, providers={"a": scripted}, observers=[history]).start()

    outcomes, took = stop_under_load(
        rt, "a", lambda: all(hanging.acquire(timeout=PROMPT) for _ in range(WORKERS))
    )

    assert took < PROMPT
    assert outcomes == {"stopped": IN_FLIGHT}
    assert len(actor_threads()) == threads_before
    assert open_fds() == fds_before
    closed = [r for r in history.records if type(r).__name__ == "RequestClosed"]
    assert len(closed) == IN_FLIGHT
    history.assert_valid(config)


def test_200_start_stop_cycles_leak_no_thread_and_no_descriptor() -> None:
    config = small_config(workers=4)
    scripted = ScriptedProvider()
    threads_before, fds_before = threading.active_count(), open_fds()
    for cycle in range(200):
        with Runtime(config, providers={"a": scripted}, rng=random.Random(cycle)) as rt:
            assert rt.complete(request()).text == "ok"
    assert threading.active_count() == threads_before
    assert actor_threads() == []
    assert open_fds() == fds_before


def test_a_stopped_runtime_stays_stopped() -> None:
    rt = Runtime(small_config(), providers={"a": ScriptedProvider()})
    assert rt.start() is rt.start()  # starting twice is one start
    rt.stop()
    rt.stop()
    with pytest.raises(RuntimeStoppedError, match="create a new one"):
        rt.start()
    with pytest.raises(RuntimeStoppedError):
        rt.complete(request())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_runtime_used_after_fork_says_to_create_it_after_forking() -> None:
    with Runtime(small_config(), providers={"a": ScriptedProvider()}) as rt:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what happened through the pipe, then leave at once
            report = []
            for name, use in [
                ("complete", lambda: rt.complete(request())),
                ("health", rt.health),
                ("inspect", rt.inspect),
                ("start", rt.start),
            ]:
                try:
                    use()
                    report.append(f"{name}: no error")
                except RuntimeStoppedError as error:
                    report.append(f"{name}: {'after forking' in str(error)}")
                except BaseException as error:
                    report.append(f"{name}: {type(error).__name__}")
            rt.stop()  # forgets the parent's actors without waiting on them
            report.append("stopped")
            os.write(write, "\n".join(report).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            report = pipe.read().splitlines()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert report == [
            "complete: True",
            "health: True",
            "inspect: True",
            "start: True",
            "stopped",
        ]
        # The parent's runtime is untouched.
        assert rt.complete(request()).text == "ok"
