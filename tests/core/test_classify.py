"""The one classifier: every row of DESIGN.md's classification table, wait hints, and a
regression test for each classification defect of the reference."""

from __future__ import annotations

import json
import math

import bodies as b
import pytest
from freezegun import freeze_time
from switchover import ErrorKind, classify
from switchover._core._classify import parse_go_duration, transport_failure
from switchover._core._clock import SystemClock

K = ErrorKind

# (status, body, kind): status None is an error event inside a 200 stream.
TABLE = [
    # rate_limit: next profile; the key cools down
    pytest.param(429, b.OPENAI_RATE_LIMIT, K.RATE_LIMIT, id="openai-429-rate_limit_exceeded"),
    pytest.param(429, b.ANTHROPIC_RATE_LIMIT, K.RATE_LIMIT, id="anthropic-429-rate_limit_error"),
    pytest.param(429, b.ANTHROPIC_RAMP, K.RATE_LIMIT, id="anthropic-429-ramp_limit_exceeded"),
    pytest.param(429, "Too Many Requests", K.RATE_LIMIT, id="429-plain-text"),
    pytest.param(None, b.ANTHROPIC_RATE_LIMIT, K.RATE_LIMIT, id="stream-anthropic-rate_limit"),
    pytest.param(None, b.RESPONSES_ERROR_EVENT, K.RATE_LIMIT, id="stream-responses-error-event"),
    # auth: next profile; the key cools down, escalating
    pytest.param(401, b.OPENAI_BAD_KEY, K.AUTH, id="openai-401-invalid_api_key"),
    pytest.param(403, b.OPENAI_COUNTRY, K.AUTH, id="openai-403-country"),
    pytest.param(401, b.ANTHROPIC_AUTH, K.AUTH, id="anthropic-401-authentication_error"),
    pytest.param(403, b.ANTHROPIC_PERMISSION, K.AUTH, id="anthropic-403-permission_error"),
    pytest.param(401, "Unauthorized", K.AUTH, id="401-plain-text"),
    pytest.param(None, b.ANTHROPIC_AUTH, K.AUTH, id="stream-anthropic-authentication_error"),
    # balance: next profile; long key cooldown
    pytest.param(429, b.OPENAI_QUOTA, K.BALANCE, id="openai-429-insufficient_quota"),
    pytest.param(429, b.OPENAI_NO_CREDITS, K.BALANCE, id="openai-429-credit_balance_exhausted"),
    pytest.param(402, b.ANTHROPIC_BILLING, K.BALANCE, id="anthropic-402-billing_error"),
    pytest.param(400, b.ANTHROPIC_CREDIT_LOW, K.BALANCE, id="anthropic-400-credit-balance-low"),
    pytest.param(429, b.ANTHROPIC_SPEND_LIMIT, K.BALANCE, id="anthropic-429-enforced-spend"),
    pytest.param(429, b.ANTHROPIC_CONTRACT_LIMIT, K.BALANCE, id="anthropic-429-contract-spend"),
    pytest.param(402, b.ANTHROPIC_LINKED_LIMIT, K.BALANCE, id="anthropic-402-linked-org-spend"),
    pytest.param(402, "Payment Required", K.BALANCE, id="402-plain-text"),
    # model_missing: next model; model health failure
    pytest.param(404, b.OPENAI_MODEL_MISSING, K.MODEL_MISSING, id="openai-404-model_not_found"),
    pytest.param(404, b.ANTHROPIC_MODEL_MISSING, K.MODEL_MISSING, id="anthropic-404-model"),
    pytest.param(
        400,
        b.openai("The model `o9` does not exist or you do not have access to it.", None, None),
        K.MODEL_MISSING,
        id="openai-400-does-not-exist-text",
    ),
    # transient: retry in place, then next model
    pytest.param(500, b.OPENAI_SERVER_ERROR, K.TRANSIENT, id="openai-500-server_error"),
    pytest.param(503, b.OPENAI_OVERLOADED, K.TRANSIENT, id="openai-503-overloaded"),
    pytest.param(500, b.ANTHROPIC_API_ERROR, K.TRANSIENT, id="anthropic-500-api_error"),
    pytest.param(504, b.ANTHROPIC_TIMEOUT, K.TRANSIENT, id="anthropic-504-timeout_error"),
    pytest.param(529, b.ANTHROPIC_OVERLOADED, K.TRANSIENT, id="anthropic-529-overloaded_error"),
    pytest.param(529, b.ANTHROPIC_COMPACTION, K.TRANSIENT, id="anthropic-529-compaction"),
    pytest.param(502, b.CLOUDFLARE_502, K.TRANSIENT, id="502-cloudflare-html"),
    pytest.param(None, b.ANTHROPIC_OVERLOADED, K.TRANSIENT, id="stream-anthropic-overloaded"),
    pytest.param(None, b.OPENAI_STREAM_SERVER_ERROR, K.TRANSIENT, id="stream-openai-server_error"),
    pytest.param(None, b.RESPONSES_FAILED, K.TRANSIENT, id="stream-responses-failed"),
    # invalid_request: 400/404/422 with no known marker -> next model, no retry
    pytest.param(400, b.OPENAI_TOO_LONG_STRING, K.INVALID_REQUEST, id="openai-400-no-marker"),
    pytest.param(400, b.ANTHROPIC_TEMPERATURE, K.INVALID_REQUEST, id="anthropic-400-no-marker"),
    pytest.param(404, b.ANTHROPIC_NOT_FOUND, K.INVALID_REQUEST, id="anthropic-404-not-a-model"),
    pytest.param(404, None, K.INVALID_REQUEST, id="404-empty-body"),
    pytest.param(422, "Unprocessable Entity", K.INVALID_REQUEST, id="422-plain-text"),
    pytest.param(413, b.CLOUDFLARE_413, K.INVALID_REQUEST, id="413-cloudflare-html"),
    pytest.param(429, b.OPENAI_REQUEST_TOO_LARGE, K.INVALID_REQUEST, id="openai-429-too-large"),
    pytest.param(
        None,
        b.anthropic("invalid_request_error", "Unexpected value for this model"),
        K.INVALID_REQUEST,
        id="stream-invalid_request_error",
    ),
    # output_limit: drop max_tokens for this model once, then reject
    pytest.param(400, b.ANTHROPIC_MAX_TOKENS, K.OUTPUT_LIMIT, id="anthropic-400-max_tokens"),
    pytest.param(400, b.OPENAI_MAX_TOKENS, K.OUTPUT_LIMIT, id="openai-400-max_tokens-param"),
    pytest.param(
        400, b.OPENAI_MAX_COMPLETION_TOKENS, K.OUTPUT_LIMIT, id="openai-400-max_completion_tokens"
    ),
    pytest.param(
        400, b.OPENAI_CONTEXT_COMPLETION, K.OUTPUT_LIMIT, id="openai-400-context-in-completion"
    ),
    # context_exceeded: reject, the caller must shorten
    pytest.param(400, b.OPENAI_CONTEXT, K.CONTEXT_EXCEEDED, id="openai-400-context_length"),
    pytest.param(400, b.ANTHROPIC_PROMPT_TOO_LONG, K.CONTEXT_EXCEEDED, id="anthropic-400-prompt"),
    pytest.param(None, b.OPENAI_CONTEXT, K.CONTEXT_EXCEEDED, id="stream-context_length"),
    # bad_request: invalid_request_error with a known marker -> reject
    pytest.param(400, b.ANTHROPIC_ROLES, K.BAD_REQUEST, id="anthropic-400-roles-alternate"),
    pytest.param(400, b.OPENAI_UNRECOGNIZED_ARG, K.BAD_REQUEST, id="openai-400-unrecognized-arg"),
    pytest.param(400, b.OPENAI_INVALID_TYPE, K.BAD_REQUEST, id="openai-400-invalid_type"),
    # unknown: anything else
    pytest.param(None, "something went wrong", K.UNKNOWN, id="stream-plain-text"),
    pytest.param(None, b"\xff\xfe\x00 not json", K.UNKNOWN, id="stream-undecodable-bytes"),
    pytest.param(None, "{not json", K.UNKNOWN, id="stream-broken-json"),
    pytest.param(None, None, K.UNKNOWN, id="stream-no-body"),
    pytest.param(200, "", K.UNKNOWN, id="200-empty"),
    pytest.param(302, "<html>moved</html>", K.UNKNOWN, id="302-redirect"),
    pytest.param(None, {"error": {"type": "mystery", "message": "?"}}, K.UNKNOWN, id="new-type"),
]


