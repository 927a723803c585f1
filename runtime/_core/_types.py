"""Values that cross threads: requests, stream events, attempts, health rows.

All are frozen attrs classes; none holds an API key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._errors import RequestRejected
from ._vocab import ErrorKind, HealthState

if TYPE_CHECKING:
    from ._classify import Failure

#: Largest ``max_tokens`` accepted; anything above is a typo, not a budget.
MAX_TOKENS_LIMIT = 10_000_000
#: Longest duration accepted anywhere (a year): beyond it a timeout is a typo, and past
#: ``threading.TIMEOUT_MAX`` (~292 years) the thread waits themselves overflow.
MAX_SECONDS = 365 * 86400.0
#: The wire formats ``Request.extra`` may carry fields for.
EXTRA_APIS = ("openai", "anthropic")
#: Body fields the wire formats own: ``Request.extra`` may not set them.
RESERVED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "system",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "tools",
        "stop",
        "stop_sequences",
        "top_p",
        "seed",
        "user",
        "tool_choice",
        "response_format",
        "metadata",
    }
)
_TOOL_CHOICES = frozenset({"auto", "none", "required"})
_FORMATS = frozenset({"text", "json_object", "json_schema"})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def _freeze_messages(value: Any) -> tuple[Mapping[str, Any], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"Request.messages must be a list of message dicts, not {type(value).__name__}"
        )
    for index, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise TypeError(
                f"Request.messages[{index}] must be a dict, not {type(message).__name__}"
            )
    return tuple(value)


def _freeze_models(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise TypeError(
            f"Request.fallback_models must be a sequence of strings, not {type(value).__name__}"
        )
    return tuple(value)


def _freeze_tools(value: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise TypeError(f"Request.tools must be a list of dicts, not {type(value).__name__}")
    for index, tool in enumerate(value):
        if not isinstance(tool, Mapping):
            raise TypeError(f"Request.tools[{index}] must be a dict, not {type(tool).__name__}")
        try:
            json.dumps(tool, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as error:
            # Found here, not by the adapter: there it would be retried as an adapter bug.
            raise RequestRejected(
                f"Request.tools[{index}] cannot be sent as JSON: {error}",
                kind=ErrorKind.BAD_REQUEST,
            ) from None
    return tuple(value)


def _freeze_stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise TypeError(
            f"Request.stop must be a string or a list of strings, not {type(value).__name__}"
        )
    return tuple(value)


def _freeze_extra(value: Any) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(value, Mapping):
        raise TypeError(
            "Request.extra must be a dict of API name to a dict of body fields, "
            f"not {type(value).__name__}"
        )
    frozen: dict[str, Mapping[str, Any]] = {}
    for api, fields in value.items():
        if api not in EXTRA_APIS:
            raise TypeError(f"Request.extra keys are API names {EXTRA_APIS}, not {api!r}")
        if not isinstance(fields, Mapping) or not all(isinstance(k, str) for k in fields):
            raise TypeError(f"Request.extra[{api!r}] must be a dict with string keys")
        frozen[api] = dict(fields)
    return frozen


@attrs.frozen
class Request:
    """One LLM call: a model (or alias), messages, and optional per-request fallbacks.

    Example:
        >>> Request(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
        Request(model='openai/gpt-4o', ...)

    The fields are OpenAI-shaped; each wire format maps them to its provider's equivalent
    (see docs/sdk.md): ``stop`` (a string or up to 4), ``top_p``, ``seed``, ``user`` (an
    end-user id), ``tool_choice`` (``"auto"``, ``"none"``, ``"required"`` or
    ``{"type": "function", "function": {"name": ...}}``), ``response_format``
    (``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {...}}``),
    ``metadata`` (string pairs). ``extra`` carries body fields with no common equivalent,
    per wire format: ``{"anthropic": {"top_k": 5}, "openai": {"logprobs": True}}``; each
    provider gets only its own format's fields, merged into its request body as they are.

    Wrong types raise ``TypeError``; values that no provider could accept (empty messages,
    an unknown role, a non-positive or absurd ``max_tokens``) raise ``RequestRejected``
    with kind ``bad_request``. Both happen before any call is made.
    """

    model: str
    messages: tuple[Mapping[str, Any], ...] = attrs.field(converter=_freeze_messages)
    fallback_models: tuple[str, ...] = attrs.field(default=(), converter=_freeze_models)
    max_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[Mapping[str, Any], ...] = attrs.field(default=(), converter=_freeze_tools)
    timeout: float | None = None
    stop: tuple[str, ...] = attrs.field(default=(), converter=_freeze_stop)
    top_p: float | None = None
    seed: int | None = None
    user: str | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Mapping[str, Any] | None = None
    metadata: Mapping[str, str] | None = None
    extra: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, converter=_freeze_extra)

    def __attrs_post_init__(self) -> None:
        _check_request(self)


def _reject(message: str) -> RequestRejected:
    return RequestRejected(message, kind=ErrorKind.BAD_REQUEST)


def _check_request(request: Request) -> None:
    if not isinstance(request.model, str):
        raise TypeError(f"Request.model must be a str, not {type(request.model).__name__}")
    if not request.model.strip():
        raise _reject("Request.model is empty")
    for index, model in enumerate(request.fallback_models):
        if not isinstance(model, str):
            raise TypeError(
                f"Request.fallback_models[{index}] must be a str, not {type(model).__name__}"
            )
        if not model.strip():
            raise _reject(f"Request.fallback_models[{index}] is empty")
    if not request.messages:
        raise _reject("Request.messages is empty: send at least one message")
    for index, message in enumerate(request.messages):
        role = message.get("role")
        if role is not None and not isinstance(role, str):
            raise TypeError(
                f"Request.messages[{index}].role must be a str, not {type(role).__name__}"
            )
        if role not in _ROLES:
            raise _reject(
                f"Request.messages[{index}] has role {role!r}; expected one of {sorted(_ROLES)}"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list, tuple)):
            raise TypeError(
                f"Request.messages[{index}].content must be a str or a list of parts, "
                f"not {type(content).__name__}"
            )
    if request.max_tokens is not None:
        if isinstance(request.max_tokens, bool) or not isinstance(request.max_tokens, int):
            raise TypeError(
                f"Request.max_tokens must be an int, not {type(request.max_tokens).__name__}"
            )
        if not 0 < request.max_tokens <= MAX_TOKENS_LIMIT:
            raise _reject(
                f"Request.max_tokens={request.max_tokens} is outside 1..{MAX_TOKENS_LIMIT}"
            )
    _check_number("temperature", request.temperature, low=0.0, high=2.0)
    _check_number("timeout", request.timeout, low=0.0, high=MAX_SECONDS)
    _check_number("top_p", request.top_p, low=0.0, high=1.0)
    _check_options(request)


def _check_options(request: Request) -> None:
    """The fields beyond the prompt: types, then values (before any call is made)."""
    for index, stop in enumerate(request.stop):
        if not isinstance(stop, str):
            raise TypeError(f"Request.stop[{index}] must be a str, not {type(stop).__name__}")
    if len(request.stop) > 4 or any(not s for s in request.stop):
        raise _reject("Request.stop takes at most 4 non-empty strings")
    if request.seed is not None and (
        isinstance(request.seed, bool) or not isinstance(request.seed, int)
    ):
        raise TypeError(f"Request.seed must be an int, not {type(request.seed).__name__}")
    if request.user is not None and not isinstance(request.user, str):
        raise TypeError(f"Request.user must be a str, not {type(request.user).__name__}")
    choice = request.tool_choice
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise _reject(
                f"Request.tool_choice={choice!r}; expected one of {sorted(_TOOL_CHOICES)} "
                "or a function"
            )
    elif isinstance(choice, Mapping):
        function = choice.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _reject(
                'Request.tool_choice must name a function: {"type": "function", '
                '"function": {"name": ...}}'
            )
    elif choice is not None:
        raise TypeError(f"Request.tool_choice must be a str or a dict, not {type(choice).__name__}")
    fmt = request.response_format
    if fmt is not None:
        if not isinstance(fmt, Mapping):
            raise TypeError(f"Request.response_format must be a dict, not {type(fmt).__name__}")
        if fmt.get("type") not in _FORMATS:
            raise _reject(
                f"Request.response_format type {fmt.get('type')!r}; expected one of "
                f"{sorted(_FORMATS)}"
            )
    meta = request.metadata
    if meta is not None and (
        not isinstance(meta, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    ):
        raise TypeError("Request.metadata must be a dict of strings to strings")
    for api, fields in request.extra.items():
        owned = sorted(RESERVED_FIELDS.intersection(fields))
        if owned:
            raise _reject(f"Request.extra[{api!r}] sets {', '.join(owned)}: use the Request fields")


def _check_number(name: str, value: object, *, low: float, high: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Request.{name} must be a number, not {type(value).__name__}")
    in_range = math.isfinite(value) and value >= low and (high is None or value <= high)
    if name == "timeout":
        in_range = in_range and value > 0
    if not in_range:
        bound = f"{low}..{high}" if name != "timeout" else f"positive, at most {high:g} seconds"
        raise _reject(f"Request.{name}={value!r} must be {bound}")


# --- stream events ------------------------------------------------------------------------


@attrs.frozen
class Usage:
    """Token counts reported by the provider."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None


