"""Two runtimes with one shared Redis stand for two processes (a real redis-server)."""

from __future__ import annotations

import logging
import multiprocessing
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import bodies as b
import pytest
from support import OPENAI_BACKUP, OPENAI_MAIN, make_config
from switchover import (
    CooldownConfig,
    HealthState,
    KeyChange,
    ModelChange,
    Observer,
    Request,
    Runtime,
    SharedConfig,
)
from switchover.testing import Fail, Reply, ScriptedProvider

MESSAGES = ({"role": "user", "content": "hi"},)
#: Generous bound for one transition to cross Redis on loopback (catches hangs only).
CROSS = 5.0


class Remote(Observer):
    """Collects the transitions a runtime applied from another process."""

    def __init__(self) -> None:
        self.events: queue.SimpleQueue[KeyChange | ModelChange] = queue.SimpleQueue()

    def key_changed(self, event: KeyChange) -> None:
        if event.origin is not None:
            self.events.put(event)

    def model_changed(self, event: ModelChange) -> None:
        if event.origin is not None:
            self.events.put(event)

    def next(self, match: Callable[[Any], bool], timeout: float = CROSS) -> Any:
        while True:
            event = self.events.get(timeout=timeout)
            if match(event):
                return event


def request(model: str, *fallbacks: str) -> Request:
    return Request(model=model, messages=MESSAGES, fallback_models=fallbacks)


@pytest.fixture
def fleet(redis_server: Any) -> Iterator[Callable[..., tuple[Runtime, ScriptedProvider, Remote]]]:
    """``fleet(missing=seconds, **shared)`` -> (runtime, its provider, its Remote observer),
    ``missing`` the model_missing cooldown; all stopped after."""
    started: list[Runtime] = []

    def process(missing: float = 0.3, **shared: Any) -> tuple[Runtime, ScriptedProvider, Remote]:
        config = make_config(
            shared=SharedConfig(url=redis_server.url, namespace="t", **shared),
            cooldown=CooldownConfig(model_base={"model_missing": missing}),
        )
        provider = ScriptedProvider()
        remote = Remote()
        rt = Runtime(
            config,
            providers={p.name: provider for p in config.providers},
            rng=random.Random(len(started)),
            observers=[remote],
        )
        started.append(rt.start())
        return rt, provider, remote

    yield process
    for rt in started:
        rt.stop()


def wait_for(rt: Runtime, what: str, ok: Callable[[Mapping[str, Any]], bool]) -> None:
    """The link's status is polled: it changes on the link's threads (bounded)."""
    pause = threading.Event()
    for _ in range(int(CROSS / 0.01)):
        if ok(rt.inspect(ask=False).actor("shared").state):
            return
        pause.wait(0.01)
    raise AssertionError(f"the shared link never became {what}")


def wait_up(rt: Runtime, up: bool = True) -> None:
    wait_for(rt, "up" if up else "down", lambda status: status["up"] is up)


def test_a_revoked_key_in_one_process_is_skipped_by_the_other(fleet: Any) -> None:
    a, a_calls, _ = fleet()
    b_rt, b_calls, b_remote = fleet()
    wait_up(a)
    wait_up(b_rt)
    a_calls.script("gpt-4o", Fail(401, b.OPENAI_BAD_KEY), key=OPENAI_MAIN)
    assert a.complete(request("openai/gpt-4o")).served_by.profile == "backup"
    change = b_remote.next(lambda e: isinstance(e, KeyChange) and e.profile == "main")
    assert change.origin == a.inspect(ask=False).actor("shared").state["origin"]
    assert change.cooldown_until is not None
    # B never calls the revoked key: its first call goes to the backup key.
    assert b_rt.complete(request("openai/gpt-4o")).served_by.profile == "backup"
    assert [c.key for c in b_calls.calls] == [OPENAI_BACKUP]
    main = b_rt.inspect().actor("profile:openai/main").state
    assert main["origin"] == change.origin
    assert main["consecutive_failures"] == 1
    recent = b_rt.inspect().actor("profile:openai/main").recent
    assert any(h.type == "RemoteKeyState" and change.origin in h.summary for h in recent)


