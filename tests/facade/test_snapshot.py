"""The debug mailbox in process: snapshots, ``Runtime.inspect()`` and its time budget."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from switchover import (
    ActorSnapshot,
    Config,
    Done,
    ErrorKind,
    Event,
    ProviderCall,
    Request,
    Runtime,
    RuntimeSnapshot,
    TextDelta,
)
from switchover.testing import Fail, FakeClock, ScriptedProvider, inject_hold

HI = ({"role": "user", "content": "hi"},)
#: The issue's bound for one inspect() call.
BUDGET = 0.050
ALL_ACTORS = {
    "profile:openai/main",
    "profile:openai/backup",
    "profile:claude/default",
    "health",
    "chain:0",
    "chain:1",
    "chain:2",
    "chain:3",
    "supervisor",
}


def timed_inspects(runtime: Runtime, times: int = 5) -> tuple[RuntimeSnapshot, float]:
    """The last snapshot and the median seconds per call.

    The median, not the maximum: the machine is shared, and a single descheduled call
    says nothing about inspect(). A design that waits on stuck actors one after another
    (or until they answer) still fails it by a wide margin.
    """
    durations = []
    snapshot = None
    for _ in range(times):
        started = time.perf_counter()
        snapshot = runtime.inspect()
        durations.append(time.perf_counter() - started)
    assert snapshot is not None
    return snapshot, statistics.median(durations)


def assert_plain_json(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), repr(value)


def test_to_dict_gives_plain_json_types(
    runtime: Runtime, provider: ScriptedProvider, settle: Callable[..., None]
) -> None:
    provider.script("gpt-4o", Fail(429, {"error": {"code": "rate_limit_exceeded"}}))
    runtime.complete(Request(model="openai/gpt-4o", messages=HI))
    settle("profile:openai/main", "health")
    document = runtime.inspect().to_dict()

    assert_plain_json(document)
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    main = next(a for a in document["actors"] if a["name"] == "profile:openai/main")
    assert main["state"]["last_error_kind"] == "rate_limit"
    assert [entry["type"] for entry in main["recent"]] == ["KeyFailed", "InjectHold"]


def test_to_dict_turns_enums_tuples_and_non_finite_floats_into_json() -> None:
    snapshot = ActorSnapshot(
        name="x",
        kind="health",
        state={"kind": ErrorKind.AUTH, "pair": (1, 2), "never": float("inf"), 3: float("nan")},
        mailbox_depth=0,
        processed=0,
        restarts=0,
        recent=(),
    )
    assert snapshot.to_dict()["state"] == {"kind": "auth", "pair": [1, 2], "never": None, "3": None}


def test_every_actor_answers_live_when_free(runtime: Runtime) -> None:
    snapshot = runtime.inspect()

    assert {a.name for a in snapshot.actors} == ALL_ACTORS
    assert all(not a.stale and a.age == 0.0 for a in snapshot.actors)
    assert {a.kind for a in snapshot.actors} == {"profile", "health", "chain", "supervisor"}
    main = snapshot.actor("profile:openai/main").state
    assert main["key"].startswith("sha256:")
    assert main["cooldown_remaining"] is None


def test_inspect_answers_in_time_when_actors_are_stuck_in_a_handler(
    runtime: Runtime, clock: FakeClock, hold: Callable[[str], None]
) -> None:
    clock.advance(2.0)
    runtime.reset_profile("openai", "main")  # publishes at clock 1002
    hold("profile:openai/main")
    hold("health")  # never published since its cell was made at clock 1000
    hold("supervisor")
    clock.advance(7.5)

    snapshot, median = timed_inspects(runtime)

    assert median < BUDGET
    main, health = snapshot.actor("profile:openai/main"), snapshot.actor("health")
    assert main.stale
    assert main.age == pytest.approx(7.5)
    assert health.stale
    assert health.age == pytest.approx(9.5)
    assert main.state["profile"] == "main"
    assert health.state == {"models": []}
    # Five inspects of a stuck actor leave one Inspect waiting, which is not counted.
    assert main.mailbox_depth == 0
    assert health.mailbox_depth == 0
    stale = {a.name for a in snapshot.actors if a.stale}
    assert stale == {"profile:openai/main", "health", "supervisor"}


def test_inspect_without_asking_sends_no_message(
    runtime: Runtime, clock: FakeClock, hold: Callable[[str], None]
) -> None:
    runtime.reset_profile("openai", "main")
    clock.advance(3.0)
    hold("health")

    for _ in range(5):
        snapshot = runtime.inspect(ask=False)

    assert {a.name for a in snapshot.actors} == ALL_ACTORS
    assert all(a.stale for a in snapshot.actors)
    main = snapshot.actor("profile:openai/main")
    assert main.state["profile"] == "main"
    assert main.age == pytest.approx(3.0)
    # An asking inspect would have left an Inspect queued behind the held handler.
    assert snapshot.actor("health").mailbox_depth == 0
    runtime.inspect()
    assert runtime.inspect(ask=False).actor("health").mailbox_depth == 1


def test_inspect_answers_in_time_with_ten_thousand_queued_messages(runtime: Runtime) -> None:
    name = "profile:claude/default"
    release, passed = threading.Event(), threading.Event()
    passed.set()
    try:
        assert inject_hold(runtime, name, release).wait(timeout=10)
        for _ in range(10_000):
            inject_hold(runtime, name, passed)  # each returns at once when its turn comes

        snapshot, median = timed_inspects(runtime)

        assert median < BUDGET
        queued = snapshot.actor(name)
        assert queued.stale
        assert queued.mailbox_depth == 10_000
        assert sum(a.stale for a in snapshot.actors) == 1
    finally:
        release.set()
    runtime.reset_profile("claude", "default")  # answered once the queue has drained
    caught_up = runtime.inspect().actor(name)
    assert not caught_up.stale
    assert caught_up.mailbox_depth == 0
    assert caught_up.processed == 10_002


def test_flight_recorder_keeps_the_last_32_with_wall_clock_times(
    runtime: Runtime, clock: FakeClock
) -> None:
    for _ in range(39):
        runtime.reset_profile("openai", "backup")
    clock.advance(3.0)
    handled_at = clock.wall()
    runtime.reset_profile("openai", "backup")
    clock.advance(10.0)

    snapshot = runtime.inspect()
    backup = snapshot.actor("profile:openai/backup")

    assert backup.processed == 40  # the inspects themselves are not counted
    assert len(backup.recent) == 32
    last = backup.recent[-1]
    assert (last.type, last.summary) == ("ResetKey", "ResetKey()")
    assert last.at == pytest.approx(handled_at)
    assert snapshot.taken_at == pytest.approx(handled_at + 10.0)
    assert all(entry.type == "ResetKey" for entry in backup.recent)


class GateProvider:
    """A provider whose calls wait until ``release`` is set, then answer "done"."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def open(self, call: ProviderCall) -> Iterator[Event]:
        self.entered.set()
        self.release.wait()
        return iter((TextDelta("done"), Done()))

    def close(self) -> None:
        pass