@attrs.frozen
class TextDelta:
    """A piece of the answer's text."""

    text: str


@attrs.frozen
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking") text."""

    text: str


@attrs.frozen
class ToolCall:
    """A complete tool call; ``arguments`` is the JSON text the model produced."""

    id: str
    name: str
    arguments: str


@attrs.frozen
class Done:
    """The clean end of a stream."""

    finish_reason: str | None = None
    usage: Usage | None = None


Event = TextDelta | ReasoningDelta | ToolCall | Done


# --- outcomes -----------------------------------------------------------------------------


@attrs.frozen
class ServedBy:
    """Which chain entry and key served a request."""

    model: str
    provider: str
    profile: str


Outcome = Literal["ok", "error", "skipped"]


@attrs.frozen
class Attempt:
    """One step of a request's walk down the chain: a call made, or an entry skipped."""

    model: str
    provider: str
    profile: str | None
    outcome: Outcome
    kind: ErrorKind | None = None
    status: int | None = None
    code: str | None = None
    message: str = ""
    duration: float = 0.0

    def failed(self, failure: Failure) -> Attempt:
        """This attempt, ended by ``failure``."""
        return attrs.evolve(
            self,
            outcome="error",
            kind=failure.kind,
            status=failure.status,
            code=failure.code,
            message=failure.message,
        )


