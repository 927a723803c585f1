"""The error tree: shape, structured fields, and survival through copy.copy and pickle."""

from __future__ import annotations

import copy
import pickle

import pytest
from switchover import (
    Attempt,
    ChainExhausted,
    ConfigError,
    DeadlineExceeded,
    ErrorKind,
    ProviderFailure,
    RequestRejected,
    RuntimeStoppedError,
    ServedBy,
    StreamInterrupted,
    SwitchoverError,
)
from switchover._core._classify import Failure

ATTEMPTS = (
    Attempt(
        model="openai/gpt-4o",
        provider="openai",
        profile="main",
        outcome="error",
        kind=ErrorKind.RATE_LIMIT,
        status=429,
        code="rate_limit_exceeded",
        message="HTTP 429 rate_limit_exceeded: slow down",
        duration=0.25,
    ),
    Attempt(
        model="claude/x", provider="claude", profile=None, outcome="skipped", message="cooling"
    ),
)
SERVED = ServedBy(model="openai/gpt-4o", provider="openai", profile="main")

ERRORS = [
    pytest.param(ConfigError("retry.attempts", "must be 1..20, got 0"), id="ConfigError"),
    pytest.param(RuntimeStoppedError("the runtime is not running"), id="RuntimeStoppedError"),
    pytest.param(
        RequestRejected("prompt too long", kind=ErrorKind.CONTEXT_EXCEEDED, attempts=ATTEMPTS),
        id="RequestRejected",
    ),
    pytest.param(
        ChainExhausted("every entry failed", attempts=ATTEMPTS, retry_after=12.5),
        id="ChainExhausted",
    ),
    pytest.param(ChainExhausted("no", attempts=(), retry_after=None), id="ChainExhausted-none"),
    pytest.param(DeadlineExceeded("timed out", attempts=ATTEMPTS), id="DeadlineExceeded"),
    pytest.param(
        StreamInterrupted("broke", partial_text="hel", served_by=SERVED, kind=ErrorKind.TRANSIENT),
        id="StreamInterrupted",
    ),
]


def state(error: BaseException) -> tuple[object, ...]:
    return (type(error), str(error), error.args, dict(vars(error)))


@pytest.mark.parametrize("error", ERRORS)
def test_every_error_survives_copy(error: SwitchoverError) -> None:
    assert state(copy.copy(error)) == state(error)
    assert state(copy.deepcopy(error)) == state(error)


@pytest.mark.parametrize("error", ERRORS)
def test_every_error_survives_pickle(error: SwitchoverError) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert state(pickle.loads(pickle.dumps(error, protocol))) == state(error)


@pytest.mark.parametrize("error", ERRORS)
def test_every_error_is_a_switchover_error(error: SwitchoverError) -> None:
    assert isinstance(error, SwitchoverError)
    with pytest.raises(SwitchoverError):
        raise error


def test_the_tree() -> None:
    for cls in (
        ConfigError,
        RuntimeStoppedError,
        RequestRejected,
        ChainExhausted,
        DeadlineExceeded,
        StreamInterrupted,
    ):
        assert cls.__bases__[0] is SwitchoverError
    assert issubclass(ConfigError, ValueError)  # bad configuration is a bad value
    assert SwitchoverError.__bases__ == (Exception,)


def test_fields_are_data() -> None:
    exhausted = ChainExhausted("x", attempts=ATTEMPTS, retry_after=3.0)
    assert (exhausted.attempts, exhausted.retry_after) == (ATTEMPTS, 3.0)
    rejected = RequestRejected("x", kind=ErrorKind.OUTPUT_LIMIT)
    assert (rejected.kind, rejected.attempts) == (ErrorKind.OUTPUT_LIMIT, ())
    config = ConfigError("providers", "configure at least one provider")
    assert (config.field, config.reason) == ("providers", "configure at least one provider")
    assert str(config) == "providers: configure at least one provider"


def test_provider_failure_survives_pickle_with_its_failure() -> None:
    failure = Failure(kind=ErrorKind.TRANSIENT, message="reset", timeout=True)
    error = ProviderFailure(failure)
    again = pickle.loads(pickle.dumps(error))
    assert again.failure == failure
    assert copy.copy(error).failure == failure
