"""Failovers and in-place retries worked out from a request's records (pure, no threads)."""

from __future__ import annotations

import pytest
from switchover import AttemptBegan, AttemptRecord, ErrorKind, RequestClosed, RequestOpened
from switchover._core._walks import Walks

A, B = "openai/a", "claude/b"


def _record(model: str, profile: str | None, outcome: str, kind: ErrorKind | None = None):
    provider = model.split("/", maxsplit=1)[0]
    return AttemptRecord(7, model, provider, profile, outcome, kind, False, 0.0, 0.0, 1.0)


def _steps(records) -> list[tuple[str | None, str | None, bool]]:
    walks = Walks()
    walks.opened(RequestOpened(7, (A, B), deadline=9.0, at=0.0))
    steps = [walks.ended(r) for r in records]
    return [(s.failover_from, s.because, s.retry) for s in steps if s is not None]


RL, TR = ErrorKind.RATE_LIMIT, ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        pytest.param([_record(A, "main", "ok")], [(None, None, False)], id="served at once"),
        pytest.param(
            [_record(A, "main", "error", TR), _record(A, "main", "ok")],
            [(None, None, False), (None, None, True)],
            id="retried in place",
        ),
        pytest.param(
            [_record(A, "main", "error", RL), _record(A, "backup", "ok")],
            [(None, None, False), (None, None, False)],
            id="next key is no failover and no retry",
        ),
        pytest.param(
            [_record(A, "main", "error", RL), _record(B, "default", "ok")],
            [(None, None, False), (A, "rate_limit", False)],
            id="failover after an error",
        ),
        pytest.param(
            [_record(A, None, "skipped"), _record(B, "default", "ok")],
            [(A, "skipped", False)],
            id="failover after a skip",
        ),
        pytest.param(
            [_record(A, "main", "skipped"), _record(A, "backup", "ok")],
            [(None, None, False)],
            id="a skipped key then the next key",
        ),
    ],
)
def test_steps(records, expected) -> None:
    assert _steps(records) == expected


def test_an_announced_call_is_worked_out_once() -> None:
    walks = Walks()
    walks.opened(RequestOpened(7, (A, B), deadline=9.0, at=0.0))
    walks.ended(_record(A, "main", "error", RL))
    step = walks.began(AttemptBegan(7, B, "claude", "default", False, 1.0))
    assert step is not None
    assert step.failover_from == A
    assert walks.ended(_record(B, "default", "ok")) is None
    summary = walks.closed(RequestClosed(7, "served", 2.0))
    assert (summary.calls, summary.skips, summary.failovers) == (2, 0, 1)
    assert walks.closed(RequestClosed(7, "served", 2.0)) is None


def test_a_request_not_seen_opening_is_ignored() -> None:
    walks = Walks()
    assert walks.ended(_record(A, "main", "ok")) is None
    assert walks.began(AttemptBegan(7, A, "openai", "main", False, 1.0)) is None
    assert walks.position(7, A) == -1
