"""The observer protocol: hooks fan out, a failing observer is contained and logged once."""

from __future__ import annotations

import logging

import pytest
from switchover import Observer, RequestClosed, RequestOpened
from switchover._core._observe import Observers

OPENED = RequestOpened(request_id=1, chain=("a/m",), deadline=10.0, at=1.0)
CLOSED = RequestClosed(request_id=1, outcome="served", at=2.0)


class Recorder(Observer):
    def __init__(self) -> None:
        self.seen: list[object] = []

    def request_opened(self, event: RequestOpened) -> None:
        self.seen.append(event)

    def request_closed(self, event: RequestClosed) -> None:
        self.seen.append(event)


class Broken(Observer):
    def request_opened(self, event: RequestOpened) -> None:
        raise RuntimeError("observer bug")


def test_every_observer_hears_every_hook_in_order() -> None:
    first, second = Recorder(), Recorder()
    observers = Observers([first, second])
    observers.request_opened(OPENED)
    observers.request_closed(CLOSED)
    assert first.seen == second.seen == [OPENED, CLOSED]


def test_hooks_not_overridden_do_nothing() -> None:
    Observers([Observer()]).request_opened(OPENED)  # no error, no effect


def test_a_failing_observer_never_reaches_the_caller_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    after = Recorder()
    observers = Observers([Broken(), after])
    with caplog.at_level(logging.WARNING, logger="switchover"):
        for _ in range(3):
            observers.request_opened(OPENED)
    assert after.seen == [OPENED] * 3
    warnings = [r for r in caplog.records if "observer Broken failed" in r.getMessage()]
    assert len(warnings) == 1


def test_no_observers_is_falsy_so_the_runtime_skips_them() -> None:
    assert not Observers([])
    assert Observers([Observer()])


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param(Observer(), "not one Observer", id="one-observer"),
        pytest.param([object()], "got object", id="not-an-observer"),
    ],
)
def test_bad_observers_are_refused_with_a_clear_error(given: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Observers(given)  # type: ignore[arg-type]