def test_a_removed_model_shows_where_its_state_came_from(fleet: Any) -> None:
    a, a_calls, _ = fleet()
    b_rt, b_calls, b_remote = fleet()
    wait_up(a)
    wait_up(b_rt)
    a_calls.script("gone", Fail(404, b.OPENAI_MODEL_MISSING), Reply())
    a.complete(request("openai/gone", "claude/sonnet"))
    b_remote.next(lambda e: isinstance(e, ModelChange) and e.model == "openai/gone")
    health = b_rt.health()["openai/gone"]
    assert health.state is HealthState.COOLING
    assert health.origin is not None
    assert health.shared_link is True
    assert a.health()["openai/gone"].origin is None  # A's own state
    served = b_rt.complete(request("openai/gone", "claude/sonnet")).served_by
    assert served.model == "claude/sonnet"
    assert b_calls.calls_to("gone") == []


def test_only_the_lease_holder_probes_when_a_shared_cooldown_ends(fleet: Any) -> None:
    a, a_calls, _ = fleet(probe_grace=30.0)
    b_rt, b_calls, b_remote = fleet(probe_grace=30.0)
    wait_up(a)
    wait_up(b_rt)
    a_calls.script("gone", Fail(404, b.OPENAI_MODEL_MISSING), Reply())
    a.complete(request("openai/gone", "claude/sonnet"))
    cooled = b_remote.next(lambda e: isinstance(e, ModelChange) and e.model == "openai/gone")
    # Past the cooldown's end B still leaves the probe to A, which holds the lease.
    row = b_rt.inspect().actor("health").state["models"][0]
    assert row["model"] == "openai/gone"
    # Waiting out a real 0.3 s cooldown: the runtimes run on the real clock here.
    threading.Event().wait(max(0.0, cooled.until - time.monotonic()) + 0.05)
    assert b_rt.complete(request("openai/gone", "claude/sonnet")).served_by.model == "claude/sonnet"
    assert b_calls.calls_to("gone") == []
    # A probes; its success reaches B, which then calls the model again.
    assert a.complete(request("openai/gone", "claude/sonnet")).served_by.model == "openai/gone"
    b_remote.next(lambda e: isinstance(e, ModelChange) and e.state is HealthState.HEALTHY)
    assert b_rt.complete(request("openai/gone")).served_by.model == "openai/gone"


