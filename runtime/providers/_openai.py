"""The OpenAI chat-completions wire format, spoken by OpenAI and every compatible server
(vLLM, Ollama's ``/v1``, OpenRouter, DeepSeek, Groq).

``POST {base_url}/chat/completions`` with ``Authorization: Bearer``, ``stream: true`` and
``stream_options.include_usage``; SSE ``data:`` chunks end with ``data: [DONE]``. A
``data: {"error": ...}`` chunk is an in-stream error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from json import loads
from typing import Any

from .._core._redact import Redactor
from .._core._types import Done, Event, ReasoningDelta, TextDelta, ToolCall, Usage
from ._seam import ProviderCall
from ._wire import Parser, as_dict, as_str, endpoint, error_failure, protocol_failure, usage


class OpenAIWire:
    """Builds chat-completions requests and reads their answers."""

    #: The header that carries the key (``ProviderConfig.key_header`` replaces it).
    auth_header = "authorization"

    def __repr__(self) -> str:
        return "OpenAIWire()"

    def url(self, base_url: str) -> str:
        return endpoint(base_url, lambda path: path + "/chat/completions")

    def headers(self, key: str) -> dict[str, str]:
        return {
            "authorization": f"Bearer {key.strip()}",
            "content-type": "application/json",
            "accept": "text/event-stream",
        }

    def body(self, call: ProviderCall) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": call.model,
            "messages": [dict(m) for m in call.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if call.max_tokens is not None:
            body["max_tokens"] = call.max_tokens
        if call.temperature is not None:
            body["temperature"] = call.temperature
        if call.tools:
            body["tools"] = [dict(t) for t in call.tools]
        request = call.request
        if request is not None:
            if request.stop:
                body["stop"] = list(request.stop)
            for name in ("top_p", "seed", "user", "tool_choice", "response_format", "metadata"):
                value = getattr(request, name)
                if value is not None:
                    body[name] = value
            body.update(request.extra.get("openai", {}))
        return body

    def parser(self, redact: Redactor) -> Parser:
        return _ChunkParser(redact)

    def completion(self, payload: Mapping[str, Any], redact: Redactor) -> list[Event]:
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            raise protocol_failure("a JSON answer with no choices", redact)
        choice = as_dict(choices[0])
        message = as_dict(choice.get("message"))
        events: list[Event] = []
        reasoning = as_str(message.get("reasoning_content") or message.get("reasoning"))
        if reasoning:
            events.append(ReasoningDelta(reasoning))
        if text := as_str(message.get("content")):
            events.append(TextDelta(text))
        for index, call in enumerate(message.get("tool_calls") or ()):
            function = as_dict(as_dict(call).get("function"))
            events.append(
                ToolCall(
                    id=as_str(as_dict(call).get("id")) or f"call_{index}",
                    name=as_str(function.get("name")),
                    arguments=_arguments(function.get("arguments")),
                )
            )
        events.append(
            Done(
                finish_reason=as_str(choice.get("finish_reason")) or None,
                usage=_usage(payload.get("usage")),
            )
        )
        return events


def _arguments(value: object) -> str:
    if isinstance(value, str):
        return value or "{}"
    return json.dumps(value) if value is not None else "{}"


def _usage(value: object) -> Usage | None:
    if not isinstance(value, Mapping):
        return None
    details = as_dict(value.get("prompt_tokens_details"))
    return usage(
        value.get("prompt_tokens"), value.get("completion_tokens"), details.get("cached_tokens")
    )


class _ToolCallParts:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class _ChunkParser:
    """Reads ``chat.completion.chunk`` objects; tool calls are assembled by index and
    emitted whole, in index order, when the stream ends."""

    def __init__(self, redact: Redactor) -> None:
        self._redact = redact
        self.content = False
        self.done = False
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._tools: dict[int, _ToolCallParts] = {}

    def event(self, name: str, data: str) -> list[Event]:
        if data == "[DONE]":
            self.done = True
            return []
        try:
            chunk = loads(data)
        except ValueError:
            raise protocol_failure(
                "an event-stream chunk is not valid JSON", self._redact
            ) from None
        if type(chunk) is not dict:
            raise protocol_failure("an event-stream chunk is not a JSON object", self._redact)
        # ``in`` tests before lookups: most chunks carry only choices[0].delta.content.
        if chunk.get("error"):
            raise error_failure(chunk, self._redact)
        if "usage" in chunk and chunk["usage"] is not None:
            self._usage = _usage(chunk["usage"])
        choices = chunk.get("choices")
        if not choices or type(choices) is not list:
            return []
        choice = choices[0]
        if type(choice) is not dict:
            raise protocol_failure("a chunk choice is not an object", self._redact)
        if finish := choice.get("finish_reason"):
            self._finish = as_str(finish) or None
        delta = choice.get("delta")
        if not delta or type(delta) is not dict:
            return []
        text = delta.get("content")
        if len(delta) == 1 and text and type(text) is str:  # nearly every chunk
            self.content = True
            return [TextDelta(text)]
        events: list[Event] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            events.append(ReasoningDelta(reasoning))
        if text and isinstance(text, str):
            events.append(TextDelta(text))
        if events:
            self.content = True
        if tool_calls := delta.get("tool_calls"):
            self._tool_pieces(tool_calls)
        return events

    def _tool_pieces(self, pieces: object) -> None:
        if not isinstance(pieces, list):
            raise protocol_failure("delta.tool_calls is not a list", self._redact)
        for position, raw_piece in enumerate(pieces):
            piece = as_dict(raw_piece)
            index = piece.get("index", position)
            if not isinstance(index, int):
                raise protocol_failure("a tool call delta has no integer index", self._redact)
            parts = self._tools.setdefault(index, _ToolCallParts())
            if piece_id := as_str(piece.get("id")):
                parts.id = piece_id
            function = as_dict(piece.get("function"))
            if name := as_str(function.get("name")):
                parts.name = name
            if arguments := as_str(function.get("arguments")):
                parts.arguments.append(arguments)
            self.content = True

    def end(self) -> list[Event]:
        if not self.done and self._finish is None:
            raise protocol_failure("the stream ended before data: [DONE]", self._redact)
        events: list[Event] = [
            ToolCall(
                id=parts.id or f"call_{index}",
                name=parts.name,
                arguments="".join(parts.arguments) or "{}",
            )
            for index, parts in sorted(self._tools.items())
        ]
        events.append(Done(finish_reason=self._finish, usage=self._usage))
        return events
