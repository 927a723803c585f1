"""The Anthropic messages wire format: request conversion and event parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import MakeCall
from switchover import Done, ErrorKind, ProviderFailure, ReasoningDelta, TextDelta, ToolCall, Usage
from switchover._core._redact import Redactor
from switchover.providers._anthropic import DEFAULT_MAX_TOKENS, AnthropicWire, convert_messages

WIRE = AnthropicWire()


def parse(*events: tuple[str, dict[str, Any]]) -> list[object]:
    parser = WIRE.parser(Redactor())
    out: list[object] = []
    for name, data in events:
        out += parser.event(name, json.dumps({"type": name, **data}))
    return out + parser.end()


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"),
        ("https://proxy.example/v1", "https://proxy.example/v1/messages"),
    ],
)
def test_url(base: str, url: str) -> None:
    assert WIRE.url(base) == url


def test_headers() -> None:
    headers = WIRE.headers("sk-ant-1\n")
    assert headers["x-api-key"] == "sk-ant-1"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers


def test_body_defaults_and_clamps(make_call: MakeCall) -> None:
    body = WIRE.body(make_call(temperature=1.7))
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    assert body["temperature"] == 1.0
    assert body["stream"] is True
    assert "system" not in body
    assert WIRE.body(make_call(max_tokens=100))["max_tokens"] == 100


def test_system_and_developer_messages_are_lifted() -> None:
    system, messages = convert_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        ]
    )
    assert system == "Be brief.\n\nUse metric units."
    assert messages == [{"role": "user", "content": "hi"}]


def test_system_parts_with_more_than_text_stay_blocks() -> None:
    cached = {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}
    system, _ = convert_messages([{"role": "system", "content": [cached]}, {"role": "user"}])
    assert system == [cached]


def test_tool_round_trip_is_converted() -> None:
    system, messages = convert_messages(
        [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "w", "arguments": '{"city": "Paris"}'}},
                    {"id": "c2", "function": {"name": "w", "arguments": "not json"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "thanks"},
        ]
    )  # fmt: skip
    assert system == ""
    assert messages == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "c1", "name": "w", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "c2", "name": "w", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "c2",
                    "content": [{"type": "text", "text": "rain"}],
                },
            ],
        },
        {"role": "user", "content": "thanks"},
    ]


def test_images_become_image_blocks() -> None:
    _, messages = convert_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                ],
            }
        ]
    )
    assert messages[0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]


def test_tools_are_converted(make_call: MakeCall) -> None:
    tools = (
        {
            "type": "function",
            "function": {
                "name": "w",
                "description": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "noargs"}},
        {"name": "native", "input_schema": {"type": "object"}},
    )
    assert WIRE.body(make_call(tools=tools))["tools"] == [
        {
            "name": "w",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "noargs", "input_schema": {"type": "object", "properties": {}}},
        {"name": "native", "input_schema": {"type": "object"}},
    ]


def _start(**usage: int) -> tuple[str, dict[str, Any]]:
    return "message_start", {"message": {"id": "m", "usage": usage}}


def _block(index: int, **block: Any) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {"index": index, "content_block": block}


def _delta(index: int, **delta: Any) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"index": index, "delta": delta}


def _stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"index": index}


def test_a_full_stream() -> None:
    events = parse(
        _start(input_tokens=12, output_tokens=1, cache_read_input_tokens=5),
        ("ping", {}),
        _block(0, type="thinking", thinking=""),
        _delta(0, type="thinking_delta", thinking="let me see"),
        _delta(0, type="signature_delta", signature="abc"),
        _stop(0),
        _block(1, type="text", text=""),
        _delta(1, type="text_delta", text="Hello"),
        _delta(1, type="text_delta", text=" there"),
        _stop(1),
        _block(2, type="tool_use", id="toolu_1", name="w", input={}),
        _delta(2, type="input_json_delta", partial_json=""),
        _delta(2, type="input_json_delta", partial_json='{"city": '),
        _delta(2, type="input_json_delta", partial_json='"Paris"}'),
        _stop(2),
        ("something_new", {"whatever": 1}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
        ("message_stop", {}),
    )
    assert events == [
        ReasoningDelta("let me see"),
        TextDelta("Hello"),
        TextDelta(" there"),
        ToolCall("toolu_1", "w", '{"city": "Paris"}'),
        Done(
            finish_reason="tool_calls",
            usage=Usage(input_tokens=12, output_tokens=30, cache_read_tokens=5),
        ),
    ]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("something_new", "something_new"),
    ],
)
def test_stop_reasons_in_openai_words(stop: str, finish: str) -> None:
    events = parse(_start(), ("message_delta", {"delta": {"stop_reason": stop}}))
    assert events[-1] == Done(finish_reason=finish, usage=Usage())


def test_a_tool_use_without_input_deltas_keeps_its_input() -> None:
    events = parse(
        _block(0, type="tool_use", id="t", name="f", input={"a": 1}), _stop(0), ("message_stop", {})
    )
    assert events[0] == ToolCall("t", "f", '{"a": 1}')


def test_tool_use_pieces_count_as_content() -> None:
    parser = WIRE.parser(Redactor())
    block = {"type": "tool_use", "id": "t", "name": "f"}
    parser.event(
        "", json.dumps({"type": "content_block_start", "index": 0, "content_block": block})
    )
    assert parser.content


def test_an_error_event_is_classified_by_its_type() -> None:
    with pytest.raises(ProviderFailure) as raised:
        parse(_start(), ("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
    assert raised.value.failure.kind is ErrorKind.TRANSIENT
    assert raised.value.failure.code == "overloaded_error"


def test_an_end_without_message_stop_or_stop_reason_is_a_failure() -> None:
    with pytest.raises(ProviderFailure, match="ended before message_stop"):
        parse(_start(), _delta(0, type="text_delta", text="x"))


def test_json_delta_outside_a_tool_block_is_a_protocol_failure() -> None:
    with pytest.raises(ProviderFailure, match="outside a tool_use block"):
        parse(_delta(3, type="input_json_delta", partial_json="{}"))


def test_a_whole_message() -> None:
    payload = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "t"},
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "u", "name": "f", "input": {"x": 1}},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 4, "output_tokens": 2},
    }
    assert WIRE.completion(payload, Redactor()) == [
        ReasoningDelta("t"),
        TextDelta("hi"),
        ToolCall("u", "f", '{"x": 1}'),
        Done(finish_reason="stop", usage=Usage(input_tokens=4, output_tokens=2)),
    ]
