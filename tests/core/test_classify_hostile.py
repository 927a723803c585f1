"""The classifier on anything a provider (or a proxy in front of it) might send back:
it never raises and always returns a kind."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchover import ErrorKind, Failure, classify
from switchover._core._classify import MAX_RETRY_AFTER, parse_go_duration, transport_failure
from switchover._core._redact import MAX_MESSAGE, Redactor

SECRET = "sk-live-0123456789abcdefghij"
HOSTILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ERROR_WORDS = st.sampled_from(
    [
        "rate_limit_error",
        "rate_limit_exceeded",
        "insufficient_quota",
        "invalid_api_key",
        "authentication_error",
        "overloaded_error",
        "model_not_found",
        "context_length_exceeded",
        "invalid_request_error",
        "not_found_error",
        "server_error",
        "max_tokens",
        "billing_error",
        "x_spend_limit_reached",
        "403",
        "claude-3-haiku-20240307",
        SECRET,
    ]
)
TEXT = st.one_of(st.text(max_size=80), ERROR_WORDS, st.lists(ERROR_WORDS).map(" ".join))
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT, st.binary()
)
KEYS = st.one_of(
    st.sampled_from(["error", "type", "code", "message", "param", "details", "error_code"]),
    st.sampled_from(["response", "status", "retry_after"]),
    st.text(max_size=10),
)
JSONISH = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=repr)


BODY = st.one_of(
    JSONISH,
    JSONISH.map(_dumps),
    JSONISH.map(lambda v: _dumps(v).encode()),
    st.builds(lambda e: {"error": e}, JSONISH),
    st.builds(lambda e: {"type": "error", "error": e}, JSONISH),
    st.builds(lambda e: {"response": {"error": e}}, JSONISH),
    st.binary(max_size=200),  # invalid UTF-8 included
    st.sampled_from(
        [
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            '{"error": {"message": "truncated',
            "[" * 50_000,  # deeper than json's recursion limit
            "",
            "   ",
            "null",
        ]
    ),
)
HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            "retry-after",
            "Retry-After",
            "retry-after-ms",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-reset-tokens",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ]
    ),
    st.text(max_size=20),
)
HEADER_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "0",
            "-5",
            "1e309",
            "nan",
            "inf",
            "6m0s",
            "1h2m3.5s",
            "12ms",
            "99999999999999h",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "2026-01-01T00:00:00Z",
            "2026-13-45T99:00:00Z",
        ]
    ),
    st.floats(allow_nan=True).map(repr),
)
STATUS = st.one_of(st.none(), st.integers(min_value=-1000, max_value=100_000))


@HOSTILE
@given(
    status=STATUS,
    body=BODY,
    headers=st.one_of(st.none(), st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6)),
    wall=st.one_of(st.none(), st.floats(min_value=0, max_value=1e11)),
)
def test_the_classifier_never_raises_and_always_returns_a_kind(
    status: int | None, body: Any, headers: dict[str, str] | None, wall: float | None
) -> None:
    result = classify(
        status=status,
        body=body,
        headers=headers,
        wall=None if wall is None else (lambda: wall),
        redact=Redactor([SECRET]),
    )
    assert isinstance(result, Failure)
    assert isinstance(result.kind, ErrorKind)
    assert result.status == status
    assert isinstance(result.message, str)
    assert len(result.message) <= MAX_MESSAGE
    assert SECRET[:12] not in result.message
    assert result.code is None or isinstance(result.code, str)
    retry_after = result.retry_after
    assert retry_after is None or (math.isfinite(retry_after) and retry_after >= 0)
    assert retry_after is None or retry_after <= MAX_RETRY_AFTER


@HOSTILE
@given(st.one_of(st.text(max_size=40), HEADER_VALUES))
def test_go_durations_never_raise(text: str) -> None:
    value = parse_go_duration(text)
    assert value is None or (math.isfinite(value) and 0 <= value <= MAX_RETRY_AFTER)


@HOSTILE
@given(st.text(max_size=300))
def test_transport_failures_keep_keys_out(message: str) -> None:
    result = transport_failure(message + SECRET, timeout=False, redact=Redactor([SECRET]))
    assert result.kind is ErrorKind.TRANSIENT
    assert SECRET[:12] not in result.message
