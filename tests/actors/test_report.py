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

TABLE = [
    pytest.param(
        KeySucceeded(), False, HEALTHY, None, id="success-on-a-healthy-model-says-nothing"
    ),
    pytest.param(KeySucceeded(), False, COOLING, ModelSucceeded(M, False), id="success-heals"),
    pytest.param(KeySucceeded(), True, HEALTHY, ModelSucceeded(M, True), id="probe-success"),
    pytest.param(KeyFailed(BOOM), False, HEALTHY, ModelFailed(M, BOOM, False), id="health-kind"),
    pytest.param(KeyFailed(BOOM), True, COOLING, ModelFailed(M, BOOM, True), id="probe-failure"),
    pytest.param(KeyFailed(BAD), False, HEALTHY, None, id="not-a-health-kind-says-nothing"),
    pytest.param(KeyFailed(CUT), True, HEALTHY, ModelReleased(M), id="probe-unknown-releases"),
    pytest.param(KeyReleased(), False, COOLING, None, id="released-says-nothing"),
    pytest.param(KeyReleased(), True, COOLING, ModelReleased(M), id="probe-released"),
]


@pytest.mark.parametrize(("outcome", "probe", "row", "expected"), TABLE)
def test_what_the_model_hears(
    outcome: KeyOutcome, probe: bool, row: ModelRow, expected: ModelOutcome | None
) -> None:
    assert model_report(M, outcome, probe=probe, table={M: row}) == expected


def test_a_model_failure_must_be_of_a_health_kind() -> None:
    with pytest.raises(ValueError, match="invalid_request failure says nothing"):
        ModelFailed(M, BAD, False)