def test_a_corrupt_or_foreign_value_is_ignored_with_one_warning(
    fleet: Any, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a, a_calls, _ = fleet()
    b_rt, _, b_remote = fleet()
    wait_up(a)
    wait_up(b_rt)
    raw = redis_server.client()
    raw.hset("t:state:model:openai/x", "someone", b"\xff not json")
    raw.sadd("t:index", "model:openai/x")
    with caplog.at_level(logging.WARNING, logger="switchover.shared"):
        for junk in (b"\xff", b"[1]", b'{"v": 9}', b'{"v":1,"origin":"o","target":"t","at":1e400}'):
            raw.publish("t:events", junk)
            raw.publish("t:events", junk)
        # Still subscribed: a real transition afterwards arrives.
        a_calls.script("gone", Fail(404, b.OPENAI_MODEL_MISSING), Reply())
        a.complete(request("openai/gone", "claude/sonnet"))
        b_remote.next(lambda e: isinstance(e, ModelChange) and e.model == "openai/gone")
    assert b_rt.inspect(ask=False).actor("shared").state["ignored"] == 8
    warnings = [r for r in caplog.records if "ignored a shared value" in r.getMessage()]
    assert len(warnings) == 2 * 4  # once per distinct problem in each process
    assert all(a.is_alive() for a in [t for t in threading.enumerate() if "health" in t.name])
    assert b_rt.health()["openai/gone"].state is HealthState.COOLING


def test_redis_killed_under_load_fails_no_request_and_resyncs_on_return(
    fleet: Any, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a, a_calls, _ = fleet(missing=60.0)
    b_rt, _, b_remote = fleet(missing=60.0)
    wait_up(a)
    wait_up(b_rt)
    stop = threading.Event()
    errors: list[BaseException] = []
    served = [0]

    def load(rt: Runtime) -> None:
        while not stop.is_set():
            try:
                rt.complete(request("openai/gpt-4o"))
                served[0] += 1
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=load, args=(rt,)) for rt in (a, b_rt) for _ in range(4)]
    with caplog.at_level(logging.WARNING, logger="switchover.shared"):
        for thread in threads:
            thread.start()
        redis_server.kill()
        wait_up(a, False)
        wait_up(b_rt, False)
        assert (
            b_rt.health()["openai/gone"].shared_link is False
            if "openai/gone" in b_rt.health()
            else True
        )
        status = a.inspect().actor("shared").state
        assert status["up"] is False
        assert "ConnectionError" in status["last_error"]
        # A learns something while Redis is down: it must reach B once Redis is back.
        a_calls.script("gone", Fail(404, b.OPENAI_MODEL_MISSING), Reply())
        a.complete(request("openai/gone", "claude/sonnet"))
        redis_server.start()  # empty: it kept nothing
        change = b_remote.next(lambda e: isinstance(e, ModelChange) and e.model == "openai/gone")
        wait_up(a)
        wait_up(b_rt)
        stop.set()
        for thread in threads:
            thread.join(timeout=CROSS)
    assert errors == []
    assert served[0] > 0
    assert change.state is HealthState.COOLING
    downs = [r for r in caplog.records if "is down" in r.getMessage()]
    assert len(downs) == 2  # once per process, however many operations failed
    assert "up again" in caplog.text


def test_redis_down_at_start_then_up(redis_server: Any, fleet: Any) -> None:
    redis_server.kill()
    a, _, _ = fleet()
    assert a.complete(request("openai/gpt-4o")).text == "ok"
    wait_up(a, False)
    redis_server.start()
    wait_up(a)


def _child(url: str, done: Any) -> None:
    config = make_config(shared=SharedConfig(url=url, namespace="t"))
    provider = ScriptedProvider()
    provider.script("gpt-4o", Fail(401, b.OPENAI_BAD_KEY), key=OPENAI_MAIN)
    with Runtime(config, providers={p.name: provider for p in config.providers}) as rt:
        rt.complete(Request(model="openai/gpt-4o", messages=MESSAGES))
        for _ in range(500):  # until the link has written it (bounded)
            if rt.inspect(ask=False).actor("shared").state["published"]:
                break
            threading.Event().wait(0.01)
    done.put("ok")


def test_a_cooldown_crosses_real_processes(fleet: Any, redis_server: Any) -> None:
    rt, calls, remote = fleet()
    wait_up(rt)
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    child = context.Process(target=_child, args=(redis_server.url, done))
    child.start()
    try:
        change = remote.next(lambda e: isinstance(e, KeyChange) and e.profile == "main")
        assert done.get(timeout=30) == "ok"
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert change.origin.split(":")[1] == str(child.pid)
    assert rt.complete(request("openai/gpt-4o")).served_by.profile == "backup"
    assert [c.key for c in calls.calls] == [OPENAI_BACKUP]


