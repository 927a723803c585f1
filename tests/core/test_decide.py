"""The chain's decision table, row by row: DESIGN's classification table first, then the
rules for probes, probation, the last chain entry and max_tokens.

Each row reads: the classified failure, where the walk stands, what the chain does. The
same rows are drawn as a table in docs/chain-decisions.md.
"""

from __future__ import annotations

from typing import Any

import pytest
from switchover import ErrorKind, RetryConfig
from switchover._core._classify import Failure
from switchover._core._decide import (
    Decision,
    DropMaxTokens,
    NextModel,
    NextProfile,
    Probation,
    Reject,
    RetryInPlace,
    Standing,
    decide,
)

K = ErrorKind
RETRY = RetryConfig(attempts=3, min_delay=0.5, max_delay=8.0)

RATE_LIMIT = Failure(K.RATE_LIMIT, "slow down", status=429, retry_after=2.0)
AUTH = Failure(K.AUTH, "invalid api key", status=401)
BALANCE = Failure(K.BALANCE, "insufficient_quota", status=429)
MISSING = Failure(K.MODEL_MISSING, "model_not_found", status=404)
SERVER = Failure(K.TRANSIENT, "overloaded", status=529)
RESET = Failure(K.TRANSIENT, "connection reset")
HUNG = Failure(K.TRANSIENT, "no first token within 60s", timeout=True)
INVALID = Failure(K.INVALID_REQUEST, "unsupported parameter", status=400)
OUTPUT = Failure(K.OUTPUT_LIMIT, "max_tokens is too large", status=400)
CONTEXT = Failure(K.CONTEXT_EXCEEDED, "context_length_exceeded", status=400)
BAD = Failure(K.BAD_REQUEST, "messages: field required", status=400)
UNKNOWN = Failure(K.UNKNOWN, "stream ended before any event")


def at(**standing: Any) -> Standing:
    """Where the walk stands; by default the first try on a key of a healthy model that is
    not the last chain entry, with no max_tokens set."""
    standing.setdefault("last_entry", False)
    return Standing(**standing)


FIRST, LAST = at(), at(last_entry=True)
#: The first transient failure of a healthy model: probation, then retry in place if it
#: was granted; if another request holds the probe, on at once (or, as the last entry, retry).
PROBATION = Probation(granted=RetryInPlace(1), refused=NextModel(None))
PROBATION_LAST = Probation(granted=RetryInPlace(1), refused=RetryInPlace(1))