@pytest.mark.parametrize(("status", "body", "kind"), TABLE)
def test_classification_table(status: int | None, body: object, kind: ErrorKind) -> None:
    assert classify(status=status, body=body).kind is kind


@pytest.mark.parametrize(("status", "body", "kind"), TABLE)
def test_body_may_arrive_as_text_or_bytes(
    status: int | None, body: object, kind: ErrorKind
) -> None:
    if isinstance(body, dict):
        text = json.dumps(body)
        assert classify(status=status, body=text).kind is kind
        assert classify(status=status, body=text.encode()).kind is kind


def test_failure_carries_status_code_and_a_short_message() -> None:
    failure = classify(status=429, body=b.OPENAI_RATE_LIMIT)
    assert failure.status == 429
    assert failure.code == "rate_limit_exceeded"
    assert "Rate limit reached" in failure.message
    assert len(failure.message) <= 200
    assert not failure.timeout


def test_details_error_code_wins_over_type() -> None:
    assert classify(status=429, body=b.ANTHROPIC_SPEND_LIMIT).code == "enforced_spend_limit_reached"


def test_transport_failures_are_transient_and_timeouts_are_marked() -> None:
    refused = transport_failure("connection refused", timeout=False)
    hung = transport_failure("no first token within 60s", timeout=True)
    assert refused.kind is hung.kind is K.TRANSIENT
    assert (refused.timeout, hung.timeout) == (False, True)
    assert refused.status is None


