"""Errors through the transport: the API's own bodies and statuses, and no multiplied retries.

Both SDKs retry 429 and 5xx twice by default; ``x-should-retry: false`` must stop them, so
the upstream sees exactly the calls the chain made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest
from switchover import Runtime
from switchover.testing import Cut, Fail, FakeServer, Hang, Reply

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hi"}]
CONTEXT = Fail(
    400,
    {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    },
)
RATE_LIMIT = Fail(
    429,
    {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
    headers={"retry-after": "7"},
)
BROKEN = Fail(500, {"error": {"message": "boom", "type": "server_error"}})


def _sdk_error(
    client: openai.OpenAI | anthropic.Anthropic, model: str, **options: object
) -> Exception:
    """The SDK's exception for one create() call."""
    if isinstance(client, openai.OpenAI):
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model=model, messages=USER, **options)  # type: ignore[call-overload]
        return failed.value
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=model, max_tokens=8, messages=USER, **options)  # type: ignore[call-overload]
    return caught.value


@pytest.fixture(params=["openai", "anthropic"])
def sdk(
    request: pytest.FixtureRequest, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> openai.OpenAI | anthropic.Anthropic:
    return oai if request.param == "openai" else claude


def test_rejected_is_400_with_the_providers_reason(
    server: FakeServer, sdk: openai.OpenAI | anthropic.Anthropic
) -> None:
    server.script("gpt-4o", CONTEXT)
    error = _sdk_error(sdk, "oa/gpt-4o")
    assert type(error).__name__ == "BadRequestError"
    assert error.status_code == 400  # type: ignore[attr-defined]
    assert "maximum context length is 8192" in str(error)
    assert error.response.headers["x-should-retry"] == "false"  # type: ignore[attr-defined]
    assert len(server.calls) == 1


def test_exhausted_by_rate_limits_is_429_with_retry_after_and_no_sdk_retry(
    server: FakeServer, sdk: openai.OpenAI | anthropic.Anthropic
) -> None:
    server.script("gpt-4o", RATE_LIMIT)
    error = _sdk_error(sdk, "oa/gpt-4o")
    assert type(error).__name__ == "RateLimitError"
    headers = error.response.headers  # type: ignore[attr-defined]
    assert headers["x-should-retry"] == "false"
    assert int(headers["retry-after"]) >= 1
    assert len(server.calls) == 1  # the chain's one call; the SDK's 2 retries did not happen


def test_exhausted_by_failures_is_503_and_chain_retries_are_not_multiplied(
    server: FakeServer, sdk: openai.OpenAI | anthropic.Anthropic
) -> None:
    server.script("gpt-4o", BROKEN)
    server.script("claude", BROKEN)
    error = _sdk_error(sdk, "oa/gpt-4o", extra_body={"fallback_models": ["an/claude"]})
    # openai: InternalServerError (any 5xx); anthropic 2.x: ServiceUnavailableError.
    assert type(error).__name__ in ("InternalServerError", "ServiceUnavailableError")
    assert error.status_code == 503  # type: ignore[attr-defined]
    # RetryConfig(attempts=2) on each of the two models: 4 calls, not 4 x 3.
    assert [c.model for c in server.calls] == ["gpt-4o", "gpt-4o", "claude", "claude"]


def test_deadline_is_504(server: FakeServer, sdk: openai.OpenAI | anthropic.Anthropic) -> None:
    server.script("gpt-4o", Hang())
    error = _sdk_error(sdk, "oa/gpt-4o", extra_headers={"x-switchover-timeout": "0.3"})
    assert error.status_code == 504  # type: ignore[attr-defined]
    assert len(server.calls) == 1


def test_cut_after_commit_is_an_in_stream_error(
    server: FakeServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(None, Cut(after=1, text="partial "))  # the cut cools each model: two
    text: list[str] = []
    with pytest.raises(openai.APIError, match="broke after it had started"):  # noqa: PT012
        for chunk in oai.chat.completions.create(model="oa/gpt-4o", messages=USER, stream=True):  # type: ignore[arg-type]
            text.append(chunk.choices[0].delta.content or "")
    assert "".join(text) == "partial "
    with (
        pytest.raises(anthropic.APIStatusError, match="broke after it had started"),
        claude.messages.stream(model="oa/gpt-4.1", max_tokens=8, messages=USER) as stream,  # type: ignore[arg-type]
    ):
        for _ in stream.text_stream:
            pass


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        pytest.param("POST", "/v1/chat/completions", b"not json", 400, "not valid JSON", id="json"),
        pytest.param("POST", "/v1/messages", b"[1, 2]", 400, "JSON object", id="not-object"),
        pytest.param("POST", "/v1/chat/completions", b"", 400, "empty", id="empty"),
        pytest.param("GET", "/v1/models", b"", 404, "/v1/models", id="unknown-path"),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            b'{"model": "nowhere/x", "messages": [{"role": "user", "content": "hi"}]}',
            404,
            "nowhere",
            id="unknown-model",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            b'{"model": "oa/x", "messages": [{"role": "user", "content": "hi"}], '
            b'"temperature": "hot"}',
            400,
            "temperature",
            id="wrong-type",
        ),
        pytest.param(
            "POST",
            "/v1/messages",
            b'{"model": "oa/x", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}',
            400,
            "robot",
            id="bad-role",
        ),
    ],
)
def test_bad_input_is_an_api_error_and_never_calls_upstream(  # noqa: PLR0917
    server: FakeServer, rt: Runtime, method: str, path: str, body: bytes, status: int, needle: str
) -> None:
    with httpx.Client(transport=rt.transport(), base_url="http://switchover") as client:
        response = client.request(method, path, content=body)
    assert response.status_code == status
    assert needle in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
    assert server.calls == []


