"""The Anthropic messages wire format.

``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version: 2023-06-01``.
Requests arrive OpenAI-shaped and are converted: system (and developer) messages are lifted
into ``system``, tool results become ``tool_result`` blocks of a user turn, assistant tool
calls become ``tool_use`` blocks, OpenAI function tools become ``input_schema`` tools, and
``image_url`` parts become image blocks. Stop reasons are reported in OpenAI's words
(``stop``, ``length``, ``tool_calls``), so a caller sees one vocabulary whoever served.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .._core._redact import Redactor
from .._core._types import Done, Event, ReasoningDelta, Request, TextDelta, ToolCall
from ._seam import ProviderCall
from ._wire import (
    Parser,
    as_dict,
    as_int,
    as_str,
    endpoint,
    error_failure,
    json_object,
    protocol_failure,
    usage,
)

VERSION = "2023-06-01"
#: ``max_tokens`` sent when the request sets none (the API requires one). 4096 is the
#: output ceiling of the oldest Claude models still served, so it never triggers an
#: output-limit error; set ``Request.max_tokens`` for longer answers.
DEFAULT_MAX_TOKENS = 4096
#: Anthropic's temperature range is 0..1 (OpenAI's is 0..2): higher values are clamped
#: rather than failing over on a parameter range.
MAX_TEMPERATURE = 1.0
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicWire:
    """Builds messages requests and reads their answers."""

    #: The header that carries the key (``ProviderConfig.key_header`` replaces it).
    auth_header = "x-api-key"

    def __repr__(self) -> str:
        return "AnthropicWire()"

    def url(self, base_url: str) -> str:
        # Tolerate a base URL that already ends in /v1, as OpenAI-style configs do.
        return endpoint(
            base_url, lambda path: path + ("/messages" if path.endswith("/v1") else "/v1/messages")
        )

    def headers(self, key: str) -> dict[str, str]:
        return {
            "x-api-key": key.strip(),
            "anthropic-version": VERSION,
            "content-type": "application/json",
            "accept": "text/event-stream",
        }

    def body(self, call: ProviderCall) -> dict[str, Any]:
        system, messages = convert_messages(call.messages)
        body: dict[str, Any] = {
            "model": call.model,
            "max_tokens": call.max_tokens if call.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "messages": messages,
            "stream": True,
        }
        if system:
            body["system"] = system
        if call.temperature is not None:
            body["temperature"] = min(call.temperature, MAX_TEMPERATURE)
        if call.tools:
            body["tools"] = [convert_tool(t) for t in call.tools]
        if call.request is not None:
            body.update(request_options(call.request, tools=bool(call.tools)))
        return body

    def parser(self, redact: Redactor) -> Parser:
        return _EventParser(redact)

    def completion(self, payload: Mapping[str, Any], redact: Redactor) -> list[Event]:
        blocks = payload.get("content")
        if not isinstance(blocks, list):
            raise protocol_failure("a JSON answer with no content blocks", redact)
        events: list[Event] = []
        for raw_block in blocks:
            block = as_dict(raw_block)
            kind = block.get("type")
            if kind == "text" and (text := as_str(block.get("text"))):
                events.append(TextDelta(text))
            elif kind == "thinking" and (thinking := as_str(block.get("thinking"))):
                events.append(ReasoningDelta(thinking))
            elif kind == "tool_use":
                events.append(
                    ToolCall(
                        id=as_str(block.get("id")),
                        name=as_str(block.get("name")),
                        arguments=json.dumps(block.get("input") or {}),
                    )
                )
        raw = as_dict(payload.get("usage"))
        events.append(
            Done(
                finish_reason=_stop_reason(payload.get("stop_reason")),
                usage=usage(
                    raw.get("input_tokens"),
                    raw.get("output_tokens"),
                    raw.get("cache_read_input_tokens"),
                    raw.get("cache_creation_input_tokens"),
                ),
            )
        )
        return events


def request_options(request: Request, *, tools: bool) -> dict[str, Any]:
    """The request's fields beyond the prompt, in Anthropic's words.

    ``seed`` and ``response_format`` have no equivalent in the 2023-06-01 API and are not
    sent; ``user`` (or ``metadata["user_id"]``) becomes ``metadata.user_id``, the only
    metadata the API takes; ``tool_choice`` is sent only with tools.
    """
    body: dict[str, Any] = {}
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    user = request.user or (request.metadata or {}).get("user_id")
    if user:
        body["metadata"] = {"user_id": user}
    if tools and request.tool_choice is not None:
        body["tool_choice"] = convert_tool_choice(request.tool_choice)
    body.update(request.extra.get("anthropic", {}))
    return body


#: OpenAI's ``tool_choice`` words and Anthropic's ``tool_choice.type`` for the same thing.
TOOL_CHOICES: Mapping[str, str] = {"auto": "auto", "none": "none", "required": "any"}


def convert_tool_choice(choice: str | Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI ``tool_choice`` as Anthropic's."""
    if isinstance(choice, str):
        return {"type": TOOL_CHOICES.get(choice, choice)}
    return {"type": "tool", "name": as_str(as_dict(choice.get("function")).get("name"))}


