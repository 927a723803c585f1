"""What a model hears of a call's outcome: the one rule the walk and the stream share."""

from __future__ import annotations

import pytest
from switchover import ErrorKind
from switchover._core._classify import Failure
from switchover._core._policy import HEALTHY, ModelRow
from switchover._core._vocab import HealthState
from switchover.actors._report import model_report
from switchover.actors.messages import (
    KeyFailed,
    KeyOutcome,
    KeyReleased,
    KeySucceeded,
    ModelFailed,
    ModelOutcome,
    ModelReleased,
    ModelSucceeded,
)

M = "openai/gpt-4o"
BOOM = Failure(ErrorKind.TRANSIENT, "boom", status=500)
CUT = Failure(ErrorKind.UNKNOWN, "adapter error")
BAD = Failure(ErrorKind.INVALID_REQUEST, "nope", status=400)
COOLING = ModelRow(state=HealthState.COOLING, until=2000.0, kind=ErrorKind.TRANSIENT, count=1)

T = 1_000.0  # when the call's gates were read: the model hears it too

TABLE = [
    pytest.param(
        KeySucceeded(M, T), False, HEALTHY, None, id="success-on-a-healthy-model-says-nothing"
    ),
    pytest.param(
        KeySucceeded(M, T), False, COOLING, ModelSucceeded(M, False, T), id="success-heals"
    ),
    pytest.param(KeySucceeded(M, T), True, HEALTHY, ModelSucceeded(M, True, T), id="probe-success"),
    pytest.param(
        KeyFailed(M, BOOM, T), False, HEALTHY, ModelFailed(M, BOOM, False, T), id="health-kind"
    ),
    pytest.param(
        KeyFailed(M, BOOM, T), True, COOLING, ModelFailed(M, BOOM, True, T), id="probe-failure"
    ),
    pytest.param(KeyFailed(M, BAD, T), False, HEALTHY, None, id="not-a-health-kind-says-nothing"),
    pytest.param(
        KeyFailed(M, CUT, T), True, HEALTHY, ModelReleased(M, T), id="probe-unknown-releases"
    ),
    pytest.param(KeyReleased(M, T), False, COOLING, None, id="released-says-nothing"),
    pytest.param(KeyReleased(M, T), True, COOLING, ModelReleased(M, T), id="probe-released"),
    pytest.param(
        KeySucceeded(M, T),
        False,
        ModelRow(changed_at=T - 1),  # healed before: nothing to tell
        None,
        id="success-on-a-healed-model-says-nothing",
    ),
]


@pytest.mark.parametrize(("outcome", "probe", "row", "expected"), TABLE)
def test_what_the_model_hears(
    outcome: KeyOutcome, probe: bool, row: ModelRow, expected: ModelOutcome | None
) -> None:
    assert model_report(outcome, probe=probe, table={M: row}) == expected


def test_a_model_failure_must_be_of_a_health_kind() -> None:
    with pytest.raises(ValueError, match="invalid_request failure says nothing"):
        ModelFailed(M, BAD, False, T)
