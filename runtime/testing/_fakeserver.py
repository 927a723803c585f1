"""A fake LLM provider on 127.0.0.1 that speaks both wire formats, with scripted faults.

The path picks the format: ``/v1/chat/completions`` or ``/chat/completions`` answer as
OpenAI, ``/v1/messages`` as Anthropic. Each call is answered by a step (see
:mod:`runtime._script`): scripts per (model, key), then a rule function that may change its
mind at any time (the chaos benchmark drives time-based fault schedules through it), then
the default. A per-model ``max_tokens`` ceiling answers the provider's real output-limit
error. Every call is recorded.

It is built for speed and exactness: keep-alive, ``TCP_NODELAY``, and the response headers
go out in the same write as the first body bytes, so no Nagle or delayed-ACK stall (40 ms
on Linux) hides in a measurement. One thread per connection serves any number of
concurrent streams.

Example:
    >>> with FakeServer() as server:
    ...     server.script("gpt-4o", Fail(429, {"error": {"code": "rate_limit_exceeded"}}))
    ...     provider = ProviderConfig(name="openai", api="openai",
    ...                               base_url=server.openai_url, profiles={"main": "sk-1"})
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import attrs

from .._core._clock import Clock, SystemClock
from .._core._types import Usage
from ._script import Cut, Fail, Hang, Refuse, Reply, Script, Step, StreamError

Api = Literal["openai", "anthropic"]
_ROUTES: Mapping[str, Api] = {
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
    "/v1/messages": "anthropic",
}
#: Largest request body the server reads.
MAX_REQUEST = 8 << 20


# --- hostile answers (over HTTP only) -------------------------------------------------------


@attrs.frozen
class Html:
    """An HTML error page, as a proxy or load balancer sends it."""

    status: int = 502
    body: str = (
        "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    )


@attrs.frozen
class TruncatedJson:
    """JSON cut short: an error body with ``status``, or (None) an SSE chunk after ``after``
    good text chunks."""

    status: int | None = None
    after: int = 0


@attrs.frozen
class WrongContentType:
    """HTTP 200 whose body is labelled ``content_type`` instead of an event stream."""

    content_type: str = "text/plain"
    body: str = "hello"


@attrs.frozen
class EmptyBody:
    """HTTP ``status`` with an empty event-stream body."""

    status: int = 200


@attrs.frozen
class JsonBody:
    """HTTP 200 with a whole (non-streaming) JSON completion of ``reply`` instead of SSE."""

    reply: Reply = attrs.field(factory=Reply)


@attrs.frozen
class InvalidUtf8:
    """An SSE chunk carrying bytes that are not UTF-8, after ``after`` good text chunks."""

    after: int = 0


@attrs.frozen
class HugeLine:
    """One SSE line of ``size`` bytes (10 MB by default), after ``after`` good chunks."""

    size: int = 10 * 1024 * 1024
    after: int = 0


@attrs.frozen
class Trickle:
    """After ``after`` good chunks, the next chunk arrives one byte per ``interval`` seconds."""

    interval: float = 1.0
    after: int = 0
    reply: Reply = attrs.field(factory=Reply)


@attrs.frozen
class ResetMidHeaders:
    """Half a status line and header block, then a TCP reset."""


Hostile = (
    Html
    | TruncatedJson
    | WrongContentType
    | EmptyBody
    | JsonBody
    | InvalidUtf8
    | HugeLine
    | Trickle
    | ResetMidHeaders
)
ServerStep = Step | Hostile


# --- records --------------------------------------------------------------------------------


@attrs.frozen
class ServerRequest:
    """A request as the server parsed it (what a rule sees). ``key`` is for tests only."""

    at: float
    api: Api
    path: str
    model: str
    key: str = attrs.field(repr=False)
    max_tokens: int | None
    stream: bool
    body: Mapping[str, Any] = attrs.field(repr=False, eq=False)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)
    query: str = ""


@attrs.frozen
class ServerCall:
    """One recorded call: the request and the step that answered it.

    ``status`` is the HTTP status sent, or None when no status line went out (hang, reset).
    """

    request: ServerRequest
    answer: ServerStep
    status: int | None

    @property
    def model(self) -> str:
        return self.request.model

    @property
    def key(self) -> str:
        return self.request.key


ServerRule = Callable[[ServerRequest], ServerStep | None]


class _Gone(Exception):
    """The client went away, or the server is closing: end this connection."""


# --- the server -----------------------------------------------------------------------------


class FakeServer:
    """A loopback fake of the OpenAI and Anthropic streaming APIs.

    Args:
        default: the step for calls no script or rule decides (a one-chunk ``Reply``).
        ceilings: per-model ``max_tokens`` ceiling; above it the server answers the
            provider's real output-limit error.
        clock: the time source for the ``at`` of recorded calls.
        tls: serve HTTPS with this server context (``url`` becomes ``https://``).

    Use it as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        *,
        default: ServerStep | None = None,
        ceilings: Mapping[str, int] | None = None,
        clock: Clock | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._script: Script[ServerStep, ServerRequest] = Script(default or Reply())
        self._ceilings = dict(ceilings or {})
        self._clock = clock or SystemClock()
        self._calls: list[ServerCall] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port: int = self._listener.getsockname()[1]
        self._connections: set[socket.socket] = set()
        self._accepted = 0
        self._threads: set[threading.Thread] = set()
        self._acceptor: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FakeServer({self.url}, {len(self._calls)} calls)"

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """The ``base_url`` for ``api="openai"`` (``.../v1``)."""
        return self.url + "/v1"

    @property
    def anthropic_url(self) -> str:
        """The ``base_url`` for ``api="anthropic"``."""
        return self.url

    def base_url(self, api: str) -> str:
        """The ``base_url`` for ``api``."""
        return self.openai_url if api == "openai" else self.anthropic_url

    # -- scripting ---------------------------------------------------------------------------

    @property
    def default(self) -> ServerStep:
        """The step for calls that no script or rule decides."""
        return self._script.default

    @default.setter
    def default(self, step: ServerStep) -> None:
        self._script.default = step

    def script(self, model: str | None, *steps: ServerStep, key: str | None = None) -> None:
        """Queue ``steps`` for calls to ``model`` (None: any) with ``key`` (None: any); the
        last step repeats."""
        self._script.script(model, *steps, key=key)

    def rule(self, fn: ServerRule | None) -> None:
        """Decide calls no script matches with ``fn(request)`` (None from it: the default).

        Thread-safe, and ``fn`` may be replaced while calls run.
        """
        self._script.rule(fn)

    def ceiling(self, model: str, max_tokens: int | None) -> None:
        """Set (or with None, remove) ``model``'s output ceiling."""
        with self._changed:
            if max_tokens is None:
                self._ceilings.pop(model, None)
            else:
                self._ceilings[model] = max_tokens

    def reset(self) -> None:
        """Forget every script, the rule and the recorded calls."""
        self._script.clear()
        with self._changed:
            self._calls.clear()

    # -- observing ---------------------------------------------------------------------------

    @property
    def calls(self) -> list[ServerCall]:
        """Every call so far, oldest first (a copy)."""
        with self._changed:
            return list(self._calls)

    def calls_to(self, model: str) -> list[ServerCall]:
        """The calls for ``model``."""
        return [c for c in self.calls if c.request.model == model]

    @property
    def open_connections(self) -> int:
        """Client connections currently open."""
        with self._changed:
            return len(self._connections)

    @property
    def accepted(self) -> int:
        """Client connections accepted since the start (keep-alive reuse keeps it low)."""
        with self._changed:
            return self._accepted

    def wait_for(self, predicate: Callable[[FakeServer], bool], timeout: float) -> bool:
        """Wait until ``predicate(server)`` holds (re-checked on every call and every
        connection opened or closed); False if ``timeout`` passes first."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeServer:
        """Start accepting connections. Returns self."""
        if self._acceptor is None:
            self._acceptor = threading.Thread(
                target=self._accept, name=f"fakeserver-{self.port}", daemon=True
            )
            self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop: every connection is closed and every thread joined. Idempotent."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._changed:
            connections = list(self._connections)
            threads = list(self._threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._acceptor is not None:
            self._acceptor.join()
        for thread in threads:
            thread.join()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._serve, args=(conn,), name=f"fakeserver-{self.port}-conn", daemon=True
            )
            with self._changed:
                if self._stop.is_set():
                    conn.close()
                    return
                self._connections.add(conn)
                self._accepted += 1
                self._threads.add(thread)
                self._changed.notify_all()
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                plain, conn = conn, self._tls.wrap_socket(conn, server_side=True)
                with self._changed:  # close() must shut the TLS socket: the plain one is gone
                    self._connections.discard(plain)
                    self._connections.add(conn)
            reader = conn.makefile("rb")
        except OSError:  # a failed handshake (ssl.SSLError is an OSError)
            self._forget(conn)
            return
        try:
            while not self._stop.is_set():
                request = self._read_request(reader)
                if request is None:
                    return
                if not self._answer(conn, *request):
                    return
        except (_Gone, OSError, ValueError):
            return
        finally:
            reader.close()
            self._forget(conn)

    def _forget(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.close()
        with self._changed:
            self._connections.discard(conn)
            self._threads.discard(threading.current_thread())
            self._changed.notify_all()

    def _read_request(self, reader: Any) -> tuple[str, dict[str, str], bytes] | None:
        line = reader.readline(65536)
        while line in (b"\r\n", b"\n"):
            line = reader.readline(65536)
        if not line:
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            raise _Gone
        headers: dict[str, str] = {}
        while True:
            header = reader.readline(65536)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_REQUEST:
            raise _Gone
        body = reader.read(length) if length else b""
        return parts[1], headers, body

    def _answer(
        self, conn: socket.socket, target: str, headers: dict[str, str], raw: bytes
    ) -> bool:
        """Answer one request; False when the connection must not be reused."""
        path, _, query = target.partition("?")
        api = _ROUTES.get(path)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        if api is None or not isinstance(body, dict):
            status, error = (404, "no such route") if api is None else (400, "body is not JSON")
            _send(conn, _response(status, _error_body(api or "openai", status, error)))
            return True
        key = (
            headers.get("x-api-key")
            or headers.get("api-key")  # Azure OpenAI
            or headers.get("authorization", "").removeprefix("Bearer ")
        )
        max_tokens = body.get("max_tokens")
        request = ServerRequest(
            at=self._clock.now(),
            api=api,
            path=path,
            model=str(body.get("model", "")),
            key=key,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            stream=bool(body.get("stream", False)),
            body=body,
            headers=headers,
            query=query,
        )
        step = self._ceiling_error(request) or self._script.next(request.model, key, request)
        self._record(ServerCall(request=request, answer=step, status=_status_of(step)))
        return _Answer(self, conn, request).play(step)

    def _ceiling_error(self, request: ServerRequest) -> Fail | None:
        with self._changed:
            ceiling = self._ceilings.get(request.model)
        if ceiling is None:
            return None
        asked = request.max_tokens
        if request.api == "anthropic" and asked is None:
            return Fail(
                400, _anthropic_error("invalid_request_error", "max_tokens: Field required")
            )
        if asked is None or asked <= ceiling:
            return None
        if request.api == "openai":
            return Fail(
                400,
                {
                    "error": {
                        "message": f"max_tokens is too large: {asked}. This model supports at "
                        f"most {ceiling} completion tokens, whereas you provided {asked}.",
                        "type": "invalid_request_error",
                        "param": "max_tokens",
                        "code": "invalid_value",
                    }
                },
            )
        return Fail(
            400,
            _anthropic_error(
                "invalid_request_error",
                f"max_tokens: {asked} > {ceiling}, which is the maximum allowed number of "
                f"output tokens for {request.model}",
            ),
        )

    def _record(self, call: ServerCall) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _pause(self, seconds: float) -> None:
        if seconds > 0 and self._stop.wait(seconds):
            raise _Gone


def _status_of(step: ServerStep) -> int | None:
    if isinstance(step, (Hang, Refuse, ResetMidHeaders)):
        return None
    if isinstance(step, (Fail, Html, EmptyBody)):
        return step.status
    if isinstance(step, TruncatedJson) and step.status is not None:
        return step.status
    return 200


# --- bytes on the wire ----------------------------------------------------------------------


def _send(conn: socket.socket, data: bytes) -> None:
    try:
        conn.sendall(data)
    except OSError:
        raise _Gone from None


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset (RST) instead of an orderly FIN."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.close()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _response(
    status: int,
    body: object,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
) -> bytes:
    if isinstance(body, bytes):
        data, kind = body, "application/octet-stream"
    elif isinstance(body, str):
        data, kind = body.encode(), "text/plain; charset=utf-8"
    elif body is None:
        data, kind = b"", "application/json"
    else:
        data, kind = _json(body).encode(), "application/json"
    merged = {"content-type": content_type or kind, **(headers or {})}
    merged["content-length"] = str(len(data))
    return _head(status, merged) + data


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


_LAST_CHUNK = b"0\r\n\r\n"
_SSE_HEAD = {
    "content-type": "text/event-stream; charset=utf-8",
    "transfer-encoding": "chunked",
    "cache-control": "no-cache",
}


def _error_body(api: str, status: int, message: str) -> dict[str, Any]:
    if api == "anthropic":
        return _anthropic_error(
            "not_found_error" if status == 404 else "invalid_request_error", message
        )
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


def _anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class _Answer:
    """Plays one step onto one connection, in the request's wire format."""

    def __init__(self, server: FakeServer, conn: socket.socket, request: ServerRequest) -> None:
        self.server = server
        self.conn = conn
        self.request = request
        self.api = request.api
        self.model = request.model

    def play(self, step: ServerStep) -> bool:
        """Send the answer; False when the connection is finished."""
        if isinstance(step, Fail):
            self.server._pause(step.delay)
            _send(self.conn, _response(step.status, step.body, step.headers))
            return True
        if isinstance(step, Reply):
            return self._reply(step)
        if isinstance(step, Hang):
            self._hang()
            return False
        if isinstance(step, (Refuse, ResetMidHeaders)):
            if isinstance(step, ResetMidHeaders):
                _send(self.conn, b"HTTP/1.1 200 OK\r\ncontent-type: text/event-str")
            _reset(self.conn)
            return False
        if isinstance(step, Html):
            _send(self.conn, _response(step.status, step.body, content_type="text/html"))
            return True
        if isinstance(step, WrongContentType):
            _send(self.conn, _response(200, step.body, content_type=step.content_type))
            return True
        if isinstance(step, EmptyBody):
            _send(self.conn, _response(step.status, b"", content_type="text/event-stream"))
            return True
        if isinstance(step, JsonBody):
            _send(self.conn, _response(200, self._completion(step.reply)))
            return True
        if isinstance(step, TruncatedJson) and step.status is not None:
            body = _json(_error_body(self.api, step.status, "truncated"))[:-7].encode()
            _send(self.conn, _response(step.status, body, content_type="application/json"))
            return True
        return self._broken_stream(step)

    # -- streams -----------------------------------------------------------------------------

    def _frame(self, event: str, data: object) -> bytes:
        text = data if isinstance(data, str) else _json(data)
        return self._raw_frame(event, text.encode())

    def _raw_frame(self, event: str, data: bytes) -> bytes:
        if self.api == "anthropic":
            return _chunk(b"event: %s\ndata: %s\n\n" % (event.encode(), data))
        return _chunk(b"data: %s\n\n" % data)

    def _openai_payload(
        self, delta: Mapping[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _openai_chunk(self, delta: Mapping[str, Any], finish: str | None = None) -> bytes:
        return self._frame("", self._openai_payload(delta, finish))

    def _usage(self, reply: Reply) -> Usage:
        return reply.usage or Usage(
            input_tokens=max(1, len(_json(self.request.body.get("messages", ""))) // 4),
            output_tokens=max(1, len(reply.pieces())),
        )

    def _preamble(self, reply: Reply) -> bytes:
        if self.api == "openai":
            return self._openai_chunk({"role": "assistant", "content": ""})
        return self._frame(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": self._usage(reply).input_tokens, "output_tokens": 1},
                },
            },
        ) + self._frame("ping", {"type": "ping"})

    def _text_payload(self, text: str, block: int) -> tuple[str, dict[str, Any]]:
        if self.api == "openai":
            return "", self._openai_payload({"content": text})
        return "content_block_delta", {
            "type": "content_block_delta",
            "index": block,
            "delta": {"type": "text_delta", "text": text},
        }

    def _text(self, text: str, block: int) -> bytes:
        return self._frame(*self._text_payload(text, block))

    def _block(self, index: int, block: Mapping[str, Any]) -> bytes:
        return self._frame(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )

    def _block_stop(self, index: int) -> bytes:
        return self._frame("content_block_stop", {"type": "content_block_stop", "index": index})

    def _content_frames(self, reply: Reply) -> Iterator[bytes]:
        """The content of ``reply``, one frame per step of the stream (its first frame may
        carry block openings)."""
        block = 0
        if reply.reasoning:
            if self.api == "openai":
                yield self._openai_chunk({"reasoning_content": reply.reasoning})
            else:
                yield (
                    self._block(block, {"type": "thinking", "thinking": ""})
                    + self._frame(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": block,
                            "delta": {"type": "thinking_delta", "thinking": reply.reasoning},
                        },
                    )
                    + self._block_stop(block)
                )
                block += 1
        for position, piece in enumerate(reply.pieces()):
            opening = (
                self._block(block, {"type": "text", "text": ""})
                if self.api == "anthropic" and position == 0
                else b""
            )
            yield opening + self._text(piece, block)
        if self.api == "anthropic" and reply.pieces():
            yield self._block_stop(block)
            block += 1
        for index, call in enumerate(reply.tool_calls):
            half = len(call.arguments) // 2
            head, tail = call.arguments[:half], call.arguments[half:]
            if self.api == "openai":
                yield self._openai_chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": head},
                            }
                        ]
                    }
                )
                yield self._openai_chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": tail}}]}
                )
            else:
                yield self._block(
                    block, {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
                )
                for part in (head, tail):
                    yield self._frame(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": block,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                    )
                yield self._block_stop(block)
                block += 1

    def _ending(self, reply: Reply) -> bytes:
        usage = self._usage(reply)
        if self.api == "openai":
            return (
                self._openai_chunk({}, reply.finish_reason)
                + self._frame(
                    "",
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": self.model,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": usage.input_tokens,
                            "completion_tokens": usage.output_tokens,
                            "total_tokens": (usage.input_tokens or 0) + (usage.output_tokens or 0),
                        },
                    },
                )
                + self._frame("", "[DONE]")
                + _LAST_CHUNK
            )
        stop = _ANTHROPIC_STOP.get(reply.finish_reason, reply.finish_reason)
        return (
            self._frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage.output_tokens},
                },
            )
            + self._frame("message_stop", {"type": "message_stop"})
            + _LAST_CHUNK
        )

    def _reply(self, reply: Reply) -> bool:
        if not self.request.stream:
            self.server._pause(reply.delay)
            _send(self.conn, _response(200, self._completion(reply)))
            return True
        head = _head(200, _SSE_HEAD) + self._preamble(reply)
        # Encoded before the first goes out, so that the server is never what limits the
        # chunk rate a client measures.
        frames = iter(list(self._content_frames(reply)))
        first = next(frames, b"")
        if reply.delay > 0 or not first:
            _send(self.conn, head)
            self.server._pause(reply.delay)
            head = b""
        if first:
            _send(self.conn, head + first)
        for frame in frames:
            self.server._pause(reply.chunk_delay)
            _send(self.conn, frame)
        _send(self.conn, self._ending(reply))
        return True

    def _completion(self, reply: Reply) -> dict[str, Any]:
        """``reply`` as a whole, non-streaming answer."""
        usage = self._usage(reply)
        if self.api == "openai":
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if reply.reasoning:
                message["reasoning_content"] = reply.reasoning
            if reply.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in reply.tool_calls
                ]
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                "usage": {
                    "prompt_tokens": usage.input_tokens,
                    "completion_tokens": usage.output_tokens,
                },
            }
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            content.append({"type": "thinking", "thinking": reply.reasoning})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        content += [
            {
                "type": "tool_use",
                "id": c.id,
                "name": c.name,
                "input": json.loads(c.arguments or "{}"),
            }
            for c in reply.tool_calls
        ]
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": _ANTHROPIC_STOP.get(reply.finish_reason, reply.finish_reason),
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        }

    def _hang(self) -> None:
        """Say nothing until the client goes away or the server closes."""
        self.conn.settimeout(0.05)
        while not self.server._stop.is_set():
            try:
                # The plain socket's recv, which may peek even under TLS: EOF is all we need.
                if not socket.socket.recv(self.conn, 1, socket.MSG_PEEK):
                    return
            except TimeoutError:
                continue
            except OSError:
                return
            self.server._pause(0.05)  # bytes from a client that gave up: nothing to answer

    def _broken_stream(self, step: ServerStep) -> bool:
        """The steps that start a 200 event stream and then break it."""
        after = getattr(step, "after", 0)
        head = _head(200, _SSE_HEAD) + self._preamble(
            step.reply if isinstance(step, Trickle) else Reply()
        )
        opening = self._block(0, {"type": "text", "text": ""}) if self.api == "anthropic" else b""
        text = step.text if isinstance(step, Cut) else "x"
        _send(self.conn, head + opening + b"".join(self._text(text, 0) for _ in range(after)))
        if isinstance(step, Cut):
            _reset(self.conn)
            return False
        if isinstance(step, StreamError):
            body = step.body if isinstance(step.body, str) else _json(step.body)
            _send(self.conn, self._frame("error", body) + _LAST_CHUNK)
            return True
        if isinstance(step, (TruncatedJson, InvalidUtf8)):
            event, payload = self._text_payload("\u00e9", 0)
            data = _json(payload).encode()
            if isinstance(step, TruncatedJson):
                data = data[: len(data) // 2]
            else:
                data = data.replace("\u00e9".encode(), b"\xff\xfe")
            _send(self.conn, self._raw_frame(event, data) + _LAST_CHUNK)
            return True
        if isinstance(step, HugeLine):
            _send(self.conn, b"%x\r\ndata: " % (step.size + 8))
            piece = b"x" * 65536
            for _ in range(step.size // len(piece)):
                _send(self.conn, piece)
            _send(self.conn, b"x" * (step.size % len(piece)) + b"\n\n\r\n" + _LAST_CHUNK)
            return True
        assert isinstance(step, Trickle)
        for byte in self._text("slow", 0):
            self.server._pause(step.interval)
            _send(self.conn, bytes([byte]))
        _send(self.conn, self._ending(step.reply))
        return True


_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


@contextlib.contextmanager
def connect_blackhole() -> Iterator[str]:
    """A ``http://127.0.0.1:<port>`` where connecting times out (a full accept queue).

    The listening socket never accepts, and a few half-open connections fill its backlog,
    so the kernel drops every further SYN: the client's connect hangs until its timeout.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def closed_port_url() -> str:
    """A ``http://127.0.0.1:<port>`` where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
