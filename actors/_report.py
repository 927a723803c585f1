"""The one rule for what a key and a model hear of a call's outcome.

The key hears every call's outcome (:data:`KeyOutcome`). The model hears less: the chain
reports a chain entry's end once (not every in-place retry), and the committed stream its
end; both ask :func:`model_report` what, if anything, to tell the health actor.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._core._policy import HEALTHY, MODEL_KINDS, ModelRow
from .messages import (
    KeyFailed,
    KeyOutcome,
    KeySucceeded,
    ModelFailed,
    ModelOutcome,
    ModelReleased,
    ModelSucceeded,
)


def model_report(
    model: str, outcome: KeyOutcome, *, probe: bool, table: Mapping[str, ModelRow]
) -> ModelOutcome | None:
    """What the health actor hears of ``outcome`` on ``model``; None: nothing.

    A failure of a health kind counts against the model. A success heals it when its
    published row (in ``table``) is not healthy; on a healthy model it changes nothing, so
    it is not sent (the common case costs no message). The probe holder (``probe``) always
    reports, released when it proved nothing, so that the next request may probe.
    """
    if isinstance(outcome, KeyFailed) and outcome.failure.kind in MODEL_KINDS:
        return ModelFailed(model, outcome.failure, probe)
    if isinstance(outcome, KeySucceeded) and (probe or table.get(model, HEALTHY) != HEALTHY):
        return ModelSucceeded(model, probe)
    if probe:
        return ModelReleased(model)
    return None
