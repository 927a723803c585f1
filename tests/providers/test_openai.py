"""The OpenAI chat-completions wire format: request bodies and chunk parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import MakeCall
from switchover import Done, ErrorKind, ProviderFailure, ReasoningDelta, TextDelta, ToolCall, Usage
from switchover._core._redact import Redactor
from switchover.providers._openai import OpenAIWire

WIRE = OpenAIWire()


def parse(*chunks: object) -> list[object]:
    parser = WIRE.parser(Redactor())
    events: list[object] = []
    for chunk in chunks:
        events += parser.event("", chunk if isinstance(chunk, str) else json.dumps(chunk))
    return events + parser.end()


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": fields, "finish_reason": finish}]}


def test_url_and_headers() -> None:
    assert WIRE.url("https://api.openai.com/v1/") == "https://api.openai.com/v1/chat/completions"
    headers = WIRE.headers(" sk-abc \n")
    assert headers["authorization"] == "Bearer sk-abc"  # stray whitespace from an env file
    assert headers["accept"] == "text/event-stream"


def test_body_streams_with_usage_and_passes_messages_through(make_call: MakeCall) -> None:
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "u"}}]
    messages = ({"role": "system", "content": "be brief"}, {"role": "user", "content": parts})
    tools = ({"type": "function", "function": {"name": "f", "parameters": {}}},)
    body = WIRE.body(make_call(messages=messages, max_tokens=64, temperature=0.5, tools=tools))
    assert body == {
        "model": "m",
        "messages": list(messages),
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
        "temperature": 0.5,
        "tools": list(tools),
    }


def test_body_leaves_out_what_is_not_set(make_call: MakeCall) -> None:
    assert set(WIRE.body(make_call())) == {"model", "messages", "stream", "stream_options"}


def test_text_reasoning_usage_and_finish() -> None:
    events = parse(
        delta(role="assistant", content=""),
        delta(reasoning_content="hmm"),
        delta(reasoning="more"),  # OpenRouter and newer vLLM call it "reasoning"
        delta(content="Hel"),
        delta(content="lo"),
        delta(finish="stop"),
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        },
        "[DONE]",
    )
    assert events == [
        ReasoningDelta("hmm"),
        ReasoningDelta("more"),
        TextDelta("Hel"),
        TextDelta("lo"),
        Done(
            finish_reason="stop",
            usage=Usage(input_tokens=9, output_tokens=2, cache_read_tokens=4),
        ),
    ]


def test_tool_calls_are_assembled_by_index_and_emitted_whole() -> None:
    def piece(index: int, **function: str) -> dict[str, Any]:
        extra = {"id": f"call_{index}x", "type": "function"} if "name" in function else {}
        return delta(tool_calls=[{"index": index, **extra, "function": function}])

    events = parse(
        piece(0, name="get_weather", arguments=""),
        piece(1, name="get_time", arguments='{"tz"'),
        piece(0, arguments='{"city": '),
        piece(1, arguments=': "UTC"}'),
        piece(0, arguments='"Paris"}'),
        delta(finish="tool_calls"),
        "[DONE]",
    )
    assert events == [
        ToolCall("call_0x", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_1x", "get_time", '{"tz": "UTC"}'),
        Done(finish_reason="tool_calls"),
    ]


def test_a_tool_call_without_id_or_arguments_gets_defaults() -> None:
    events = parse(delta(tool_calls=[{"index": 2, "function": {"name": "f"}}]), "[DONE]")
    assert events[0] == ToolCall("call_2", "f", "{}")


def test_tool_call_pieces_count_as_content() -> None:
    parser = WIRE.parser(Redactor())
    parser.event("", json.dumps(delta(tool_calls=[{"index": 0, "function": {"name": "f"}}])))
    assert parser.content  # the first-token clock stops here, though nothing is emitted yet


def test_a_finish_reason_then_end_of_body_is_a_clean_end() -> None:
    assert parse(delta(content="x"), delta(finish="length"))[-1] == Done(finish_reason="length")


def test_an_end_without_done_or_finish_is_a_failure() -> None:
    with pytest.raises(ProviderFailure, match=r"ended before data: \[DONE\]") as raised:
        parse(delta(content="x"))
    assert raised.value.failure.kind is ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"error": {"message": "Rate limit", "code": "rate_limit_exceeded"}}, ErrorKind.RATE_LIMIT),
        ({"error": {"message": "boom", "type": "server_error"}}, ErrorKind.TRANSIENT),
        ({"error": "a bare string error"}, ErrorKind.UNKNOWN),
    ],
)
def test_an_error_chunk_is_classified_by_its_body(body: dict[str, Any], kind: ErrorKind) -> None:
    with pytest.raises(ProviderFailure) as raised:
        parse(body)
    assert raised.value.failure.kind is kind
    assert raised.value.failure.status is None


@pytest.mark.parametrize(
    ("chunk", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"choices": ["x"]}, "not an object"),
        ({"choices": [{"delta": {"tool_calls": "x"}}]}, "not a list"),
    ],
)
def test_malformed_chunks_are_protocol_failures(chunk: object, says: str) -> None:
    with pytest.raises(ProviderFailure, match=says):
        parse(chunk)


def test_odd_but_harmless_chunks_are_ignored() -> None:
    events = parse(
        {"choices": None},
        {"choices": "x"},
        {"choices": [{"delta": None}]},
        delta(content=None),
        delta(content=7),
        "[DONE]",
    )
    assert events == [Done()]


def test_a_whole_completion() -> None:
    payload = {
        "choices": [
            {
                "message": {
                    "content": "hi",
                    "reasoning_content": "r",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}],
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    assert WIRE.completion(payload, Redactor()) == [
        ReasoningDelta("r"),
        TextDelta("hi"),
        ToolCall("c", "f", '{"a": 1}'),
        Done(finish_reason="stop", usage=Usage(input_tokens=3, output_tokens=1)),
    ]


def test_a_whole_answer_without_choices_is_a_protocol_failure() -> None:
    with pytest.raises(ProviderFailure, match="no choices"):
        WIRE.completion({"object": "list"}, Redactor())