# --- the reference's own cases, in spirit --------------------------------------------------


def test_429_about_a_max_tokens_ceiling_is_not_a_rate_limit() -> None:
    assert classify(status=429, body=b.TIER_CEILING_429).kind is K.OUTPUT_LIMIT


def test_context_length_without_the_completion_is_context_exceeded_not_output_limit() -> None:
    text = "This model's maximum context length is 16385 tokens, however you requested 30000"
    assert classify(status=400, body=text).kind is K.CONTEXT_EXCEEDED


def test_genuine_rate_limit_text_is_a_rate_limit() -> None:
    text = "429 Too Many Requests: rate limit exceeded, please retry after 1s"
    assert classify(status=429, body=text).kind is K.RATE_LIMIT
    assert classify(status=None, body=text).kind is K.RATE_LIMIT


def test_auth_error_is_not_an_output_limit() -> None:
    assert classify(status=401, body="401 Unauthorized: invalid api key").kind is K.AUTH
    assert classify(status=None, body="401 Unauthorized: invalid api key").kind is K.AUTH


# --- defect 1: no bare substrings ------------------------------------------------------------


def test_defect1_model_id_containing_403_with_a_529_body_is_transient() -> None:
    text = (
        "Anthropic API error 529 at https://api.anthropic.com/v1/messages "
        '(model=claude-3-haiku-20240307): {"type":"error","error":{"type":"overloaded_error",'
        '"message":"Overloaded"}}'
    )
    assert classify(status=529, body=text).kind is K.TRANSIENT
    body = b.anthropic("overloaded_error", "Overloaded while serving claude-3-haiku-20240307")
    assert classify(status=529, body=body).kind is K.TRANSIENT
    assert classify(status=None, body=body).kind is K.TRANSIENT


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("upstream http://localhost:4010/v1 unreachable", id="port-4010"),
        pytest.param("upstream 10.0.4.29:8500 did not answer", id="ip-and-port"),
        pytest.param("request used 40123 tokens", id="token-count"),
        pytest.param("request 9f4035c2a1429b7e failed", id="hex-request-id"),
        pytest.param("model claude-3-7-sonnet-20250219 said no", id="model-date-502"),
        pytest.param("model claude-3-opus-20240229 payment", id="model-date-402"),
    ],
)
def test_defect1_three_digit_numbers_in_text_mean_nothing(text: str) -> None:
    assert classify(status=None, body=text).kind is K.UNKNOWN
    assert classify(status=500, body=text).kind is K.TRANSIENT
    assert classify(status=400, body=text).kind is K.INVALID_REQUEST


def test_defect1_a_port_like_4010_in_a_message_is_not_auth() -> None:
    body = b.openai("connect to http://localhost:4010 failed", "server_error", None)
    assert classify(status=502, body=body).kind is K.TRANSIENT
    assert classify(status=None, body="dial tcp localhost:4010: refused").kind is not K.AUTH


def test_defect1_rate_limit_word_inside_another_word_does_not_match() -> None:
    assert classify(status=None, body="the generate_limit_error_page handler").kind is K.UNKNOWN
    assert classify(status=None, body="unauthorizedly fast").kind is K.UNKNOWN


# --- defect 6 (and the reference's weakness A3): output_limit only about the request -----------


