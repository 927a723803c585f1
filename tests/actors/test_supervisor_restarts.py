"""Supervision: every actor kind restarts from its last published state after a crash,
work in flight still ends, queued messages reach the replacement, and no ask hangs."""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from fleet import live, ref_of, request, small_config, supervisor_of
from switchover import ChainExhausted, Config, ErrorKind, ProviderCall, Runtime, SwitchoverError
from switchover._core._observe import RequestClosed, RequestOpened
from switchover.actors._base import ask
from switchover.actors._chain import _Walk
from switchover.actors.messages import Inspect, KeyFailed
from switchover.testing import (
    Fail,
    FakeClock,
    Reply,
    ScriptedProvider,
    Step,
    failure,
    inject_crash,
)
from switchover.testing._history import History

RATE_LIMITED = Fail(429, {"error": {"code": "rate_limit_exceeded", "message": "slow down"}})
MISSING = Fail(404, {"error": {"code": "model_not_found", "message": "no such model"}})

Launch = Callable[..., Runtime]


@pytest.fixture
def scripted() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def launch(scripted: ScriptedProvider) -> Iterator[Launch]:
    """``launch(config=None, **kwargs)`` -> a started Runtime, stopped at teardown."""
    started: list[Runtime] = []

    def _launch(config: Config | None = None, **kwargs: Any) -> Runtime:
        config = config or small_config()
        kwargs.setdefault("clock", FakeClock())
        kwargs.setdefault("rng", random.Random(3))
        rt = Runtime(config, providers={p.name: scripted for p in config.providers}, **kwargs)
        started.append(rt)
        return rt.start()

    yield _launch
    for rt in started:
        rt.stop()


def key_of(config: Config, profile: str) -> str:
    return config.providers[0].profiles[profile]


def cool_things_down(rt: Runtime, scripted: ScriptedProvider) -> None:
    """Leave key a/p0 cooling (a 429) and model a/gone cooling (a 404)."""
    scripted.script("m", RATE_LIMITED, key=key_of(rt.config, "p0"))
    assert rt.complete(request("a/m")).served_by.profile == "p1"
    scripted.script("gone", MISSING)
    with pytest.raises(ChainExhausted):
        rt.complete(request("a/gone"))
    # The outcomes were told before the answers came back; these asks queue behind them.
    live(rt, "profile:a/p0")
    live(rt, "health")