def _stop_reason(value: object) -> str | None:
    reason = as_str(value)
    return _STOP_REASONS.get(reason, reason) or None


# --- requests: OpenAI-shaped messages and tools to Anthropic's ------------------------------


def convert_messages(
    messages: Iterable[Mapping[str, Any]],
) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    """Split OpenAI-style messages into Anthropic's ``system`` and ``messages``.

    ``system`` is a string, or a list of text blocks when a system part carries more than
    text (such as ``cache_control``). Consecutive tool results share one user turn.
    """
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_blocks(content))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": as_str(message.get("tool_call_id")),
                "content": content if isinstance(content, str) else _blocks(content),
            }
            previous = out[-1] if out else None
            if (
                previous is not None
                and previous["role"] == "user"
                and isinstance(previous["content"], list)
                and all(b.get("type") == "tool_result" for b in previous["content"])
            ):
                previous["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
        elif role == "assistant" and message.get("tool_calls"):
            blocks = [b for b in _blocks(content) if b.get("type") != "text" or b.get("text")]
            for call in message.get("tool_calls") or ():
                function = as_dict(as_dict(call).get("function"))
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": as_str(as_dict(call).get("id")),
                        "name": as_str(function.get("name")),
                        "input": _tool_input(function.get("arguments")),
                    }
                )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append(
                {
                    "role": role,
                    "content": content if isinstance(content, str) else _blocks(content),
                }
            )
    plain = all(set(b) == {"type", "text"} and b["type"] == "text" for b in system)
    return ("\n\n".join(b["text"] for b in system) if plain else system), out


