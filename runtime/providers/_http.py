"""The built-in provider adapters: OpenAI and Anthropic streaming over httpx.

One :class:`HttpProvider` per configured provider owns one ``httpx.Client`` and one
watchdog thread. ``open(call)`` returns a generator that sends the request inside
``with client.stream(...)``, so the response is closed on every path, and yields events as
SSE chunks arrive: the chain actor reads the first one (the commit point), the caller's
thread reads the rest straight from the socket.
Timeouts are enforced by the :class:`~._watchdog.Watchdog` (see there).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator, Iterator, Mapping

import httpx

from .._core._classify import Failure, classify, transport_failure
from .._core._clock import Clock
from .._core._config import ProviderConfig
from .._core._redact import Redactor
from .._core._types import Event
from .._core._version import __version__
from .._core._vocab import ErrorKind
from ._anthropic import AnthropicWire
from ._openai import OpenAIWire
from ._seam import EventStream, ProviderCall, ProviderFailure
from ._sse import MAX_EVENT_BYTES, SSEDecoder, SSEError
from ._watchdog import CANCELLED, Watch, Watchdog
from ._wire import Wire, encode, error_failure, json_object, protocol_failure

log = logging.getLogger("switchover.http")

USER_AGENT = f"switchover/{__version__}"
#: Most bytes of an error response read for classification; the rest is dropped.
MAX_ERROR_BODY = 64 * 1024
#: Most bytes of a whole (non-streaming) JSON answer.
MAX_JSON_BODY = MAX_EVENT_BYTES
#: How long the rest of a body may take after its end event; reading it lets the
#: connection go back to the pool instead of being closed.
DRAIN_GRACE = 1.0

#: Every httpx exception class: (kind, is it a timeout, what it means). One table, read by
#: :func:`transport_failure_of`; a test checks that it names every class httpx exports.
HTTPX_ERRORS: Mapping[type[Exception], tuple[ErrorKind, bool, str]] = {
    httpx.ConnectTimeout: (ErrorKind.TRANSIENT, True, "connect timeout"),
    httpx.ReadTimeout: (ErrorKind.TRANSIENT, True, "no data from the provider in time"),
    httpx.WriteTimeout: (ErrorKind.TRANSIENT, True, "the provider stopped reading the request"),
    httpx.PoolTimeout: (ErrorKind.TRANSIENT, True, "no free connection in time"),
    httpx.TimeoutException: (ErrorKind.TRANSIENT, True, "timeout"),
    httpx.ConnectError: (ErrorKind.TRANSIENT, False, "connection failed (refused or unreachable)"),
    httpx.ReadError: (ErrorKind.TRANSIENT, False, "connection reset while reading"),
    httpx.WriteError: (ErrorKind.TRANSIENT, False, "connection reset while sending"),
    httpx.CloseError: (ErrorKind.TRANSIENT, False, "connection failed while closing"),
    httpx.NetworkError: (ErrorKind.TRANSIENT, False, "network error"),
    httpx.RemoteProtocolError: (
        ErrorKind.TRANSIENT,
        False,
        "the provider closed the connection or broke HTTP",
    ),
    httpx.LocalProtocolError: (ErrorKind.UNKNOWN, False, "the request is not valid HTTP"),
    httpx.ProtocolError: (ErrorKind.TRANSIENT, False, "HTTP protocol error"),
    httpx.ProxyError: (ErrorKind.TRANSIENT, False, "the proxy failed"),
    httpx.UnsupportedProtocol: (ErrorKind.UNKNOWN, False, "unsupported URL scheme"),
    httpx.TransportError: (ErrorKind.TRANSIENT, False, "transport error"),
    httpx.DecodingError: (ErrorKind.TRANSIENT, False, "the body's content encoding is corrupt"),
    httpx.TooManyRedirects: (ErrorKind.UNKNOWN, False, "too many redirects"),
    httpx.RequestError: (ErrorKind.UNKNOWN, False, "request error"),
    httpx.HTTPStatusError: (ErrorKind.UNKNOWN, False, "HTTP status error"),
    httpx.HTTPError: (ErrorKind.UNKNOWN, False, "HTTP error"),
    httpx.InvalidURL: (ErrorKind.UNKNOWN, False, "invalid URL"),
    httpx.CookieConflict: (ErrorKind.UNKNOWN, False, "cookie conflict"),
    httpx.StreamClosed: (ErrorKind.TRANSIENT, False, "the response was closed while reading"),
    httpx.StreamConsumed: (ErrorKind.UNKNOWN, False, "the response was already read"),
    httpx.ResponseNotRead: (ErrorKind.UNKNOWN, False, "the response was not read"),
    httpx.RequestNotRead: (ErrorKind.UNKNOWN, False, "the request was not read"),
    httpx.StreamError: (ErrorKind.UNKNOWN, False, "stream error"),
}
_CAUGHT = (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError)


def transport_failure_of(error: Exception, redact: Redactor) -> Failure:
    """The failure for an httpx exception: the entry of its most specific class."""
    kind, timeout, what = next(
        HTTPX_ERRORS[cls] for cls in type(error).__mro__ if cls in HTTPX_ERRORS
    )
    detail = str(error) or type(error).__name__
    return Failure(
        kind=kind,
        message=redact(f"{what} ({type(error).__name__}: {detail})"),
        timeout=timeout,
    )


class _HttpStream:
    """The live stream handed to the chain actor, then to the caller."""

    __slots__ = ("_events", "_watch")

    def __init__(self, events: Generator[Event, None, None], watch: Watch) -> None:
        self._events = events
        self._watch = watch

    def __repr__(self) -> str:
        return "HttpStream()"

    def __iter__(self) -> _HttpStream:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        """Close the response at once (from the reading thread or any other)."""
        try:
            self._events.close()
        except ValueError:
            # "generator already executing": another thread is blocked inside next().
            # Shutting its socket makes that read fail now; the generator then closes itself.
            self._watch.watchdog.abort(self._watch)


class HttpProvider:
    """A provider adapter over HTTP for one configured provider.

    Args:
        config: the provider's configuration (base URL, timeouts).
        wire: the API flavour (:class:`OpenAIWire` or :class:`AnthropicWire`).
        workers: keep-alive connections to hold (the runtime's ``chain_workers``).
        clock: the time source for timeouts.
        redact: removes keys from every message.
    """

    def __init__(
        self,
        config: ProviderConfig,
        wire: Wire,
        *,
        workers: int,
        clock: Clock,
        redact: Redactor,
    ) -> None:
        self.name = config.name
        self._wire = wire
        self._url = wire.url(config.base_url)
        self._config = config
        self._clock = clock
        self._redact = redact
        # Keep-alive for one connection per chain worker; no cap on open connections, since
        # committed streams are read by callers while the workers already serve others.
        self._client = httpx.Client(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=workers),
            headers={"user-agent": USER_AGENT},
            follow_redirects=False,
        )
        self._watchdog = Watchdog(clock, f"switchover-watchdog-{config.name}")

    def __repr__(self) -> str:
        return f"HttpProvider({self.name!r}, {self._wire!r}, url={self._url!r})"

    def open(self, call: ProviderCall) -> EventStream:
        """Start one attempt; the request is sent when the first event is read."""
        watch = Watch(self._watchdog, call)
        return _HttpStream(self._events(call, watch), watch)

    def close(self) -> None:
        """Fail in-flight calls at once and close every connection."""
        self._watchdog.close()
        self._client.close()

    @contextlib.contextmanager
    def _guard(self, watch: Watch) -> Iterator[None]:
        """The one place where httpx (and decoding) exceptions become ProviderFailure.

        A fired watch wins: the read failed because the watchdog cut it.
        """
        try:
            yield
        except _CAUGHT as error:
            failure = watch.failure
            if failure is None and isinstance(error, httpx.ReadTimeout):
                # httpx's read timeout is the watch's budget as it stood when the request
                # was sent; say which budget it was, as the watchdog would have.
                failure = watch.expired(self._clock.now())
            # "from None": the httpx error holds the request, whose headers hold the key.
            raise ProviderFailure(failure or transport_failure_of(error, self._redact)) from None
        except SSEError as error:
            raise ProviderFailure(
                watch.failure or protocol_failure(str(error), self._redact).failure
            ) from None
        except ProviderFailure:
            if watch.failure is None:
                raise
            raise ProviderFailure(watch.failure) from None

    def _events(self, call: ProviderCall, watch: Watch) -> Generator[Event, None, None]:
        """Send the request and yield its events; every way out closes the response.

        One generator frame from the socket to the caller: each level of delegation would
        cost every chunk of every stream.
        """
        try:
            with self._guard(watch), self._send(call, watch) as (response, chunks):
                if self._is_whole(response, chunks, call, watch):
                    yield from self._whole(chunks, watch)
                    return
                decoder = SSEDecoder()
                parser = self._wire.parser(self._redact)
                feed, parse, now, idle = decoder.feed, parser.event, self._clock.now, watch.idle
                waiting = True  # for the first content
                for chunk in chunks:
                    pairs = feed(chunk)
                    if not pairs:
                        continue  # no whole event yet: a trickle is not progress
                    for name, data in pairs:
                        events = parse(name, data)
                        if waiting and parser.content:
                            waiting = False
                            watch.content_started()
                        if events:
                            watch.expires = watch.deadline  # the caller's time is not idle
                            if len(events) == 1:
                                yield events[0]
                            else:
                                yield from events
                    if parser.done:
                        self._drain(chunks, watch)
                        break
                    expires = now() + idle
                    limit = watch.limit
                    watch.expires = expires = expires if expires < limit else limit  # no min()
                    if expires < watch.queued:  # resumed after a long hold: rare
                        self._watchdog.requeue(watch)
                else:
                    for name, data in decoder.flush():
                        yield from parse(name, data)
                yield from parser.end()
        finally:
            self._watchdog.unwatch(watch)

    @contextlib.contextmanager
    def _send(
        self, call: ProviderCall, watch: Watch
    ) -> Iterator[tuple[httpx.Response, Iterator[bytes]]]:
        """Send the request; give the response (headers in) and its body's chunks."""
        if call.cancel.is_set():
            raise ProviderFailure(CANCELLED)
        if call.remaining() <= 0:
            raise ProviderFailure(
                transport_failure("no time left before the request deadline", timeout=True)
            )
        content = encode(self._wire.body(call), self._redact)
        first = call.first_token_timeout
        wait = call.cut(call.idle_timeout if first is None else min(first, call.idle_timeout))
        timeout = httpx.Timeout(
            connect=call.cut(call.connect_timeout), read=wait, write=wait, pool=call.remaining()
        )
        self._watchdog.watch(watch)
        with self._client.stream(
            "POST",
            self._url,
            content=content,
            headers=self._headers(call.api_key),
            params=self._config.query or None,
            timeout=timeout,
            extensions={"trace": watch.trace},
        ) as response:
            try:
                watch.attach(response)
                # iter_raw skips httpx's decoder layers; a compressed body needs them.
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                yield response, (response.iter_bytes() if encoded else response.iter_raw())
            finally:
                # Before the connection goes back to the pool: never shut it after this.
                self._watchdog.unwatch(watch)

    def _headers(self, key: str) -> dict[str, str]:
        headers = self._wire.headers(key)
        config = self._config
        if config.key_header is not None:
            del headers[self._wire.auth_header]
            headers[config.key_header.lower()] = key.strip()
        if config.headers:
            headers.update({name.lower(): value for name, value in config.headers.items()})
        return headers

    def _is_whole(
        self, response: httpx.Response, chunks: Iterator[bytes], call: ProviderCall, watch: Watch
    ) -> bool:
        """True for a whole JSON answer, False for an event stream; raises for the rest."""
        if not response.is_success:
            body, _ = self._read(chunks, MAX_ERROR_BODY, watch)
            raise ProviderFailure(
                classify(
                    status=response.status_code,
                    body=body,
                    headers=response.headers,
                    wall=call.clock.wall,
                    redact=self._redact,
                )
            )
        media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            return True
        if media in ("text/event-stream", ""):
            return False
        raise protocol_failure(
            f"HTTP {response.status_code} with content type {media!r}, not an event stream",
            self._redact,
        )

    def _read(self, chunks: Iterator[bytes], limit: int, watch: Watch) -> tuple[bytes, bool]:
        """Up to ``limit`` bytes of the body, and whether there was more."""
        parts: list[bytes] = []
        size = 0
        for chunk in chunks:
            watch.move(min(self._clock.now() + watch.idle, watch.limit))
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(parts)[:limit], True
        return b"".join(parts), False

    def _whole(self, chunks: Iterator[bytes], watch: Watch) -> list[Event]:
        """A whole JSON answer where a stream was asked for: accepted, one event each."""
        data, more = self._read(chunks, MAX_JSON_BODY, watch)
        if more:
            raise protocol_failure(f"a JSON answer larger than {MAX_JSON_BODY} bytes", self._redact)
        if not data.strip():
            raise protocol_failure("HTTP 200 with an empty body", self._redact)
        payload = json_object(data, "the JSON answer", self._redact)
        if payload.get("error"):
            raise error_failure(payload, self._redact)
        events = self._wire.completion(payload, self._redact)
        watch.content_started()
        watch.expires = watch.deadline
        return events

    def _drain(self, chunks: Iterator[bytes], watch: Watch) -> None:
        """Read what is left after the end event, briefly, so the connection is reusable."""
        watch.move(min(self._clock.now() + DRAIN_GRACE, watch.deadline))
        with contextlib.suppress(ProviderFailure), self._guard(watch):
            for _ in chunks:
                pass


WIRES: Mapping[str, Callable[[], Wire]] = {"openai": OpenAIWire, "anthropic": AnthropicWire}


def http_provider(
    config: ProviderConfig, *, workers: int, clock: Clock, redact: Redactor
) -> HttpProvider:
    """The built-in adapter for ``config.api`` (``"openai"`` or ``"anthropic"``)."""
    return HttpProvider(config, WIRES[config.api](), workers=workers, clock=clock, redact=redact)