def hold_every_worker(rt: Runtime, scripted: ScriptedProvider) -> list[object]:
    """Run ``chain_workers`` requests that must all be inside the provider at once: this
    passes only if every worker of the pool is alive and reachable."""
    workers = rt.config.chain_workers
    barrier = threading.Barrier(workers, timeout=10)

    def rule(call: ProviderCall) -> Step:
        barrier.wait()
        return Reply("together")

    scripted.rule(rule)
    results: list[object] = []

    def one() -> None:
        try:
            results.append(rt.complete(request("a/m")).text)
        except Exception as error:
            results.append(error)

    threads = [threading.Thread(target=one) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    scripted.rule(None)
    return results


# --- each actor kind ------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["tell", "ask"])
@pytest.mark.parametrize("name", ["profile:a/p0", "health", "chain:0", "supervisor"])
def test_a_crashed_actor_is_restarted_with_its_last_published_state(
    launch: Launch, scripted: ScriptedProvider, name: str, via: str
) -> None:
    rt = launch()
    cool_things_down(rt, scripted)
    before = live(rt, name)
    health = rt.health()

    inject_crash(rt, name, via=via)  # type: ignore[arg-type]

    after = live(rt, name)  # answered by the replacement
    assert after.restarts == before.restarts + 1
    assert after.state == before.state
    assert rt.health() == health
    # The key is still cooling and the model still cooling: the walk still skips them.
    assert rt.complete(request("a/m")).served_by.profile == "p1"
    with pytest.raises(ChainExhausted, match="0 calls failed"):
        rt.complete(request("a/gone"))


def test_the_restarted_supervisor_still_restarts_the_others(
    launch: Launch, scripted: ScriptedProvider
) -> None:
    rt = launch()
    inject_crash(rt, "supervisor")
    inject_crash(rt, "supervisor", via="ask")
    inject_crash(rt, "health")
    inject_crash(rt, "chain:1", via="ask")
    assert live(rt, "supervisor").restarts == 2
    assert live(rt, "health").restarts == 1
    assert live(rt, "chain:1").restarts == 1
    assert live(rt, "supervisor").state["last_crash"] == "chain:1: RuntimeError"
    assert rt.complete(request()).text == "ok"


def test_an_actor_that_died_while_the_supervisor_was_down_is_swept_back(
    launch: Launch,
) -> None:
    rt = launch()
    supervisor = supervisor_of(rt)
    # An actor gone with no crash report (as when its report met a dead supervisor).
    dead = ref_of(rt, "profile:a/p1")
    dead.stop()

    inject_crash(rt, "supervisor")

    assert supervisor.wait_replaced("profile:a/p1", dead.actor_urn, 5.0)
    assert live(rt, "profile:a/p1").restarts == 1
    assert live(rt, "supervisor").restarts == 1


# --- work in flight and queued messages -----------------------------------------------------


def test_a_request_in_flight_ends_normally_across_crashes_of_its_key_and_health(
    launch: Launch, scripted: ScriptedProvider
) -> None:
    rt = launch()
    entered, release = threading.Event(), threading.Event()

    def rule(call: ProviderCall) -> Step:
        entered.set()
        assert release.wait(10)
        return Reply("made it")

    scripted.rule(rule)
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(rt.complete(request()).text))
    caller.start()
    assert entered.wait(10)

    inject_crash(rt, "profile:a/p0")
    inject_crash(rt, "health", via="ask")
    release.set()
    caller.join(10)

    assert result == ["made it"]
    # The stream's outcome reached the replacement profile actor.
    assert live(rt, "profile:a/p0").state["successes"] == 1


class GatedRandom(random.Random):
    """A Random whose first ``uniform`` blocks until released (holds an actor mid-handler)."""

    def __init__(self) -> None:
        super().__init__(5)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.armed = True

    def uniform(self, a: float, b: float) -> float:
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(10)
        return super().uniform(a, b)


def test_messages_queued_behind_a_crash_reach_the_replacement(launch: Launch) -> None:
    rng = GatedRandom()
    rt = launch(rng=rng)
    ref = ref_of(rt, "profile:a/p0")
    rate_limit = failure(ErrorKind.RATE_LIMIT, "slow down")

    ref.tell(KeyFailed(rate_limit))  # blocks inside the cooldown's jitter
    assert rng.entered.wait(10)
    inject_crash(rt, "profile:a/p0", wait=False)  # queued: crashes it next
    ref.tell(KeyFailed(rate_limit))  # queued behind the crash
    answer = ref.ask(Inspect(), block=False)  # likewise
    rng.release.set()

    snapshot = answer.get(timeout=10)
    assert snapshot.restarts == 1, "answered by the replacement"
    assert snapshot.state["consecutive_failures"] == 2, "both failures were recorded"


def test_an_ask_answered_by_a_crash_is_reported_and_the_actor_replaced(
    launch: Launch,
) -> None:
    rt = launch()
    supervisor = supervisor_of(rt)
    old = ref_of(rt, "health")
    inject_crash(rt, "health", via="ask")
    new = supervisor.directory.members["health"].ref
    assert new is not None
    assert not old.is_alive(), "a failed ask stops the actor (pykka alone would not)"
    assert new.is_alive()
    rt.reset()  # the operator's ask goes to the replacement


# --- chain workers and the pool -------------------------------------------------------------