def _blocks(content: object) -> list[dict[str, Any]]:
    """OpenAI content (a string or parts) as Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for raw_part in content if isinstance(content, (list, tuple)) else ():
        part = dict(as_dict(raw_part))
        if part.get("type") == "image_url":
            blocks.append(_image(as_dict(part.get("image_url")).get("url")))
        else:
            blocks.append(part)  # text parts are the same; anything else is taken as native
    return blocks


def _image(url: object) -> dict[str, Any]:
    text = as_str(url)
    if text.startswith("data:") and ";base64," in text:
        media_type, _, data = text[len("data:") :].partition(";base64,")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": text}}


def _tool_input(arguments: object) -> object:
    """A tool call's arguments as the object Anthropic wants (``{}`` if not valid JSON)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = json.loads(as_str(arguments) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def convert_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool as an Anthropic tool; anything else passes through."""
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, Mapping):
        return dict(tool)
    converted: dict[str, Any] = {
        "name": as_str(function.get("name")),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if description := as_str(function.get("description")):
        converted["description"] = description
    return converted


# --- answers -------------------------------------------------------------------------------


class _ToolBlock:
    __slots__ = ("id", "input", "name", "parts")

    def __init__(self, block: Mapping[str, Any]) -> None:
        self.id = as_str(block.get("id"))
        self.name = as_str(block.get("name"))
        self.input = block.get("input")
        self.parts: list[str] = []


class _EventParser:
    """Reads ``message_start`` … ``message_stop``; a tool call is emitted whole when its
    content block stops. ``ping`` and unknown events are ignored."""

    def __init__(self, redact: Redactor) -> None:
        self._redact = redact
        self.content = False
        self.done = False
        self._stop: str | None = None
        self._stopped = False  # message_delta carried a stop reason
        self._input: dict[str, object] = {}
        self._output: object = None
        self._tools: dict[int, _ToolBlock] = {}

    def event(self, name: str, data: str) -> list[Event]:
        payload = json_object(data, "an event's data", self._redact)
        kind = payload.get("type") or name
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":  # the hot path
                text = delta.get("text")
                if text and isinstance(text, str):
                    self.content = True
                    return [TextDelta(text)]
            return self._delta(payload)
        if kind == "content_block_start":
            return self._start(payload)
        if kind == "content_block_stop":
            return self._stop_block(payload)
        if kind == "message_start":
            raw = as_dict(as_dict(payload.get("message")).get("usage"))
            self._input = dict(raw)
            self._output = raw.get("output_tokens")
        elif kind == "message_delta":
            if reason := as_dict(payload.get("delta")).get("stop_reason"):
                self._stop = _stop_reason(reason)
                self._stopped = True
            raw = as_dict(payload.get("usage"))
            if "output_tokens" in raw:
                self._output = raw["output_tokens"]
            if as_int(raw.get("input_tokens")) is not None:
                self._input["input_tokens"] = raw["input_tokens"]
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise error_failure(payload, self._redact)
        return []

    def _delta(self, payload: Mapping[str, Any]) -> list[Event]:
        delta = as_dict(payload.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            text = as_str(delta.get("text"))
            if text:
                self.content = True
                return [TextDelta(text)]
        elif kind == "thinking_delta":
            thinking = as_str(delta.get("thinking"))
            if thinking:
                self.content = True
                return [ReasoningDelta(thinking)]
        elif kind == "input_json_delta":
            block = self._tools.get(as_int(payload.get("index")) or 0)
            if block is None:
                raise protocol_failure("input_json_delta outside a tool_use block", self._redact)
            block.parts.append(as_str(delta.get("partial_json")))
            self.content = True
        return []

    def _start(self, payload: Mapping[str, Any]) -> list[Event]:
        block = as_dict(payload.get("content_block"))
        kind = block.get("type")
        if kind == "tool_use":
            self._tools[as_int(payload.get("index")) or 0] = _ToolBlock(block)
            self.content = True
        elif kind == "text" and (text := as_str(block.get("text"))):
            self.content = True
            return [TextDelta(text)]
        elif kind == "thinking" and (thinking := as_str(block.get("thinking"))):
            self.content = True
            return [ReasoningDelta(thinking)]
        return []

    def _stop_block(self, payload: Mapping[str, Any]) -> list[Event]:
        block = self._tools.pop(as_int(payload.get("index")) or 0, None)
        if block is None:
            return []
        arguments = "".join(block.parts) or (json.dumps(block.input) if block.input else "{}")
        return [ToolCall(id=block.id, name=block.name, arguments=arguments)]

    def end(self) -> list[Event]:
        if not self.done and not self._stopped:
            raise protocol_failure("the stream ended before message_stop", self._redact)
        return [
            Done(
                finish_reason=self._stop,
                usage=usage(
                    self._input.get("input_tokens"),
                    self._output,
                    self._input.get("cache_read_input_tokens"),
                    self._input.get("cache_creation_input_tokens"),
                ),
            )
        ]
