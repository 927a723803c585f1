"""The walk tells observers of each call before it is made (``attempt_began``)."""

from __future__ import annotations

import threading

import bodies as b
from support import OPENAI_BACKUP, OPENAI_MAIN, StartRuntime, flush
from switchover import AttemptBegan, AttemptRecord, Observer, ProviderCall, Request
from switchover.testing import Fail, FakeClock, ScriptedProvider, Step

GPT = "openai/gpt-4o"
MESSAGES = ({"role": "user", "content": "hi"},)


class Calls(Observer):
    """Keeps every began and ended event, in the order they came."""

    def __init__(self) -> None:
        self.events: list[AttemptBegan | AttemptRecord] = []
        self._lock = threading.Lock()

    def attempt_began(self, event: AttemptBegan) -> None:
        with self._lock:
            self.events.append(event)

    def attempt_ended(self, event: AttemptRecord) -> None:
        with self._lock:
            self.events.append(event)

    def began(self) -> list[AttemptBegan]:
        return [e for e in self.events if isinstance(e, AttemptBegan)]


def test_each_call_is_announced_before_the_provider_sees_it(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    calls = Calls()
    announced_at_call: list[int] = []

    def count(call: ProviderCall) -> Step | None:
        announced_at_call.append(len(calls.began()))
        return Fail(429, b.OPENAI_RATE_LIMIT) if call.api_key == OPENAI_MAIN else None

    scripted.rule(count)
    rt = start(observers=[calls])
    done = rt.complete(Request(model=GPT, messages=MESSAGES))

    assert done.served_by.profile == "backup"
    assert announced_at_call == [1, 2]  # each call came after its own announcement
    began = calls.began()
    assert [(e.model, e.provider, e.profile, e.probe) for e in began] == [
        (GPT, "openai", "main", False),
        (GPT, "openai", "backup", False),
    ]
    ended = [e for e in calls.events if isinstance(e, AttemptRecord)]
    # The failed call ended before the next began; each began at its call's start.
    assert calls.events.index(ended[0]) < calls.events.index(began[1])
    assert [e.at for e in began] == [e.start for e in ended]
    assert len({e.request_id for e in calls.events}) == 1


def test_a_skipped_key_is_not_announced(start: StartRuntime, scripted: ScriptedProvider) -> None:
    calls = Calls()
    scripted.script("gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT), key=OPENAI_MAIN)
    rt = start(observers=[calls])
    rt.complete(Request(model=GPT, messages=MESSAGES))  # main cools down
    flush(rt)  # ... before the next request reads its state
    calls.events.clear()

    rt.complete(Request(model=GPT, messages=MESSAGES))

    skipped = [e for e in calls.events if isinstance(e, AttemptRecord) and e.outcome == "skipped"]
    assert [e.profile for e in skipped] == ["main"]
    assert [e.profile for e in calls.began()] == ["backup"]
    assert scripted.calls[-1].key == OPENAI_BACKUP


def test_probe_calls_are_announced_as_probes(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    calls = Calls()
    scripted.script("gpt-4o", Fail(404, b.OPENAI_MODEL_MISSING))
    rt = start(observers=[calls])
    request = Request(model=GPT, messages=MESSAGES, fallback_models=("fast",))
    rt.complete(request)  # gpt-4o cools down; served by the fallback
    flush(rt)  # the failure is recorded before time moves on
    clock.advance(3600)  # past the cooldown: the next request probes (and finds it missing)
    calls.events.clear()

    rt.complete(request)

    first = calls.began()[0]
    assert (first.model, first.probe) == (GPT, True)
