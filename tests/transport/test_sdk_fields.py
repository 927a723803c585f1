"""Every field a caller sends reaches the provider that serves it, in that provider's words."""

from __future__ import annotations

import anthropic
import openai
import pytest
from switchover import Config, ProviderConfig, Request, RequestRejected, Runtime
from switchover.testing import FakeServer

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hi"}]
TOOL = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
}
OPENAI_FIELDS: dict[str, object] = {
    "response_format": {"type": "json_object"},
    "tool_choice": "required",
    "stop": ["END"],
    "top_p": 0.5,
    "seed": 3,
    "user": "user-1",
    "metadata": {"team": "search"},
    "max_completion_tokens": 99,
    "tools": [TOOL],
}


def test_openai_caller_fields_reach_an_openai_provider(
    server: FakeServer, oai: openai.OpenAI
) -> None:
    oai.chat.completions.create(
        model="oa/gpt-4o",
        messages=USER,  # type: ignore[arg-type]
        extra_body={"logprobs": True},
        **OPENAI_FIELDS,  # type: ignore[arg-type]
    )
    body = server.calls[-1].request.body
    for name in ("response_format", "tool_choice", "stop", "top_p", "seed", "user", "metadata"):
        assert body[name] == OPENAI_FIELDS[name], name
    assert body["max_tokens"] == 99
    assert body["logprobs"] is True
    assert body["tools"] == [TOOL]


def test_openai_caller_fields_reach_an_anthropic_provider_as_its_equivalents(
    server: FakeServer, oai: openai.OpenAI
) -> None:
    oai.chat.completions.create(
        model="an/claude",
        messages=USER,  # type: ignore[arg-type]
        extra_body={"logprobs": True},
        **OPENAI_FIELDS,  # type: ignore[arg-type]
    )
    body = server.calls[-1].request.body
    assert body["stop_sequences"] == ["END"]
    assert body["top_p"] == 0.5
    assert body["metadata"] == {"user_id": "user-1"}
    assert body["tool_choice"] == {"type": "any"}
    assert body["max_tokens"] == 99
    # No Anthropic equivalent (2023-06-01): not sent rather than failing the call.
    for absent in ("seed", "response_format", "logprobs", "user", "stop"):
        assert absent not in body, absent


def test_anthropic_caller_fields_reach_both_providers(
    server: FakeServer, claude: anthropic.Anthropic
) -> None:
    fields: dict[str, object] = {
        "max_tokens": 50,
        "stop_sequences": ["END"],
        # anthropic 2.x dropped these arguments; callers still send them as extra_body.
        "extra_body": {"top_p": 0.25, "top_k": 5},
        "metadata": {"user_id": "user-2"},
        "tool_choice": {"type": "tool", "name": "weather"},
        "tools": [{"name": "weather", "input_schema": {"type": "object", "properties": {}}}],
    }
    claude.messages.create(model="an/claude", messages=USER, **fields)  # type: ignore[arg-type]
    native = server.calls[-1].request.body
    assert native["top_k"] == 5
    assert native["stop_sequences"] == ["END"]
    assert native["metadata"] == {"user_id": "user-2"}
    assert native["tool_choice"] == {"type": "tool", "name": "weather"}
    assert native["tools"][0]["input_schema"] == {"type": "object", "properties": {}}
    claude.messages.create(model="oa/gpt-4o", messages=USER, **fields)  # type: ignore[arg-type]
    crossed = server.calls[-1].request.body
    assert crossed["stop"] == ["END"]
    assert crossed["top_p"] == 0.25
    assert crossed["user"] == "user-2"
    assert crossed["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert "top_k" not in crossed  # an Anthropic-only field stays with Anthropic


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param({"stop": 5}, TypeError, id="stop-type"),
        pytest.param({"stop": ["a", "b", "c", "d", "e"]}, RequestRejected, id="stop-count"),
        pytest.param({"top_p": 1.5}, RequestRejected, id="top-p-range"),
        pytest.param({"seed": "3"}, TypeError, id="seed-type"),
        pytest.param({"tool_choice": "sometimes"}, RequestRejected, id="tool-choice"),
        pytest.param({"response_format": {"type": "yaml"}}, RequestRejected, id="format"),
        pytest.param({"metadata": {"a": 1}}, TypeError, id="metadata"),
        pytest.param({"extra": {"bedrock": {}}}, TypeError, id="extra-api"),
        pytest.param({"extra": {"openai": {"model": "x"}}}, RequestRejected, id="extra-owned"),
    ],
)
def test_request_fields_are_validated(fields: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        Request(model="oa/x", messages=USER, **fields)  # type: ignore[arg-type]


def test_provider_headers_query_and_key_header(server: FakeServer) -> None:
    """An Azure OpenAI-like deployment: the key in ``api-key``, an ``api-version`` query."""
    azure = ProviderConfig(
        name="azure",
        api="openai",
        base_url=server.openai_url,
        profiles={"main": "azure-key-0123456789abcdef"},
        key_header="api-key",
        headers={"x-gateway-token": "gw-secret-token-987654"},
        query={"api-version": "2024-10-21"},
    )
    shown = repr(azure)
    assert "azure-key-0123456789abcdef" not in shown
    assert "gw-secret-token-987654" not in shown
    assert "x-gateway-token" in shown
    assert "gw-secret-token-987654" in Config(providers=[azure]).secrets()  # redacted too
    with Runtime(Config(providers=[azure])) as rt:
        rt.complete(Request(model="azure/gpt-4o", messages=USER))
    call = server.calls[-1].request
    assert call.headers["api-key"] == "azure-key-0123456789abcdef"
    assert "authorization" not in call.headers
    assert call.headers["x-gateway-token"] == "gw-secret-token-987654"
    assert call.query == "api-version=2024-10-21"


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"headers": {"bad name": "x"}}, id="header-name"),
        pytest.param({"headers": {"x-a": "line\r\nbreak"}}, id="header-value"),
        pytest.param({"headers": {"x-a": 1}}, id="header-type"),
        pytest.param({"query": ["a"]}, id="query-type"),
        pytest.param({"key_header": "two words"}, id="key-header"),
    ],
)
def test_provider_headers_are_validated(fields: dict[str, object]) -> None:
    from switchover import ConfigError

    with pytest.raises(ConfigError):
        ProviderConfig(
            name="p",
            api="openai",
            base_url="http://127.0.0.1:1/v1",
            profiles={"k": "sk-x"},
            **fields,  # type: ignore[arg-type]
        )
