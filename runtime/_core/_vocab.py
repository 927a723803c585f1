"""The two vocabularies every layer speaks: what a failure says, and a model's health state."""

from __future__ import annotations

import enum


class ErrorKind(enum.StrEnum):
    """What a provider failure says about the key, the model or the request."""

    RATE_LIMIT = "rate_limit"
    AUTH = "auth"
    BALANCE = "balance"
    MODEL_MISSING = "model_missing"
    TRANSIENT = "transient"
    INVALID_REQUEST = "invalid_request"
    BAD_REQUEST = "bad_request"
    CONTEXT_EXCEEDED = "context_exceeded"
    OUTPUT_LIMIT = "output_limit"
    UNKNOWN = "unknown"


class HealthState(enum.StrEnum):
    """States of a model's health row."""

    HEALTHY = "healthy"
    COOLING = "cooling"
    PROBING = "probing"
    DISABLED = "disabled"
