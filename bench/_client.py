"""A minimal direct client of both wire formats over httpx (no failover, no classifying).

The oracle and the overhead baseline call the fleet with it, and the seed port builds its
Rust-style providers on it. It is what "a direct httpx stream" means in the overhead
benchmark: one POST inside ``client.stream``, SSE decoded by the runtime's public
:class:`switchover.providers.SSEDecoder` (so the plain install needs nothing more), text
collected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
from switchover.providers import SSEDecoder


class HttpStatusError(Exception):
    """The provider answered an HTTP error status."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"{status} {reason}: {body}")
        self.status = status
        self.reason = reason
        self.body = body


class StreamEventError(Exception):
    """The stream carried an error event (``data`` is its JSON text)."""

    def __init__(self, data: str) -> None:
        super().__init__(data)
        self.data = data


class StreamTruncated(Exception):
    """The stream ended without its end marker."""


def endpoint(api: str, base_url: str) -> str:
    return base_url.rstrip("/") + ("/chat/completions" if api == "openai" else "/v1/messages")


def headers(api: str, key: str) -> dict[str, str]:
    if api == "openai":
        return {"authorization": f"Bearer {key}"}
    return {"x-api-key": key, "anthropic-version": "2023-06-01"}


def body(
    api: str, model: str, messages: Sequence[Mapping[str, Any]], max_tokens: int | None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": model, "messages": list(messages), "stream": True}
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    elif api == "anthropic":
        payload["max_tokens"] = 8192  # required by the Messages API
    return payload


class SSECall:
    """One streaming call: ``open()`` returns at the response headers (raising on an error
    status), ``texts()`` yields the text deltas, ``close()`` releases the connection."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        api: str,
        base_url: str,
        key: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int | None,
        timeout: httpx.Timeout | float,
    ) -> None:
        self.api = api
        self.url = endpoint(api, base_url)
        self._context = client.stream(
            "POST",
            self.url,
            json=body(api, model, messages, max_tokens),
            headers=headers(api, key),
            timeout=timeout,
        )
        self._response: httpx.Response | None = None

    def open(self) -> SSECall:
        response = self._context.__enter__()
        self._response = response
        if response.status_code >= 400:
            text = response.read().decode("utf-8", "replace")
            self.close()
            raise HttpStatusError(response.status_code, response.reason_phrase, text)
        return self

    def texts(self) -> Iterator[str]:
        assert self._response is not None
        for name, data in self._events(self._response):
            if self.api == "openai":
                if data == "[DONE]":
                    return
                decoded = json.loads(data)
                if "error" in decoded:
                    raise StreamEventError(data)
                for choice in decoded.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
            else:
                if name == "error":
                    raise StreamEventError(data)
                if name == "message_stop":
                    return
                if name == "content_block_delta":
                    delta = json.loads(data).get("delta", {})
                    if delta.get("type") == "text_delta":
                        yield delta["text"]
        raise StreamTruncated("the stream ended without its end marker")

    @staticmethod
    def _events(response: httpx.Response) -> Iterator[tuple[str, str]]:
        decoder = SSEDecoder()
        for chunk in response.iter_bytes():
            yield from decoder.feed(chunk)
        yield from decoder.flush()

    def close(self) -> None:
        if self._response is not None:
            self._context.__exit__(None, None, None)
            self._response = None


def stream_text(
    client: httpx.Client,
    *,
    api: str,
    base_url: str,
    key: str,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int | None,
    timeout: httpx.Timeout | float,
    on_first: Any = None,
) -> str:
    """Call and read the whole answer; ``on_first()`` runs at the first text delta."""
    call = SSECall(
        client,
        api=api,
        base_url=base_url,
        key=key,
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        timeout=timeout,
    ).open()
    pieces: list[str] = []
    try:
        for text in call.texts():
            if not pieces and on_first is not None:
                on_first()
            pieces.append(text)
    finally:
        call.close()
    return "".join(pieces)
