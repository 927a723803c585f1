"""The real openai and anthropic SDKs through rt.transport() / rt.async_transport().

The fake upstream is the loopback FakeServer; ``oa/...`` models speak the OpenAI wire,
``an/...`` the Anthropic wire, so every test that names the other one crosses formats.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import anthropic
import openai
import pytest
from switchover import ToolCall, Usage
from switchover.testing import FakeServer, Reply

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hi"}]
WEATHER = ToolCall(id="call_1", name="weather", arguments='{"city": "Oslo"}')
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "the weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ANTHROPIC_TOOL = {
    "name": "weather",
    "description": "the weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
API = {"oa": "openai", "an": "anthropic"}
BOTH = pytest.mark.parametrize("model", ["oa/gpt-4o", "an/claude-sonnet"])


def _reply(**fields: object) -> Reply:
    fields.setdefault("usage", Usage(input_tokens=11, output_tokens=7))
    return Reply(**fields)  # type: ignore[arg-type]


# --- openai SDK ---------------------------------------------------------------------------


@BOTH
def test_openai_create(server: FakeServer, oai: openai.OpenAI, model: str) -> None:
    server.default = _reply(text="hello there", chunks=3)
    answer = oai.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 7)
    assert answer.model == model
    assert [c.request.api for c in server.calls] == [API[model[:2]]]


@BOTH
def test_openai_stream_text_usage_and_reasoning(
    server: FakeServer, oai: openai.OpenAI, model: str
) -> None:
    server.default = _reply(text="one two three", chunks=3, reasoning="thinking it over")
    chunks = list(
        oai.chat.completions.create(
            model=model,
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert text == "one two three"
    assert reasoning == "thinking it over"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 18


@BOTH
def test_openai_tool_calls_streamed_and_whole(
    server: FakeServer, oai: openai.OpenAI, model: str
) -> None:
    server.default = _reply(text="", tool_calls=(WEATHER,), finish_reason="tool_calls")
    whole = oai.chat.completions.create(
        model=model,
        messages=USER,  # type: ignore[arg-type]
        tools=[OPENAI_TOOL],  # type: ignore[list-item]
    )
    call = whole.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (  # type: ignore[union-attr]
        "call_1",
        "weather",
        {"city": "Oslo"},
    )
    assert whole.choices[0].finish_reason == "tool_calls"
    chunks = list(
        oai.chat.completions.create(
            model=model,
            messages=USER,  # type: ignore[arg-type]
            tools=[OPENAI_TOOL],  # type: ignore[list-item]
            stream=True,
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or ())]
    assert [(d.index, d.id, d.function.name) for d in deltas] == [(0, "call_1", "weather")]  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_openai_with_streaming_response_and_stream_helper(
    server: FakeServer, oai: openai.OpenAI
) -> None:
    server.default = _reply(text="abc", chunks=3)
    with oai.chat.completions.with_streaming_response.create(
        model="an/claude",
        messages=USER,  # type: ignore[arg-type]
    ) as response:
        assert response.http_request.url.path == "/v1/chat/completions"
        assert response.headers["x-switchover-served-by"] == "an/claude"
        assert response.parse().choices[0].message.content == "abc"
    helper = getattr(oai.chat.completions, "stream", None)
    if helper is None:  # the installed SDK keeps it under beta
        helper = oai.beta.chat.completions.stream
    with helper(model="an/claude", messages=USER) as stream:  # type: ignore[arg-type]
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "abc"


# --- anthropic SDK ------------------------------------------------------------------------


@BOTH
def test_anthropic_create(server: FakeServer, claude: anthropic.Anthropic, model: str) -> None:
    server.default = _reply(text="hello there", chunks=2)
    message = claude.messages.create(model=model, max_tokens=64, messages=USER)  # type: ignore[arg-type]
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)


@BOTH
def test_anthropic_stream_helper_with_thinking_and_tools(
    server: FakeServer, claude: anthropic.Anthropic, model: str
) -> None:
    server.default = _reply(
        text="let me look", reasoning="hmm", tool_calls=(WEATHER,), finish_reason="tool_calls"
    )
    with claude.messages.stream(
        model=model,
        max_tokens=64,
        messages=USER,  # type: ignore[arg-type]
        tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "let me look"
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    tool = final.content[2]
    assert (tool.id, tool.name, tool.input) == ("call_1", "weather", {"city": "Oslo"})  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 7


def test_anthropic_raw_stream_events(server: FakeServer, claude: anthropic.Anthropic) -> None:
    server.default = _reply(text="a b", chunks=2)
    events = list(
        claude.messages.create(model="oa/gpt-4o", max_tokens=8, messages=USER, stream=True)  # type: ignore[arg-type]
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "a b"  # type: ignore[union-attr]


def test_anthropic_conversation_with_tool_results_reaches_openai(
    server: FakeServer, claude: anthropic.Anthropic
) -> None:
    """An Anthropic-shaped history (system, tool_use, tool_result) arrives OpenAI-shaped."""
    claude.messages.create(
        model="oa/gpt-4o",
        max_tokens=16,
        system="be brief",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}],
            },
        ],
        tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
    )
    body = server.calls[-1].request.body
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
    ]
    assert body["tools"][0]["function"]["name"] == "weather"


# --- asyncio clients ----------------------------------------------------------------------


@BOTH
def test_async_openai_create_and_stream(
    server: FakeServer, aoai: Callable[[], openai.AsyncOpenAI], model: str
) -> None:
    server.default = _reply(text="async hello", chunks=2)

    async def main() -> tuple[str | None, str]:
        async with aoai() as client:
            whole = await client.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
            stream = await client.chat.completions.create(
                model=model,
                messages=USER,  # type: ignore[arg-type]
                stream=True,
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return whole.choices[0].message.content, text

    assert asyncio.run(main()) == ("async hello", "async hello")


@BOTH
def test_async_anthropic_create_and_stream(
    server: FakeServer, aclaude: Callable[[], anthropic.AsyncAnthropic], model: str
) -> None:
    server.default = _reply(text="async hello", chunks=2, tool_calls=(WEATHER,))

    async def main() -> tuple[str, str, list[str]]:
        async with aclaude() as client:
            whole = await client.messages.create(model=model, max_tokens=9, messages=USER)  # type: ignore[arg-type]
            async with client.messages.stream(
                model=model,
                max_tokens=9,
                messages=USER,  # type: ignore[arg-type]
            ) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            return whole.content[0].text, text, [b.type for b in final.content]  # type: ignore[union-attr]

    assert asyncio.run(main()) == ("async hello", "async hello", ["text", "tool_use"])
