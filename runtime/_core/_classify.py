"""The one classifier: a provider failure in, a :class:`Failure` with its kind out.

Both layers (key profiles and model health) act on the kind it returns, so they cannot
disagree. It reads structure first (HTTP status, the body's ``error.type`` / ``error.code``
/ ``error.details.error_code``, the retry headers) and falls back to whole-word message
phrases only when there is no structure. It never looks for a bare 3-digit number in
text: a model id such as ``claude-3-haiku-20240307`` contains "403".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

import attrs

from ._redact import Redactor
from ._vocab import ErrorKind

_NO_SECRETS = Redactor()


@attrs.frozen
class Failure:
    """A classified provider failure, before or after commit.

    ``timeout`` marks a hung target (connect timeout, no first token, idle gap): it is
    never retried in place. ``retry_after`` is the provider's own wait hint in seconds.
    """

    kind: ErrorKind
    message: str = ""
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None
    timeout: bool = False


@attrs.frozen
class _Fields:
    type: str = ""
    code: str = ""
    error_code: str = ""
    param: str = ""
    message: str = ""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _fields(body: object) -> _Fields:
    """Pull the error fields out of an OpenAI, Anthropic or Responses-API error body."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        stripped = body.strip()
        try:
            body = json.loads(stripped) if stripped[:1] in "{[" and stripped else stripped
        except ValueError:
            body = stripped
    if isinstance(body, str):
        return _Fields(message=_strip_html(body))
    if not isinstance(body, Mapping):
        return _Fields()
    error: object = body.get("error")
    if isinstance(error, str):
        return _Fields(message=error, code=_text(body.get("code")))
    if not isinstance(error, Mapping):
        # Responses API: {"type":"error","code":...,"message":...}; response.failed nests it.
        response = body.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("error"), Mapping):
            error = response["error"]
        else:
            error = body
    assert isinstance(error, Mapping)
    details = error.get("details")
    error_code = _text(details.get("error_code")) if isinstance(details, Mapping) else ""
    code = error.get("code")
    return _Fields(
        type=_text(error.get("type")),
        code=str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) else "",
        error_code=error_code,
        param=_text(error.get("param")),
        message=_text(error.get("message")),
    )


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _strip_html(text: str) -> str:
    if "<" in text and ">" in text:
        text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def _phrases(*phrases: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive alternatives."""
    body = "|".join(re.escape(p).replace(r"\ ", r"[\s_-]+") for p in phrases)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])", re.IGNORECASE)


_OUTPUT_PARAM = _phrases("max_tokens", "max_output_tokens", "max_completion_tokens")
_OUTPUT_CEILING = _phrases(
    "maximum allowed",
    "exceeds",
    "too large",
    "ceiling",
    "greater than",
    "at most",
    "less than or equal",
    "maximum value",
    "upper limit",
    "in the completion",
)
_CONTEXT = _phrases(
    "context_length_exceeded",
    "maximum context length",
    "context length exceeded",
    "prompt is too long",
    "context window",
    "session_ctx_exceeded",
    "exceed_context_size_error",
    "too many input tokens",
)
_COMPLETION_PART = _phrases("in the completion", "for the completion")
_BALANCE = _phrases(
    "insufficient_quota",
    "insufficient quota",
    "exceeded your current quota",
    "credit balance is too low",
    "credit_balance_too_low",
    "credit_balance_exhausted",
    "no credits remaining",
    "billing_error",
    "payment required",
    "balance_not_enough",
)
_AUTH = _phrases(
    "invalid_api_key",
    "invalid api key",
    "incorrect api key",
    "authentication_error",
    "permission_error",
    "unauthorized",
    "permission denied",
    "authentication failed",
)
_MODEL_MISSING = _phrases(
    "model_not_found",
    "model not found",
    "does not exist or you do not have access",
    "unknown model",
    "no such model",
    "invalid model",
)
_RATE = _phrases("rate limit", "rate_limit_exceeded", "rate_limit_error", "too many requests")
_TRANSIENT = _phrases(
    "overloaded",
    "server_error",
    "internal server error",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
    "temporarily unavailable",
    "try again later",
    "connection reset",
    "connection refused",
    "timed out",
    "timeout",
)
_TOO_LARGE = _phrases("request too large")
_MALFORMED = _phrases(
    "roles must alternate",
    "field required",
    "extra inputs are not permitted",
    "input should be",
    "unrecognized request argument",
    "missing required parameter",
    "invalid type for",
    "could not parse",
    "is not valid json",
    "unexpected role",
    "must be a string",
    "must be an array",
)
_MALFORMED_CODES = frozenset(
    {"invalid_type", "missing_required_parameter", "unknown_parameter", "invalid_json"}
)
_BALANCE_TYPES = frozenset(
    {"insufficient_quota", "billing_error", "credit_balance_exhausted", "insufficient_balance"}
)
_AUTH_TYPES = frozenset({"authentication_error", "permission_error", "invalid_api_key"})
_RATE_TYPES = frozenset({"rate_limit_error", "rate_limit_exceeded", "ramp_limit_exceeded"})
_TRANSIENT_TYPES = frozenset(
    {
        "overloaded_error",
        "api_error",
        "timeout_error",
        "server_error",
        "service_unavailable",
        "internal_error",
        "compaction_unavailable",
    }
)


def classify(
    *,
    status: int | None,
    body: object = None,
    headers: Mapping[str, str] | None = None,
    wall: Callable[[], float] | None = None,
    redact: Redactor = _NO_SECRETS,
) -> Failure:
    """Classify a provider failure.

    Args:
        status: the HTTP status, or None for an error that arrived inside a 200 stream.
        body: the response body (bytes, text or parsed JSON), or None.
        headers: response headers (any case); feed ``retry_after``.
        wall: the wall clock, for HTTP-date and RFC 3339 headers.
        redact: removes keys from the message kept in the result.

    Never raises: anything unrecognised is ``unknown``.
    """
    try:
        fields = _fields(body)
    except Exception:  # a body we cannot even read still gets a kind
        fields = _Fields()
    kind = _kind(status, fields)
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    retry_after = (
        _retry_after(lowered, wall)
        if status in (429, 503, 529) or (kind is ErrorKind.RATE_LIMIT)
        else None
    )
    head = " ".join(
        p
        for p in (
            f"HTTP {status}" if status is not None else "",
            fields.error_code or fields.code or fields.type,
        )
        if p
    )
    summary = f"{head}: {fields.message}" if head and fields.message else head or fields.message
    return Failure(
        kind=kind,
        message=redact(summary),
        status=status,
        code=(fields.error_code or fields.code or fields.type or None),
        retry_after=retry_after,
    )


def _kind(status: int | None, f: _Fields) -> ErrorKind:
    tags = {f.type.lower(), f.code.lower(), f.error_code.lower()} - {""}
    text = f.message

    # The request itself: an output ceiling or a prompt too long for the model. A 5xx body
    # that merely echoes the request's parameters is not about the request.
    if status is None or status < 500:
        output_param = f.param in {"max_tokens", "max_output_tokens", "max_completion_tokens"}
        context = "context_length_exceeded" in tags or _CONTEXT.search(text)
        if context and _COMPLETION_PART.search(text):
            return ErrorKind.OUTPUT_LIMIT
        if context:
            return ErrorKind.CONTEXT_EXCEEDED
        if output_param or (_OUTPUT_PARAM.search(text) and _OUTPUT_CEILING.search(text)):
            return ErrorKind.OUTPUT_LIMIT

    # The key or the account.
    if (
        status == 402
        or tags & _BALANCE_TYPES
        or any(t.endswith("_spend_limit_reached") for t in tags)
        or _BALANCE.search(text)
    ):
        return ErrorKind.BALANCE
    if status in (401, 403) or tags & _AUTH_TYPES:
        return ErrorKind.AUTH

    # The model.
    if (
        "model_not_found" in tags
        or _MODEL_MISSING.search(text)
        or ("not_found_error" in tags and re.match(r"\s*model\b", text, re.IGNORECASE))
    ):
        return ErrorKind.MODEL_MISSING

    if _TOO_LARGE.search(text):  # a single request over a per-minute limit: retrying won't help
        return ErrorKind.INVALID_REQUEST
    if status == 429 or tags & _RATE_TYPES:
        return ErrorKind.RATE_LIMIT
    if (status is not None and (status >= 500 or status in (408, 409))) or tags & _TRANSIENT_TYPES:
        return ErrorKind.TRANSIENT

    if tags & _MALFORMED_CODES or (
        ("invalid_request_error" in tags or status in (400, 422)) and _MALFORMED.search(text)
    ):
        return ErrorKind.BAD_REQUEST
    if status is not None and 400 <= status < 500:
        return ErrorKind.INVALID_REQUEST
    if "invalid_request_error" in tags:
        return ErrorKind.INVALID_REQUEST

    # No structure left: whole-word phrases, as a last resort.
    if status is None:
        if _AUTH.search(text):
            return ErrorKind.AUTH
        if _RATE.search(text):
            return ErrorKind.RATE_LIMIT
        if _TRANSIENT.search(text):
            return ErrorKind.TRANSIENT
    return ErrorKind.UNKNOWN


# --- wait hints -----------------------------------------------------------------------------

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
#: A wait hint longer than this is treated as a typo, not honoured.
MAX_RETRY_AFTER = 86_400.0 * 40


def _finite(value: float) -> float | None:
    if math.isfinite(value) and 0 <= value <= MAX_RETRY_AFTER:
        return value
    return None


def parse_go_duration(text: str) -> float | None:
    """Parse an OpenAI reset header such as ``6m0s``, ``1h2m3s`` or ``12ms``."""
    text = text.strip()
    if not text:
        return None
    total = 0.0
    position = 0
    for match in _GO_DURATION.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    return _finite(total) if position == len(text) else None


def _seconds(text: str) -> float | None:
    try:
        return _finite(float(text))
    except ValueError:
        return None


def _retry_after(headers: Mapping[str, str], wall: Callable[[], float] | None) -> float | None:
    """The provider's wait hint: retry-after-ms, retry-after, then the reset headers."""
    if (ms := headers.get("retry-after-ms")) is not None and (value := _seconds(ms)) is not None:
        return value / 1000.0
    if (ra := headers.get("retry-after")) is not None:
        if (value := _seconds(ra)) is not None:
            return value
        if wall is not None:
            try:
                when = parsedate_to_datetime(ra).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                when = None
            if when is not None:
                return _finite(max(0.0, when - wall()))
    return _reset_hint(headers, wall)


def _reset_hint(headers: Mapping[str, str], wall: Callable[[], float] | None) -> float | None:
    """When the exhausted rate-limit bucket refills.

    OpenAI sends relative Go durations (``x-ratelimit-reset-tokens: 6m0s``, also for the
    ``*_usage_based`` buckets); Anthropic sends absolute RFC 3339 times
    (``anthropic-ratelimit-tokens-reset``), or epoch seconds for its ``unified`` buckets.
    A bucket counts only when its ``-remaining`` header is absent or zero.
    """
    waits: list[float] = []
    for name, value in headers.items():
        if name.startswith("x-ratelimit-reset-"):
            bucket = name[len("x-ratelimit-reset-") :]
            if headers.get(f"x-ratelimit-remaining-{bucket}") not in (None, "0"):
                continue
            if (wait := parse_go_duration(value)) is not None:
                waits.append(wait)
        elif (
            wall is not None and name.startswith("anthropic-ratelimit-") and name.endswith("-reset")
        ):
            if headers.get(name[: -len("-reset")] + "-remaining") not in (None, "0"):
                continue
            if (when := _timestamp(value)) is not None and (
                wait := _finite(max(0.0, when - wall()))
            ) is not None:
                waits.append(wait)
    return max(waits) if waits else None


def _timestamp(text: str) -> float | None:
    """An RFC 3339 time or epoch seconds, as epoch seconds."""
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def transport_failure(message: str, *, timeout: bool, redact: Redactor = _NO_SECRETS) -> Failure:
    """A failure with no HTTP response: connection refused or reset, or a timeout."""
    return Failure(kind=ErrorKind.TRANSIENT, message=redact(message), timeout=timeout)