def test_chain_snapshot_shows_the_request_in_flight(config: Config, clock: FakeClock) -> None:
    scripted, gate = ScriptedProvider(), GateProvider()
    scripted.script("gpt-4o", Fail(404, {"error": {"code": "model_not_found"}}))
    request = Request(model="openai/gpt-4o", messages=[{"role": "user", "content": "SECRETPROMPT"}])
    with Runtime(config, providers={"openai": scripted, "claude": gate}, clock=clock) as rt:
        done: list[str] = []
        caller = threading.Thread(target=lambda: done.append(rt.complete(request).text))
        caller.start()
        try:
            assert gate.entered.wait(timeout=10)
            clock.advance(4.0)
            snapshot = rt.inspect()
        finally:
            gate.release.set()
            caller.join(timeout=10)
        after = rt.inspect()

    chains = [a for a in snapshot.actors if a.kind == "chain"]
    busy = [a for a in chains if a.state["busy"]]
    assert len(busy) == 1
    assert busy[0].stale  # inside the provider call, so answered from its published state
    assert busy[0].state == {
        "busy": True,
        "request_id": 1,
        "chain": ["openai/gpt-4o", "claude/claude-sonnet-4-5"],
        "entry": "claude/claude-sonnet-4-5",
        "profile": "default",
        "attempts": 2,
        "elapsed": 4.0,
    }
    assert all(a.state == {"busy": False} and not a.stale for a in chains if a is not busy[0])
    assert done == ["done"]
    assert all(a.state == {"busy": False} for a in after.actors if a.kind == "chain")
    # The flight recorder names the chain, never the prompt.
    summary = after.actor(busy[0].name).recent[-1].summary
    assert "openai/gpt-4o > claude/claude-sonnet-4-5" in summary
    assert "SECRETPROMPT" not in summary
