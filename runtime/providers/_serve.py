"""The server side of the wire formats: what :mod:`switchover._transport` answers an SDK with.

A :class:`Dialect` (OpenAI chat completions, Anthropic messages) reads a caller's request
body into a :class:`Request`, and writes switchover's events back in that caller's words,
whoever served them: a whole JSON answer, SSE frames, or the API's own error body. Pure: no
I/O, no clock (the caller passes the time).

Per-request fallbacks ride in the body field ``fallback_models`` (the SDKs'
``extra_body={"fallback_models": [...]}``) or the header ``x-switchover-fallbacks``
(comma-separated); both may be given, the body's first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from .._core._errors import (
    ChainExhausted,
    DeadlineExceeded,
    RequestRejected,
    RuntimeStoppedError,
    StreamInterrupted,
    SwitchoverError,
)
from .._core._types import (
    Completion,
    Done,
    Event,
    ReasoningDelta,
    Request,
    TextDelta,
    ToolCall,
    Usage,
)
from .._core._vocab import ErrorKind
from ._anthropic import TOOL_CHOICES
from ._wire import as_dict, as_str

#: The header that names per-request fallbacks.
FALLBACK_HEADER = "x-switchover-fallbacks"
#: The body field that names per-request fallbacks.
FALLBACK_FIELD = "fallback_models"
#: The header that carries a per-request timeout in seconds.
TIMEOUT_HEADER = "x-switchover-timeout"


class BadInput(Exception):
    """The caller's request is not one the dialect can read; ``status`` says how bad."""

    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind


@attrs.frozen
class Reply:
    """An HTTP answer as data: the transport turns it into an ``httpx.Response``."""

    status: int
    body: bytes
    headers: Mapping[str, str]


@attrs.frozen
class Inbound:
    """A caller's request as read: the switchover request and whether it asked for SSE."""

    request: Request
    stream: bool
    include_usage: bool
    model: str  # as the caller named it, echoed in the answer


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _json_reply(status: int, body: object, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, _dumps(body), {"content-type": "application/json", **(headers or {})})