def test_unknown_model_through_each_sdk_is_not_found(
    server: FakeServer, sdk: openai.OpenAI | anthropic.Anthropic
) -> None:
    error = _sdk_error(sdk, "nowhere/model")
    assert type(error).__name__ == "NotFoundError"
    assert "nowhere" in str(error)
    assert server.calls == []


def test_fallbacks_by_body_field_or_header(server: FakeServer, oai: openai.OpenAI) -> None:
    server.script("gpt-4o", Fail(404, {"error": {"code": "model_not_found", "message": "gone"}}))
    by_body = oai.chat.completions.with_raw_response.create(
        model="oa/gpt-4o",
        messages=USER,
        extra_body={"fallback_models": ["an/claude"]},  # type: ignore[arg-type]
    )
    by_header = oai.chat.completions.with_raw_response.create(
        model="oa/gpt-4o",
        messages=USER,  # type: ignore[arg-type]
        extra_headers={"x-switchover-fallbacks": "fast, an/claude"},
    )
    assert by_body.headers["x-switchover-served-by"] == "an/claude"
    assert by_header.headers["x-switchover-served-by"] == "oa/gpt-4o-mini"  # the alias
    assert "fallback_models" not in server.calls[-1].request.body


def test_cut_of_a_whole_answer_is_502_left_to_the_sdk(
    server: FakeServer, oai: openai.OpenAI
) -> None:
    """Nothing reached the caller and the chain did not retry it: the SDK may."""
    server.script("gpt-4o", Cut(after=1), Reply(text="second try"))
    with pytest.raises(openai.APIStatusError) as failed:
        oai.with_options(max_retries=0).chat.completions.create(model="oa/gpt-4o", messages=USER)  # type: ignore[arg-type]
    assert failed.value.status_code == 502
    assert failed.value.response.headers["x-should-retry"] == "true"


def test_stopped_runtime_is_503_without_retry(
    server: FakeServer, oai: openai.OpenAI, rt: Runtime
) -> None:
    rt.stop()
    with pytest.raises(openai.InternalServerError) as failed:
        oai.chat.completions.create(model="oa/gpt-4o", messages=USER)  # type: ignore[arg-type]
    assert failed.value.status_code == 503
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert server.calls == []


def test_async_sdks_get_the_same_errors(
    server: FakeServer,
    aoai: Callable[[], openai.AsyncOpenAI],
    aclaude: Callable[[], anthropic.AsyncAnthropic],
) -> None:
    server.script("gpt-4o", RATE_LIMIT)

    async def main() -> None:
        async with aoai() as client:
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="oa/gpt-4o", messages=USER)  # type: ignore[arg-type]
        async with aclaude() as client:
            with pytest.raises(anthropic.NotFoundError):
                await client.messages.create(model="nowhere/x", max_tokens=8, messages=USER)  # type: ignore[arg-type]

    asyncio.run(main())
    assert len(server.calls) == 1
