"""What a wire format (OpenAI chat completions, Anthropic messages) gives the HTTP adapter.

A :class:`Wire` builds the request and a :class:`Parser` per call; the parser turns decoded
SSE events into switchover events. Both are pure: no I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from json import loads
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .._core._classify import Failure, classify, transport_failure
from .._core._redact import Redactor
from .._core._types import Event, Usage
from .._core._vocab import ErrorKind
from ._seam import ProviderCall, ProviderFailure


class Parser(Protocol):
    """Turns one call's SSE events into switchover events.

    ``content`` turns true at the first content delta (text, reasoning, or a piece of a
    tool call); ``done`` at the stream's end event.
    """

    content: bool
    done: bool

    def event(self, name: str, data: str) -> list[Event]:
        """One SSE event; raises ProviderFailure for an error event or a bad payload."""
        ...

    def end(self) -> list[Event]:
        """The body ended: the held-back events and Done, or ProviderFailure if unclean."""
        ...


class Wire(Protocol):
    """One API flavour: URL, headers, request body, and how to read the answer."""

    auth_header: str  # the header of :meth:`headers` that carries the key

    def url(self, base_url: str) -> str:
        """The endpoint for ``base_url``."""
        ...

    def headers(self, key: str) -> dict[str, str]:
        """Request headers carrying ``key``."""
        ...

    def body(self, call: ProviderCall) -> dict[str, Any]:
        """The JSON request body for a streaming call."""
        ...

    def parser(self, redact: Redactor) -> Parser:
        """A fresh parser for one call's event stream."""
        ...

    def completion(self, payload: Mapping[str, Any], redact: Redactor) -> list[Event]:
        """Events for a whole (non-streaming) JSON answer, ending with Done."""
        ...


def protocol_failure(message: str, redact: Redactor) -> ProviderFailure:
    """The provider answered something that is not its wire format: transient."""
    return ProviderFailure(
        transport_failure(f"malformed answer: {message}", timeout=False, redact=redact)
    )


def error_failure(payload: object, redact: Redactor) -> ProviderFailure:
    """An error reported inside a 200 answer, classified by its body alone."""
    return ProviderFailure(classify(status=None, body=payload, redact=redact))


def json_object(data: str | bytes, what: str, redact: Redactor) -> dict[str, Any]:
    """``data`` parsed as a JSON object, or a protocol failure naming ``what``."""
    try:
        value = loads(data)
    except ValueError:  # includes UnicodeDecodeError for bytes
        raise protocol_failure(f"{what} is not valid JSON", redact) from None
    if type(value) is not dict:  # once per chunk: the exact test is the cheap one
        raise protocol_failure(f"{what} is not a JSON object", redact)
    return value


def as_int(value: object) -> int | None:
    """``value`` if it is a plain int (token counts), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_str(value: object) -> str:
    """``value`` if it is a string, else ``""``."""
    return value if isinstance(value, str) else ""


def as_dict(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def usage(
    input_tokens: object,
    output_tokens: object,
    cache_read: object = None,
    cache_creation: object = None,
) -> Usage:
    """A Usage from raw JSON values; anything that is not an int is None."""
    return Usage(
        input_tokens=as_int(input_tokens),
        output_tokens=as_int(output_tokens),
        cache_read_tokens=as_int(cache_read),
        cache_creation_tokens=as_int(cache_creation),
    )


def endpoint(base_url: str, path: Callable[[str], str]) -> str:
    """``base_url`` with its path mapped by ``path`` (given it without a trailing slash);
    a query string stays at the end, where it belongs."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=path(parts.path.rstrip("/"))))


def encode(body: Mapping[str, Any], redact: Redactor) -> bytes:
    """The request body as JSON bytes; a value JSON cannot hold rejects the request."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise ProviderFailure(
            Failure(
                kind=ErrorKind.BAD_REQUEST,
                message=redact(f"the request cannot be sent as JSON: {error}"),
            )
        ) from None