def read_json(content: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or BadInput naming what is wrong."""
    if not content.strip():
        raise BadInput("the request body is empty; send a JSON object")
    try:
        value = json.loads(content)
    except ValueError as error:  # includes UnicodeDecodeError
        raise BadInput(f"the request body is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise BadInput(f"the request body must be a JSON object, not {type(value).__name__}")
    return value


def _fallbacks(body: dict[str, Any], headers: Mapping[str, str]) -> tuple[str, ...]:
    raw = body.pop(FALLBACK_FIELD, None)
    if raw is None:
        from_body: list[str] = []
    elif isinstance(raw, list) and all(isinstance(m, str) for m in raw):
        from_body = list(raw)
    else:
        raise BadInput(f"{FALLBACK_FIELD} must be a list of model strings")
    header = headers.get(FALLBACK_HEADER, "")
    from_header = [m.strip() for m in header.split(",") if m.strip()]
    return (*from_body, *from_header)


def _timeout(headers: Mapping[str, str]) -> float | None:
    raw = headers.get(TIMEOUT_HEADER)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadInput(f"{TIMEOUT_HEADER} must be a number of seconds, not {raw!r}") from None


def _build(fields: dict[str, Any]) -> Request:
    try:
        return Request(**fields)
    except TypeError as error:
        raise BadInput(str(error)) from None
    except RequestRejected as error:
        raise BadInput(str(error)) from None


def _status_and_kind(error: SwitchoverError) -> tuple[int, str, bool]:
    """(HTTP status, error kind, should the SDK retry) for an error before any output."""
    if isinstance(error, RequestRejected):
        return 400, str(error.kind), False
    if isinstance(error, ChainExhausted):
        limited = any(a.kind is ErrorKind.RATE_LIMIT for a in error.attempts)
        return (429, "rate_limit", False) if limited else (503, "overloaded", False)
    if isinstance(error, DeadlineExceeded):
        return 504, "timeout", False
    if isinstance(error, RuntimeStoppedError):
        return 503, "stopped", False
    if isinstance(error, StreamInterrupted):
        # Nothing was sent yet (a whole answer was asked for): a fresh try is no repeat.
        return 502, str(error.kind), True
    return 500, "internal", False


class Dialect:
    """One wire format as a server speaks it."""

    name: str
    path: str  # the path suffix it answers

    def read(self, body: dict[str, Any], headers: Mapping[str, str]) -> Inbound:
        """The caller's request; raises BadInput."""
        raise NotImplementedError

    def whole(self, completion: Completion, inbound: Inbound, *, created: int) -> Reply:
        """A whole JSON answer."""
        raise NotImplementedError

    def encoder(self, inbound: Inbound, *, created: int) -> Encoder:
        """A fresh SSE encoder for one streamed answer."""
        raise NotImplementedError

    def error_body(self, status: int, kind: str, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def bad_input(self, error: BadInput) -> Reply:
        """A request that was never run: the API's error body; the SDK must not retry."""
        return _json_reply(
            error.status,
            self.error_body(error.status, error.kind, error.message),
            {"x-should-retry": "false"},
        )

    def failed(self, error: SwitchoverError, redact: Callable[[str], str] = str) -> Reply:
        """The API's error body for a request that ended before any output."""
        status, kind, retry = _status_and_kind(error)
        headers = {"x-should-retry": "true" if retry else "false"}
        if isinstance(error, ChainExhausted) and error.retry_after is not None:
            headers["retry-after"] = str(max(1, round(error.retry_after + 0.499)))
        return _json_reply(status, self.error_body(status, kind, redact(str(error))), headers)


class Encoder:
    """Turns one stream's events into SSE bytes, in a caller's wire format."""

    def start(self) -> bytes:
        raise NotImplementedError

    def event(self, event: Event) -> bytes:
        raise NotImplementedError

    def interrupted(self, kind: str, message: str) -> bytes:
        """The in-stream error event for a stream cut after it had started."""
        raise NotImplementedError


# --- OpenAI chat completions ------------------------------------------------------------------

#: switchover's error kinds in OpenAI's words (``error.type``, ``error.code``).
_OPENAI_KINDS: Mapping[str, tuple[str, str | None]] = {
    "rate_limit": ("rate_limit_exceeded", "rate_limit_exceeded"),
    "overloaded": ("server_error", "overloaded"),
    "timeout": ("timeout", "timeout"),
    "stopped": ("server_error", "unavailable"),
    "internal": ("server_error", None),
    "not_found": ("invalid_request_error", "model_not_found"),
    "context_exceeded": ("invalid_request_error", "context_length_exceeded"),
    "output_limit": ("invalid_request_error", "max_tokens_exceeded"),
    "bad_request": ("invalid_request_error", None),
    "invalid_request": ("invalid_request_error", None),
}
#: Fields the OpenAI reader maps itself; the rest of the body goes to ``extra["openai"]``.
_OPENAI_TYPED = ("temperature", "top_p", "seed", "user", "tool_choice", "response_format")
_OPENAI_DROPPED = frozenset({"stream", "stream_options", "n", "model", "messages"})


class OpenAIDialect(Dialect):
    """``POST .../chat/completions``, as the openai SDK sends it."""

    name = "openai"
    path = "/chat/completions"

    def read(self, body: dict[str, Any], headers: Mapping[str, str]) -> Inbound:
        body = dict(body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadInput("model is required: a chain entry (provider/model) or an alias")
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise BadInput("messages must be a list of message objects")
        if body.get("n") not in (None, 1):
            raise BadInput("n > 1 is not supported: one answer per request")
        stream = body.get("stream") is True
        include_usage = bool(as_dict(body.get("stream_options")).get("include_usage"))
        fields: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "fallback_models": _fallbacks(body, headers),
            "timeout": _timeout(headers),
            "max_tokens": body.get("max_completion_tokens", body.get("max_tokens")),
            "tools": body.get("tools") or (),
            "stop": body.get("stop"),
            "metadata": body.get("metadata"),
        }
        fields.update({name: body.get(name) for name in _OPENAI_TYPED})
        taken = {*_OPENAI_TYPED, *_OPENAI_DROPPED, "max_tokens", "max_completion_tokens"}
        taken |= {"tools", "stop", "metadata"}
        extra = {k: v for k, v in body.items() if k not in taken}
        if extra:
            fields["extra"] = {"openai": extra}
        return Inbound(_build(fields), stream, include_usage, model)

    def whole(self, completion: Completion, inbound: Inbound, *, created: int) -> Reply:
        message: dict[str, Any] = {"role": "assistant", "content": completion.text or None}
        if completion.reasoning:
            message["reasoning_content"] = completion.reasoning
        if completion.tool_calls:
            message["tool_calls"] = [_openai_tool(call) for call in completion.tool_calls]
        body: dict[str, Any] = {
            "id": f"chatcmpl-switchover-{created}",
            "object": "chat.completion",
            "created": created,
            "model": inbound.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": completion.finish_reason or "stop",
                    "logprobs": None,
                }
            ],
        }
        if completion.usage is not None:
            body["usage"] = _openai_usage(completion.usage)
        return _json_reply(200, body)

    def encoder(self, inbound: Inbound, *, created: int) -> Encoder:
        return _OpenAIEncoder(inbound, created)

    def error_body(self, status: int, kind: str, message: str) -> dict[str, Any]:
        error_type, code = _OPENAI_KINDS.get(kind, ("invalid_request_error", None))
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _openai_tool(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    if index is not None:
        tool["index"] = index
    return tool


def _openai_usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.input_tokens or 0
    output = usage.output_tokens or 0
    body: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
    }
    if usage.cache_read_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    return body


