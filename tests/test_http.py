"""The built-in HTTP adapters, through Runtime, against the loopback FakeServer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runtime import Config, ProviderConfig, Request, Runtime, ToolCall, Usage
from runtime.testing import FakeServer, Reply

KEY = "sk-test-0123456789abcdef"
APIS = ["openai", "anthropic"]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


def config(server: FakeServer, api: str, **overrides: Any) -> Config:
    provider = ProviderConfig(
        name="p", api=api, base_url=server.base_url(api), profiles={"main": KEY}
    )
    return Config(providers=[provider], **overrides)


def ask(text: str = "hi") -> Request:
    return Request(model="p/m", messages=[{"role": "user", "content": text}])


@pytest.mark.parametrize("api", APIS)
def test_a_reply_arrives_whole(server: FakeServer, api: str) -> None:
    server.default = Reply(
        "hello world",
        chunks=3,
        reasoning="thinking",
        tool_calls=(ToolCall("call_1", "lookup", '{"q": "x"}'),),
        usage=Usage(input_tokens=7, output_tokens=3),
    )
    with Runtime(config(server, api)) as rt:
        done = rt.complete(ask())
    assert done.text == "hello world"
    assert done.reasoning == "thinking"
    assert done.tool_calls == (ToolCall("call_1", "lookup", '{"q": "x"}'),)
    assert done.usage == Usage(input_tokens=7, output_tokens=3)
    assert done.finish_reason == "stop"
    (call,) = server.calls
    assert (call.request.api, call.request.model, call.key) == (api, "m", KEY)