def test_defect6_a_5xx_body_echoing_max_tokens_is_not_output_limit() -> None:
    body = b.openai(
        "The server had an error processing max_tokens=4096, which exceeds nothing; retry.",
        "server_error",
        None,
        "max_tokens",
    )
    assert classify(status=500, body=body).kind is K.TRANSIENT
    assert classify(status=503, body="max_tokens exceeds the maximum allowed").kind is K.TRANSIENT


def test_a_mention_of_max_tokens_without_a_ceiling_is_not_output_limit() -> None:
    body = b.anthropic("invalid_request_error", "max_tokens: Field required")
    assert classify(status=400, body=body).kind is K.BAD_REQUEST


# --- wait hints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after": "7"}, 7.0, id="seconds"),
        pytest.param({"Retry-After": "1.5"}, 1.5, id="fractional-any-case"),
        pytest.param({"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="ms-first"),
        pytest.param({"retry-after": "-3"}, None, id="negative"),
        pytest.param({"retry-after": "inf"}, None, id="infinite"),
        pytest.param({"retry-after": "nan"}, None, id="nan"),
        pytest.param({"retry-after": "soon"}, None, id="garbage"),
        pytest.param(
            {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"},
            360.0,
            id="openai-reset-exhausted",
        ),
        pytest.param(
            {"x-ratelimit-remaining-tokens": "12", "x-ratelimit-reset-tokens": "6m0s"},
            None,
            id="openai-reset-not-exhausted",
        ),
        pytest.param({}, None, id="none"),
    ],
)
def test_retry_after_headers(headers: dict[str, str], expected: float | None) -> None:
    failure = classify(status=429, body=b.OPENAI_RATE_LIMIT, headers=headers)
    assert failure.retry_after == expected


def test_retry_after_is_ignored_on_errors_that_are_not_about_waiting() -> None:
    assert (
        classify(status=400, body=b.OPENAI_CONTEXT, headers={"retry-after": "5"}).retry_after
        is None
    )


def test_retry_after_on_503_and_529() -> None:
    for status in (503, 529):
        failure = classify(status=status, body=b.ANTHROPIC_OVERLOADED, headers={"retry-after": "4"})
        assert failure.retry_after == 4.0


@freeze_time("2026-03-01 12:00:00")
def test_retry_after_http_date_on_the_default_wall_clock() -> None:
    headers = {"retry-after": "Sun, 01 Mar 2026 12:00:30 GMT"}
    failure = classify(
        status=429, body=b.ANTHROPIC_RATE_LIMIT, headers=headers, wall=SystemClock().wall
    )
    assert failure.retry_after == 30.0
    past = {"retry-after": "Sun, 01 Mar 2026 11:00:00 GMT"}
    assert classify(status=429, body=None, headers=past, wall=SystemClock().wall).retry_after == 0.0


@freeze_time("2026-03-01 12:00:00")
def test_anthropic_rfc3339_reset_when_the_bucket_is_empty() -> None:
    headers = {
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2026-03-01T12:00:12Z",
        "anthropic-ratelimit-requests-remaining": "40",
        "anthropic-ratelimit-requests-reset": "2026-03-01T12:05:00Z",
    }
    failure = classify(
        status=429, body=b.ANTHROPIC_RATE_LIMIT, headers=headers, wall=SystemClock().wall
    )
    assert failure.retry_after == 12.0


def test_http_date_needs_a_wall_clock() -> None:
    headers = {"retry-after": "Sun, 01 Mar 2026 12:00:30 GMT"}
    assert classify(status=429, body=None, headers=headers).retry_after is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("12ms", 0.012),
        ("6m0s", 360.0),
        ("1h2m3s", 3723.0),
        ("1.146s", 1.146),
        ("", None),
        ("5", None),
        ("1x", None),
        ("s1", None),
    ],
)
def test_parse_go_duration(text: str, seconds: float | None) -> None:
    value = parse_go_duration(text)
    if seconds is None:
        assert value is None
    else:
        assert value is not None
        assert math.isclose(value, seconds)


def test_classify_never_raises_on_odd_bodies() -> None:
    odd: list[object] = [
        [],
        [1, 2],
        42,
        {"error": None},
        {"error": 5},
        {"error": "plain string error"},
        {"error": {"details": "not a dict", "code": 1234}},
        {"error": {"code": True}},
        {"response": {"error": "x"}},
        b"\x00\x01",
    ]
    for body in odd:
        for status in (None, 400, 500):
            assert isinstance(classify(status=status, body=body).kind, ErrorKind)