class _OpenAIEncoder(Encoder):
    def __init__(self, inbound: Inbound, created: int) -> None:
        self._include_usage = inbound.include_usage
        # Every chunk shares this prefix; only the choice differs.
        head = {
            "id": f"chatcmpl-switchover-{created}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": inbound.model,
        }
        self._head = _dumps(head)[:-1] + b',"choices":['
        self._tools = 0

    def _chunk(self, delta: Mapping[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + self._head + _dumps(choice) + b"]}\n\n"

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def event(self, event: Event) -> bytes:
        if type(event) is TextDelta:
            return self._chunk({"content": event.text})
        if isinstance(event, ReasoningDelta):
            return self._chunk({"reasoning_content": event.text})
        if isinstance(event, ToolCall):
            index, self._tools = self._tools, self._tools + 1
            return self._chunk({"tool_calls": [_openai_tool(event, index)]})
        assert isinstance(event, Done)
        out = self._chunk({}, event.finish_reason or "stop")
        if self._include_usage:
            usage = _openai_usage(event.usage or Usage())
            out += b"data: " + self._head + b'],"usage":' + _dumps(usage) + b"}\n\n"
        return out + b"data: [DONE]\n\n"

    def interrupted(self, kind: str, message: str) -> bytes:
        error_type, code = _OPENAI_KINDS.get(kind, ("server_error", None))
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        return b"data: " + _dumps(body) + b"\n\n"


# --- Anthropic messages -----------------------------------------------------------------------

_ANTHROPIC_KINDS: Mapping[str, str] = {
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
    "transient": "overloaded_error",
    "timeout": "timeout_error",
    "stopped": "api_error",
    "internal": "api_error",
    "not_found": "not_found_error",
    "auth": "authentication_error",
    "balance": "billing_error",
}
#: switchover's (OpenAI's) finish reasons in Anthropic's words.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ANTHROPIC_TAKEN = frozenset(
    {
        "model", "messages", "system", "max_tokens", "stream", "stop_sequences", "temperature",
        "top_p", "tools", "tool_choice", "metadata",
    }
)  # fmt: skip


class AnthropicDialect(Dialect):
    """``POST /v1/messages``, as the anthropic SDK sends it."""

    name = "anthropic"
    path = "/v1/messages"

    def read(self, body: dict[str, Any], headers: Mapping[str, str]) -> Inbound:
        body = dict(body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadInput("model: Field required (a chain entry or an alias)")
        raw = body.get("messages")
        if not isinstance(raw, list):
            raise BadInput("messages: Input should be a valid list")
        metadata = as_dict(body.get("metadata"))
        user = metadata.get("user_id")
        fields: dict[str, Any] = {
            "model": model,
            "messages": anthropic_messages(body.get("system"), raw),
            "fallback_models": _fallbacks(body, headers),
            "timeout": _timeout(headers),
            "max_tokens": body.get("max_tokens"),
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "stop": body.get("stop_sequences"),
            "tools": [_function_tool(t) for t in body.get("tools") or ()],
            "tool_choice": _openai_tool_choice(body.get("tool_choice")),
            "user": user if isinstance(user, str) else None,
        }
        extra = {k: v for k, v in body.items() if k not in _ANTHROPIC_TAKEN}
        extra.pop(FALLBACK_FIELD, None)
        if extra:
            fields["extra"] = {"anthropic": extra}
        return Inbound(_build(fields), body.get("stream") is True, True, model)

    def whole(self, completion: Completion, inbound: Inbound, *, created: int) -> Reply:
        content: list[dict[str, Any]] = []
        if completion.reasoning:
            content.append({"type": "thinking", "thinking": completion.reasoning, "signature": ""})
        if completion.text:
            content.append({"type": "text", "text": completion.text})
        content.extend(_tool_use(call) for call in completion.tool_calls)
        body = {
            "id": f"msg_switchover_{created}",
            "type": "message",
            "role": "assistant",
            "model": inbound.model,
            "content": content,
            "stop_reason": _stop_reason(completion.finish_reason),
            "stop_sequence": None,
            "usage": _anthropic_usage(completion.usage or Usage()),
        }
        return _json_reply(200, body)

    def encoder(self, inbound: Inbound, *, created: int) -> Encoder:
        return _AnthropicEncoder(inbound, created)

    def error_body(self, status: int, kind: str, message: str) -> dict[str, Any]:
        error_type = _ANTHROPIC_KINDS.get(kind, "invalid_request_error")
        return {"type": "error", "error": {"type": error_type, "message": message}}


def _stop_reason(reason: str | None) -> str:
    return _STOP_REASONS.get(reason or "stop", reason or "end_turn")


def _anthropic_usage(usage: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input_tokens": usage.input_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
    }
    if usage.cache_read_tokens is not None:
        body["cache_read_input_tokens"] = usage.cache_read_tokens
    if usage.cache_creation_tokens is not None:
        body["cache_creation_input_tokens"] = usage.cache_creation_tokens
    return body


def _tool_use(call: ToolCall) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = {}
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.name,
        "input": arguments if isinstance(arguments, dict) else {},
    }


def _function_tool(tool: object) -> dict[str, Any]:
    """An Anthropic tool as an OpenAI function tool; a server tool passes through."""
    spec = as_dict(tool)
    if "input_schema" not in spec:
        return dict(spec)
    function: dict[str, Any] = {
        "name": as_str(spec.get("name")),
        "parameters": spec["input_schema"],
    }
    if description := as_str(spec.get("description")):
        function["description"] = description
    return {"type": "function", "function": function}


def _openai_tool_choice(choice: object) -> str | dict[str, Any] | None:
    """Anthropic's ``tool_choice`` in OpenAI's words (the inverse of convert_tool_choice)."""
    if choice is None:
        return None
    kind = as_dict(choice).get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": as_str(as_dict(choice).get("name"))}}
    mapped = next((ours for ours, theirs in TOOL_CHOICES.items() if theirs == kind), None)
    if mapped is None:
        raise BadInput(f"tool_choice.type {kind!r} is not one of auto, any, tool, none")
    return mapped


def anthropic_messages(system: object, messages: Iterable[object]) -> list[dict[str, Any]]:
    """Anthropic ``system`` and ``messages`` as OpenAI-style messages (what Request holds).

    Text blocks keep their extra keys (``cache_control``), which the Anthropic wire sends
    back as they were; tool results become ``tool`` messages; images become ``image_url``
    parts; thinking blocks of earlier turns are dropped (another provider cannot read them).
    """
    out: list[dict[str, Any]] = []
    if isinstance(system, str) and system:
        out.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        out.append({"role": "system", "content": [dict(as_dict(b)) for b in system]})
    elif system not in (None, "", []):
        raise BadInput("system must be a string or a list of text blocks")
    for index, raw in enumerate(messages):
        message = as_dict(raw)
        role = message.get("role")
        content = message.get("content")
        if role not in ("user", "assistant"):
            raise BadInput(f"messages.{index}.role must be 'user' or 'assistant', not {role!r}")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise BadInput(f"messages.{index}.content must be a string or a list of blocks")
        blocks = [as_dict(b) for b in content]
        if role == "assistant":
            out.append(_assistant_turn(blocks))
            continue
        parts: list[dict[str, Any]] = []
        for block in blocks:
            if block.get("type") == "tool_result":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": as_str(block.get("tool_use_id")),
                        "content": _tool_result_text(block.get("content")),
                    }
                )
            else:
                parts.append(_part(block))
        if parts:
            out.append({"role": "user", "content": parts})
    return out