def test_a_frozen_redis_slows_no_request_and_the_link_comes_back(
    fleet: Any, redis_server: Any
) -> None:
    """SIGSTOP: connections stay open and nothing answers (a partition, or a stuck server)."""
    # A long Redis timeout: a request that waited on Redis would take all of it.
    a, a_calls, _ = fleet(missing=60.0, timeout=2.0)
    b_rt, _, b_remote = fleet(missing=60.0, timeout=2.0)
    wait_up(a)
    wait_up(b_rt)
    redis_server.pause()
    try:
        # A's change must be written while Redis hangs: requests must not notice.
        a_calls.script("gone", Fail(404, b.OPENAI_MODEL_MISSING), Reply())
        slowest = 0.0
        for _ in range(50):
            start = time.monotonic()
            a.complete(request("openai/gone", "claude/sonnet"))
            slowest = max(slowest, time.monotonic() - start)
        wait_up(a, False)
    finally:
        redis_server.resume()
    assert slowest < 1.0  # generous: catches a wait on Redis (2 s), not a slow machine
    # Commands sent to the frozen server each wait out the 2 s timeout before reconnecting.
    change = b_remote.next(
        lambda e: isinstance(e, ModelChange) and e.model == "openai/gone", timeout=4 * CROSS
    )
    assert change.state is HealthState.COOLING
    wait_up(a)


def test_the_redis_password_never_shows(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    from redisserver import RedisServer

    password = "Pw-Quokka-7781-Zephyr"
    server = RedisServer(tmp_path, password=password)
    server.start()
    config = make_config(shared=SharedConfig(url=server.url, namespace="t"))
    wrong = make_config(
        shared=SharedConfig(url=server.url.replace(password, "nope"), namespace="t")
    )
    provider = ScriptedProvider()
    try:
        # Everything logged, the switchover loggers included (another test may quiet them).
        with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="switchover"):
            with Runtime(config, providers={p.name: provider for p in config.providers}) as rt:
                wait_up(rt)
                server.kill()
                wait_up(rt, False)
                seen = [repr(rt), repr(rt.config), str(rt.inspect().to_dict()), str(rt.health())]
            with Runtime(wrong, providers={p.name: provider for p in wrong.providers}) as rt:
                server.start()
                wait_for(rt, "refused", lambda s: "AuthenticationError" in str(s["last_error"]))
                status = rt.inspect().actor("shared").state
                assert status["up"] is False
                seen.append(str(status))
    finally:
        server.kill()
    seen.append(caplog.text)
    assert "is down" in caplog.text
    assert all(password not in text for text in seen)


def test_switchover_inspect_shows_the_link_and_keeps_its_text_verbatim(fleet: Any) -> None:
    import io

    from rich.console import Console
    from switchover._cli._inspect import render

    rt, _, _ = fleet()
    wait_up(rt)
    snapshot = rt.inspect().to_dict()
    link = next(a for a in snapshot["actors"] if a["kind"] == "link")
    link["state"]["last_error"], link["state"]["up"] = "[bold]boom[/bold]", False
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(render("http://x", snapshot, {}))
    assert f"Shared link {link['state']['url']} [t] as {link['state']['origin']}" in out.getvalue()
    assert "DOWN ([bold]boom[/bold])" in out.getvalue()


def test_a_rate_limit_for_one_model_is_shared_for_that_model_only(fleet: Any) -> None:
    a, a_calls, _ = fleet()
    b_rt, b_calls, b_remote = fleet()
    wait_up(a)
    wait_up(b_rt)
    a_calls.script("gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT), Reply(), key=OPENAI_MAIN)
    assert a.complete(request("openai/gpt-4o")).served_by.profile == "backup"
    change = b_remote.next(lambda e: isinstance(e, KeyChange) and e.profile == "main")
    assert change.model == "openai/gpt-4o"
    assert change.cooldown_until is not None
    assert b_rt.complete(request("openai/gpt-4o")).served_by.profile == "backup"
    assert b_rt.complete(request("openai/gpt-4o-mini")).served_by.profile == "main"
    assert [(c.model, c.key) for c in b_calls.calls] == [
        ("gpt-4o", OPENAI_BACKUP),
        ("gpt-4o-mini", OPENAI_MAIN),
    ]
