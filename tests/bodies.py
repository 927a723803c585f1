"""Real provider error bodies (shapes from the OpenAI and Anthropic APIs and SDK fixtures;
see ``shared/reference/provider-signals.md``), for the classifier and the chain walk."""

from __future__ import annotations

from typing import Any


def openai(message: str, type: str | None, code: str | None, param: str | None = None) -> Any:
    """``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def anthropic(type: str, message: str, error_code: str | None = None) -> Any:
    """``{"type": "error", "error": {type, message[, details.error_code]}, "request_id"}``."""
    error: dict[str, Any] = {"type": type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


OPENAI_RATE_LIMIT = openai(
    "Rate limit reached for gpt-4o-mini in organization org-abc on tokens per min (TPM): "
    "Limit 50000, Used 47949, Requested 3006. Please try again in 1.146s. Visit "
    "https://platform.openai.com/account/rate-limits to learn more.",
    "tokens",
    "rate_limit_exceeded",
)
OPENAI_REQUEST_TOO_LARGE = openai(
    "Request too large for gpt-4o in organization org-abc on tokens per min (TPM): "
    "Limit 30000, Requested 34307. The input or output tokens must be reduced in order to run "
    "successfully.",
    "tokens",
    "rate_limit_exceeded",
)
OPENAI_QUOTA = openai(
    "You exceeded your current quota, please check your plan and billing details.",
    "insufficient_quota",
    "insufficient_quota",
)
OPENAI_NO_CREDITS = openai(
    "You have no credits remaining.", "insufficient_quota", "credit_balance_exhausted"
)
OPENAI_BAD_KEY = openai(
    "Incorrect API key provided: sk-abc12***************************wxyz. You can find your "
    "API key at https://platform.openai.com/account/api-keys.",
    "invalid_request_error",
    "invalid_api_key",
)
OPENAI_COUNTRY = openai(
    "Country, region, or territory not supported",
    "request_forbidden",
    "unsupported_country_region_territory",
)
OPENAI_CONTEXT = openai(
    "This model's maximum context length is 8192 tokens. However, your messages resulted in "
    "9120 tokens. Please reduce the length of the messages.",
    "invalid_request_error",
    "context_length_exceeded",
    "messages",
)
OPENAI_CONTEXT_COMPLETION = openai(
    "This model's maximum context length is 8192 tokens. However, you requested 10000 tokens "
    "(2000 in the messages, 8000 in the completion). Please reduce the length of the messages "
    "or completion.",
    "invalid_request_error",
    "context_length_exceeded",
    "messages",
)
OPENAI_MAX_TOKENS = openai(
    "max_tokens is too large: 100000. This model supports at most 16384 completion tokens, "
    "whereas you provided 100000.",
    "invalid_request_error",
    None,
    "max_tokens",
)
OPENAI_MAX_COMPLETION_TOKENS = openai(
    "Invalid 'max_completion_tokens': integer above maximum value. Expected a value <= 65536, "
    "but got 200000 instead.",
    "invalid_request_error",
    "integer_above_max_value",
    "max_completion_tokens",
)
OPENAI_MODEL_MISSING = openai(
    "The model `gpt-5-turbo-preview` does not exist or you do not have access to it.",
    "invalid_request_error",
    "model_not_found",
)
OPENAI_SERVER_ERROR = openai(
    "The server had an error while processing your request. Sorry about that! You can retry "
    "your request, or contact us through our help center at help.openai.com if the error "
    "persists. (Please include the request ID 4d2c8f3e1b4032a9c7e5f6a8b9c0d1e2 in your message.)",
    "server_error",
    None,
)
OPENAI_OVERLOADED = openai(
    "The engine is currently overloaded, please try again later", "server_error", None
)
OPENAI_UNRECOGNIZED_ARG = openai(
    "Unrecognized request argument supplied: foo", "invalid_request_error", None
)
OPENAI_INVALID_TYPE = openai(
    "Invalid type for 'messages[0].content': expected one of a string or array of objects, "
    "but got an integer instead.",
    "invalid_request_error",
    "invalid_type",
    "messages[0].content",
)
OPENAI_TOO_LONG_STRING = openai(
    "Invalid 'messages[1].name': string too long. Expected a string with maximum length 64, "
    "but got a string with length 80 instead.",
    "invalid_request_error",
    "string_above_max_length",
    "messages[1].name",
)
#: An error inside a Chat Completions stream after HTTP 200.
OPENAI_STREAM_SERVER_ERROR = {
    "error": {"message": "The server had an error while processing your request.",
              "type": "server_error", "code": None}
}  # fmt: skip
#: Responses API error events after HTTP 200.
RESPONSES_ERROR_EVENT = {
    "type": "error",
    "code": "rate_limit_exceeded",
    "message": "Rate limit reached for requests",
    "param": None,
    "sequence_number": 4,
}
RESPONSES_FAILED = {
    "type": "response.failed",
    "response": {
        "id": "resp_1",
        "status": "failed",
        "error": {"code": "server_error", "message": "The model failed to generate a response."},
    },
    "sequence_number": 9,
}

ANTHROPIC_RATE_LIMIT = anthropic(
    "rate_limit_error",
    "This request would exceed the rate limit for your organization (org-1) of 50,000 input "
    "tokens per minute.",
)
ANTHROPIC_RAMP = anthropic(
    "rate_limit_error", "Usage is growing too quickly.", "ramp_limit_exceeded"
)
ANTHROPIC_SPEND_LIMIT = anthropic(
    "rate_limit_error",
    "You have reached your specified workspace API usage limits.",
    "enforced_spend_limit_reached",
)
ANTHROPIC_CONTRACT_LIMIT = anthropic(
    "rate_limit_error", "Contract spend limit reached.", "contract_spend_limit_reached"
)
ANTHROPIC_LINKED_LIMIT = anthropic(
    "billing_error", "Linked organization spend limit reached.",
    "linked_organization_spend_limit_reached",
)  # fmt: skip
ANTHROPIC_BILLING = anthropic("billing_error", "Payment required to continue.")
ANTHROPIC_CREDIT_LOW = anthropic(
    "invalid_request_error",
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
    "to upgrade or purchase credits.",
)
ANTHROPIC_AUTH = anthropic("authentication_error", "invalid x-api-key")
ANTHROPIC_PERMISSION = anthropic(
    "permission_error", "Your API key does not have permission to use the specified resource."
)
ANTHROPIC_MODEL_MISSING = anthropic("not_found_error", "model: claude-3-haiku-20240307-typo")
ANTHROPIC_NOT_FOUND = anthropic("not_found_error", "The requested resource could not be found.")
ANTHROPIC_OVERLOADED = anthropic("overloaded_error", "Overloaded")
ANTHROPIC_API_ERROR = anthropic("api_error", "Internal server error")
ANTHROPIC_TIMEOUT = anthropic("timeout_error", "Request timed out")
ANTHROPIC_COMPACTION = anthropic(
    "overloaded_error", "Compaction is temporarily unavailable.", "compaction_unavailable"
)
ANTHROPIC_MAX_TOKENS = anthropic(
    "invalid_request_error",
    "max_tokens: 30000 > 8192, which is the maximum allowed number of output tokens for "
    "claude-3-haiku-20240307",
)
ANTHROPIC_PROMPT_TOO_LONG = anthropic(
    "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"
)
ANTHROPIC_ROLES = anthropic(
    "invalid_request_error",
    'messages: roles must alternate between "user" and "assistant", but found multiple '
    '"user" roles in a row',
)
ANTHROPIC_TEMPERATURE = anthropic(
    "invalid_request_error", "temperature: range: 0..1 for this model"
)
#: The reference's own case: a tier ceiling on max_tokens sent back as HTTP 429.
TIER_CEILING_429 = {
    "error": {
        "type": "quota_exceeded",
        "message": 'max_tokens=30000 exceeds tier "vip-3" ceiling (16384). Lower max_tokens '
        "or upgrade tier.",
    }
}
CLOUDFLARE_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
    "Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)
CLOUDFLARE_413 = (
    "<html><head><title>413 Request Entity Too Large</title></head><body><center><h1>413 "
    "Request Entity Too Large</h1></center><hr><center>cloudflare</center></body></html>"
)