def _assistant_turn(blocks: list[Mapping[str, Any]]) -> dict[str, Any]:
    text = "".join(as_str(b.get("text")) for b in blocks if b.get("type") == "text")
    turn: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = [
        {
            "id": as_str(b.get("id")),
            "type": "function",
            "function": {
                "name": as_str(b.get("name")),
                "arguments": _dumps(b.get("input") or {}).decode(),
            },
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    if calls:
        turn["tool_calls"] = calls
    return turn


def _tool_result_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(as_str(as_dict(b).get("text")) for b in content)
    return ""


def _part(block: Mapping[str, Any]) -> dict[str, Any]:
    if block.get("type") != "image":
        return dict(block)
    source = as_dict(block.get("source"))
    if source.get("type") == "base64":
        url = f"data:{as_str(source.get('media_type'))};base64,{as_str(source.get('data'))}"
    else:
        url = as_str(source.get("url"))
    return {"type": "image_url", "image_url": {"url": url}}


def _frame(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"


class _AnthropicEncoder(Encoder):
    def __init__(self, inbound: Inbound, created: int) -> None:
        self._model = inbound.model
        self._id = f"msg_switchover_{created}"
        self._block: str | None = None  # the open content block's type
        self._index = -1
        # The hot path's frame, with only the text to fill in.
        self._text_head = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        )

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _frame("message_start", {"type": "message_start", "message": message})

    def _open(self, kind: str, block: Mapping[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._block = kind
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return out + _frame("content_block_start", start)

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return _frame("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def event(self, event: Event) -> bytes:
        if type(event) is TextDelta:
            out = b"" if self._block == "text" else self._open("text", {"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": event.text}
            return (
                out
                + self._text_head
                + str(self._index).encode()
                + b',"delta":'
                + _dumps(delta)
                + b"}\n\n"
            )
        if isinstance(event, ReasoningDelta):
            out = b""
            if self._block != "thinking":
                out = self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            delta = {"type": "thinking_delta", "thinking": event.text}
            return out + _frame(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._index, "delta": delta},
            )
        if isinstance(event, ToolCall):
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            out = self._open("tool_use", block)
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            out += _frame(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._index, "delta": delta},
            )
            return out + self._close()
        assert isinstance(event, Done)
        usage = event.usage or Usage()
        end = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(event.finish_reason), "stop_sequence": None},
            "usage": _anthropic_usage(usage),
        }
        return (
            self._close()
            + _frame("message_delta", end)
            + _frame("message_stop", {"type": "message_stop"})
        )

    def interrupted(self, kind: str, message: str) -> bytes:
        error_type = _ANTHROPIC_KINDS.get(kind, "api_error")
        return _frame("error", {"type": "error", "error": {"type": error_type, "message": message}})


DIALECTS: tuple[Dialect, ...] = (OpenAIDialect(), AnthropicDialect())


def dialect_for(path: str) -> Dialect | None:
    """The dialect whose endpoint ``path`` is (``/v1/chat/completions``, ``/v1/messages``)."""
    path = path.rstrip("/")
    return next((d for d in DIALECTS if path.endswith(d.path)), None)


def unknown_path(path: str) -> Reply:
    """A path no dialect answers: a 404 both SDKs read."""
    message = (
        f"switchover answers POST .../chat/completions (OpenAI) and POST .../v1/messages "
        f"(Anthropic), not {path!r}"
    )
    # Both SDKs read error.message; the Anthropic shape adds a top-level type.
    error = {"message": message, "type": "invalid_request_error", "code": "unknown_url"}
    return _json_reply(404, {"type": "error", "error": error}, {"x-should-retry": "false"})