def crash_walks(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """Make the next ``times`` walks crash inside their chain worker (a bug in the walk)."""
    crashed: list[int] = []
    model_open = _Walk._model_open

    def broken(self: _Walk, *args: Any, **kwargs: Any) -> bool:
        if len(crashed) < times:
            crashed.append(self.run_msg.request_id)
            raise RuntimeError("a bug in the walk")
        return model_open(self, *args, **kwargs)

    monkeypatch.setattr(_Walk, "_model_open", broken)
    return crashed


def chain_restarts(rt: Runtime) -> int:
    """Restarts of the pool, read from the cells (a crashed worker's count is kept there)."""
    return sum(rt.inspect().actor(f"chain:{i}").restarts for i in range(rt.config.chain_workers))


def test_a_worker_crashing_mid_request_is_replaced_and_the_request_walked_again(
    launch: Launch, scripted: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = History()
    rt = launch(observers=[history])
    crashed = crash_walks(monkeypatch, times=1)

    assert rt.complete(request()).text == "ok"

    assert len(crashed) == 1
    closed = [r for r in history.of_type(RequestClosed) if isinstance(r, RequestClosed)]
    opened = [r for r in history.of_type(RequestOpened) if isinstance(r, RequestOpened)]
    assert [c.outcome for c in closed] == ["crashed", "served"]
    assert opened[1].retry_of == opened[0].request_id == crashed[0]
    history.assert_valid(rt.config)
    assert hold_every_worker(rt, scripted) == ["together"] * rt.config.chain_workers
    assert chain_restarts(rt) == 1


def test_a_request_that_crashes_every_worker_fails_clearly_and_the_pool_survives(
    launch: Launch, scripted: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = launch()
    crash_walks(monkeypatch, times=100)
    with pytest.raises(SwitchoverError, match="crashed 2 chain workers"):
        rt.complete(request())
    monkeypatch.undo()
    assert hold_every_worker(rt, scripted) == ["together"] * rt.config.chain_workers
    assert chain_restarts(rt) == 2


def test_a_stale_worker_ref_in_the_idle_queue_is_skipped(
    launch: Launch, scripted: ScriptedProvider
) -> None:
    rt = launch()
    supervisor = supervisor_of(rt)
    workers = rt.config.chain_workers
    inject_crash(rt, "chain:0")  # idle when it crashed: its old ref is still queued
    assert supervisor.idle.qsize() == workers + 1

    assert hold_every_worker(rt, scripted) == ["together"] * workers
    assert supervisor.idle.qsize() == workers, "the stale ref was taken and dropped"


# --- asks to stopping actors ----------------------------------------------------------------


class LateStop:
    """An ``actor_stopped`` that reads "running" ``n`` times, then "stopped": the window in
    which pykka's ask checks a ref, the actor stops, and the message lands in a dead inbox."""

    def __init__(self, n: int) -> None:
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def racing_ref(ref: pykka.ActorRef[Any], n: int = 1) -> pykka.ActorRef[Any]:
    racing = copy.copy(ref)
    racing.actor_stopped = LateStop(n)  # type: ignore[assignment]
    return racing


def test_an_ask_that_slips_into_a_stopped_actor_fails_fast_instead_of_hanging(
    launch: Launch,
) -> None:
    rt = launch()
    ref = ref_of(rt, "profile:a/p0")
    ref.stop()

    # pykka itself: the ask lands in the dead inbox and is never answered.
    with pytest.raises(pykka.Timeout):
        racing_ref(ref).ask(Inspect(), timeout=0.3)
    # switchover's ask notices the actor is gone.
    with pytest.raises(pykka.ActorDeadError):
        ask(racing_ref(ref), Inspect(), timeout=60)


def test_a_request_handed_to_a_stopping_worker_goes_to_the_next_one(
    launch: Launch, scripted: ScriptedProvider
) -> None:
    rt = launch()
    supervisor = supervisor_of(rt)
    ref = ref_of(rt, "chain:0")
    ref.stop()
    # Looks alive to the dispatcher's check and to pykka's, then is dead: the message is lost.
    supervisor.idle.put(racing_ref(ref, n=2))
    for _ in range(rt.config.chain_workers):
        assert rt.complete(request()).text == "ok"


def test_an_operator_ask_to_an_actor_that_never_comes_back_is_a_clear_error(
    launch: Launch,
) -> None:
    rt = launch()
    ref = ref_of(rt, "profile:a/p1")
    ref.stop()  # dead with no crash report and no sweep: nobody replaces it
    with pytest.raises(SwitchoverError, match="did not answer within"):
        rt.reset_profile("a", "p1")