@attrs.frozen
class Completion:
    """The whole answer of :meth:`Runtime.complete`."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage | None
    finish_reason: str | None
    served_by: ServedBy
    attempts: tuple[Attempt, ...]
    reasoning: str = ""


class Collector:
    """Gathers a stream's events into a :class:`Completion` (``complete``, ``acomplete``)."""

    __slots__ = ("_done", "_reasoning", "_text", "_tools")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: list[ToolCall] = []
        self._done: Done | None = None

    def add(self, event: Event) -> None:
        """Take one event."""
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reasoning.append(event.text)
        elif isinstance(event, ToolCall):
            self._tools.append(event)
        else:
            self._done = event

    def completion(self, served_by: ServedBy, attempts: tuple[Attempt, ...]) -> Completion:
        """The whole answer so far."""
        done = self._done
        return Completion(
            text="".join(self._text),
            tool_calls=tuple(self._tools),
            usage=done.usage if done else None,
            finish_reason=done.finish_reason if done else None,
            served_by=served_by,
            attempts=attempts,
            reasoning="".join(self._reasoning),
        )


@attrs.frozen
class ModelHealth:
    """One model's health as callers see it."""

    model: str
    state: HealthState
    cooldown_remaining: float | None
    consecutive_failures: int
    last_error: str | None
    reason: str | None