TABLE = [
    # --- DESIGN's classification table, one row (or more) per row ------------------------
    pytest.param(RATE_LIMIT, FIRST, NextProfile(RATE_LIMIT), id="rate_limit-next-profile"),
    pytest.param(AUTH, FIRST, NextProfile(AUTH), id="auth-next-profile"),
    pytest.param(BALANCE, FIRST, NextProfile(BALANCE), id="balance-next-profile"),
    pytest.param(MISSING, FIRST, NextModel(MISSING), id="model_missing-next-model-fails-it"),
    pytest.param(SERVER, FIRST, PROBATION, id="transient-5xx-retry-in-place-under-probation"),
    pytest.param(RESET, FIRST, PROBATION, id="transient-reset-retry-in-place-under-probation"),
    pytest.param(HUNG, FIRST, NextModel(HUNG), id="transient-timeout-next-model-at-once"),
    pytest.param(INVALID, FIRST, NextModel(None), id="invalid_request-next-model-unchanged"),
    pytest.param(OUTPUT, at(max_tokens_set=True), DropMaxTokens(), id="output_limit-drop-once"),
    pytest.param(
        CONTEXT,
        FIRST,
        Reject(
            K.CONTEXT_EXCEEDED,
            "the prompt is longer than the model's context window: context_length_exceeded",
        ),
        id="context_exceeded-reject",
    ),
    pytest.param(
        BAD,
        FIRST,
        Reject(K.BAD_REQUEST, "the request is malformed: messages: field required"),
        id="bad_request-reject",
    ),
    pytest.param(UNKNOWN, FIRST, RetryInPlace(1), id="unknown-retry-in-place"),
    # --- in-place retries (RetryConfig.attempts = 3 tries in all on one key) ---------------
    pytest.param(UNKNOWN, at(retries=1), RetryInPlace(2), id="unknown-second-retry"),
    pytest.param(UNKNOWN, at(retries=2), NextModel(None), id="unknown-out-of-tries-unchanged"),
    pytest.param(
        SERVER, at(holds_probe=True, retries=1), RetryInPlace(2), id="transient-on-probation-retry"
    ),
    pytest.param(
        SERVER, at(holds_probe=True, retries=2), NextModel(SERVER), id="transient-out-of-tries"
    ),
    pytest.param(
        SERVER,
        at(last_entry=True, retries=2),
        NextModel(SERVER),
        id="transient-out-of-tries-no-probe",
    ),
    # --- probes and probation ---------------------------------------------------------------
    pytest.param(
        SERVER,
        at(recovering=True, holds_probe=True),
        NextModel(SERVER),
        id="failed-probe-not-retried-when-an-entry-follows",
    ),
    pytest.param(
        SERVER,
        at(recovering=True),
        NextModel(SERVER),
        id="failed-probe-lost-its-lease-still-moves-on",
    ),
    pytest.param(
        SERVER,
        at(last_entry=True, recovering=True, holds_probe=True),
        RetryInPlace(1),
        id="failed-probe-of-last-entry-retried-in-place",
    ),
    pytest.param(
        SERVER,
        at(last_entry=True, recovering=True),
        PROBATION_LAST,
        id="last-entry-probe-lost-its-lease-asks-probation-again",
    ),
    pytest.param(
        UNKNOWN,
        at(recovering=True, holds_probe=True),
        RetryInPlace(1),
        id="unknown-from-a-probe-retried-in-place",
    ),
    pytest.param(
        SERVER, LAST, PROBATION_LAST, id="last-entry-retries-even-if-another-holds-the-probe"
    ),
    pytest.param(HUNG, LAST, NextModel(HUNG), id="last-entry-hung-target-not-retried"),
    pytest.param(
        HUNG, at(holds_probe=True), NextModel(HUNG), id="probe-holder-hung-target-not-retried"
    ),
    pytest.param(
        MISSING, at(recovering=True, holds_probe=True), NextModel(MISSING), id="probe-missing"
    ),
    pytest.param(RATE_LIMIT, LAST, NextProfile(RATE_LIMIT), id="last-entry-rate_limit"),
    # --- max_tokens ---------------------------------------------------------------------------
    pytest.param(
        OUTPUT,
        at(max_tokens_set=True, max_tokens_dropped=True),
        Reject(
            K.OUTPUT_LIMIT,
            "the model rejected the output length even after max_tokens was dropped: "
            "max_tokens is too large",
        ),
        id="output_limit-again-after-the-drop-rejects",
    ),
    pytest.param(OUTPUT, FIRST, NextModel(None), id="output_limit-without-max_tokens-next-model"),
    pytest.param(
        OUTPUT, LAST, NextModel(None), id="output_limit-without-max_tokens-last-entry-exhausts"
    ),
    pytest.param(
        OUTPUT,
        at(max_tokens_set=True, retries=2),
        DropMaxTokens(),
        id="output_limit-drop-is-no-in-place-try",
    ),
]


@pytest.mark.parametrize(("failure", "standing", "expected"), TABLE)
def test_decision_table(failure: Failure, standing: Standing, expected: Decision) -> None:
    assert decide(failure, standing, RETRY) == expected


def test_every_error_kind_has_a_row() -> None:
    kinds = {param.values[0].kind for param in TABLE}  # type: ignore[union-attr]
    assert kinds == set(ErrorKind)


@pytest.mark.parametrize("failure", [SERVER, UNKNOWN], ids=["transient", "unknown"])
def test_one_attempt_means_no_retry_in_place(failure: Failure) -> None:
    once = RetryConfig(attempts=1, min_delay=0.5, max_delay=8.0)
    expected = NextModel(failure if failure.kind is K.TRANSIENT else None)
    assert decide(failure, at(last_entry=True, holds_probe=True), once) == expected


def test_retry_after_does_not_change_the_decision() -> None:
    # The wait hint shapes the key's cooldown, not what the chain does next.
    hinted = Failure(K.TRANSIENT, "overloaded", status=503, retry_after=30.0)
    assert decide(hinted, FIRST, RETRY) == PROBATION
