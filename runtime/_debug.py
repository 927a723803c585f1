"""The debug endpoint: the debug mailbox over HTTP, on the standard library's server.

Routes (every answer is JSON; errors are ``{"ok": false, "error": "..."}``)::

    GET  /debug/actors                 the RuntimeSnapshot (Runtime.inspect().to_dict())
    GET  /api/v1/models/health         {"models": [{model, status, reason, cooldown_seconds,
                                                    last_error, consecutive_failures}]}
    POST /api/v1/models/health/reset   {"model": "provider/model" or alias}  -> 200 or 404
    POST /api/v1/profiles/reset        {"provider": ..., "profile": ...}    -> 200 or 404
    GET  /debug/live                   what the live page shows: actors (as published, no
                                       message sent), models, recent state changes
    GET  /                             the live page (HTML; see _debug_page.py)
    GET  /metrics                      Prometheus text format (Runtime(metrics=True))

Four routes do not need a framework: a ``ThreadingHTTPServer`` in one background thread,
a handler per connection, HTTP/1.0 (one request per connection, so no idle keep-alive
thread outlives ``close()`` for long). A route is one entry of :data:`ROUTES`; its handler
returns a JSON object, or a :class:`Reply` for any other content type.

The endpoint must never starve the runtime it shows: at most :data:`MAX_CONNECTIONS`
connections are served at once (others get an immediate 503), each must deliver its whole
request within :data:`REQUEST_TIMEOUT` (a slow client is cut off, token or not: the token
is in a header, so it cannot be checked before the headers), and cached routes are built
at most once per interval, an interval never shorter than :data:`CACHE_FACTOR` times the
time the last build took, so that however big the runtime, building answers takes at
most about 1/CACHE_FACTOR of one core; answers are paced to :data:`MAX_RATE` a second in
all, so that sending them (a cached answer is sent as the bytes it was built into) is
bounded too.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Mapping
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from ._core._clock import SystemClock
from ._core._errors import ConfigError, RuntimeStoppedError, SwitchoverError
from ._core._redact import Redactor, scrub
from ._core._types import ModelHealth
from ._debug_page import PAGE, PAGE_HEADERS

if TYPE_CHECKING:
    from ._runtime import Runtime

log = logging.getLogger("switchover.debug")

#: Largest request body accepted; a reset body is a few dozen bytes.
MAX_BODY = 64 * 1024
#: Seconds a client has from connecting to delivering its whole request (headers, body).
REQUEST_TIMEOUT = 5.0
#: Connections served at once; each holds a thread and a file descriptor.
MAX_CONNECTIONS = 8
#: How long a cached route's answer is reused, at least...
CACHE_TTL = 0.25
#: ...and at least this many times the time it took to build.
CACHE_FACTOR = 20.0
#: Most answers per second, all clients together: a client looping on the endpoint waits
#: for its turn (holding no CPU) instead of taking the process's.
MAX_RATE = 20.0
#: Shortest token accepted: a guessable one is no protection on a reachable port.
MIN_TOKEN = 16
#: How often the serving thread checks whether it was asked to stop (and cuts off
#: clients past their REQUEST_TIMEOUT).
POLL_INTERVAL = 0.1
#: What a connection over MAX_CONNECTIONS gets before it is closed.
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nRetry-After: 1\r\nContent-Length: 59\r\n\r\n"
    b'{"ok": false, "error": "too many debug connections; retry"}'
)


class HttpError(Exception):
    """An answer other than 200, raised anywhere in a route and sent as JSON."""

    def __init__(
        self, status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@attrs.frozen
class Reply:
    """A route's answer that is not JSON (an HTML page, Prometheus text)."""

    body: bytes
    content_type: str
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Route:
    """One path: its method, its handler, and whether its answer may be cached (GETs
    whose answers cost: a reset always runs, and drops every cached answer)."""

    method: str
    handler: Handler
    cached: bool = False


Body = Mapping[str, Any]
Answer = dict[str, Any]
Handler = Callable[["Runtime", Body], "Answer | Reply"]


def health_document(health: Mapping[str, ModelHealth]) -> Answer:
    """``rt.health()`` in the shape of ``GET /api/v1/models/health``."""
    return {
        "models": [
            {
                "model": row.model,
                "status": str(row.state),
                "reason": row.reason,
                "cooldown_seconds": None
                if row.cooldown_remaining is None
                else round(row.cooldown_remaining, 3),
                "last_error": row.last_error,
                "consecutive_failures": row.consecutive_failures,
            }
            for row in health.values()
        ]
    }


def _text_field(body: Body, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise HttpError(HTTPStatus.BAD_REQUEST, f'the body needs "{name}": a non-empty string')
    return value


def _actors(runtime: Runtime, body: Body) -> Answer:
    return runtime.inspect().to_dict()


def _health(runtime: Runtime, body: Body) -> Answer:
    return health_document(runtime.health())


def _reset_model(runtime: Runtime, body: Body) -> Answer:
    model = _text_field(body, "model")
    try:
        runtime.reset(model)
    except KeyError as error:
        raise HttpError(HTTPStatus.NOT_FOUND, str(error.args[0])) from None
    return {"ok": True, "reset": model}


def _reset_profile(runtime: Runtime, body: Body) -> Answer:
    provider = _text_field(body, "provider")
    profile = _text_field(body, "profile")
    try:
        runtime.reset_profile(provider, profile)
    except KeyError as error:
        raise HttpError(HTTPStatus.NOT_FOUND, str(error.args[0])) from None
    return {"ok": True, "reset": f"{provider}/{profile}"}


def _live(runtime: Runtime, body: Body) -> Answer:
    # A page polls this every second: published state only, never a message to an actor.
    return {
        "actors": runtime.inspect(ask=False).to_dict(),
        **health_document(runtime.health()),
        "transitions": runtime.transitions(),
    }


def _page(runtime: Runtime, body: Body) -> Reply:
    return Reply(PAGE, "text/html; charset=utf-8", PAGE_HEADERS)


def _metrics(runtime: Runtime, body: Body) -> Reply:
    from ._metrics import exposition

    try:
        collector = runtime.metrics_collector()
    except ConfigError:
        raise HttpError(
            HTTPStatus.NOT_FOUND, "metrics are off: create the Runtime with metrics=True"
        ) from None
    return Reply(exposition(collector), "text/plain; version=0.0.4; charset=utf-8")


ROUTES: Mapping[str, Route] = {
    "/": Route("GET", _page),
    "/metrics": Route("GET", _metrics, cached=True),
    "/debug/live": Route("GET", _live, cached=True),
    "/debug/actors": Route("GET", _actors, cached=True),
    "/api/v1/models/health": Route("GET", _health, cached=True),
    "/api/v1/models/health/reset": Route("POST", _reset_model),
    "/api/v1/profiles/reset": Route("POST", _reset_profile),
}


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address ("" means all: no)."""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ConfigError("host", f"cannot resolve {host!r}: {error.strerror}") from None
    return all(_loopback_literal(str(info[4][0])) for info in infos)


def _loopback_literal(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name in a Host header: ``[::1]:80`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


#: Never set: something to wait on.
_NEVER = threading.Event()


class _Cache:
    """Answers of cached routes, each built by one thread at a time (the others wait for
    it and take its answer). Real time: this bounds CPU, whatever the runtime's clock."""

    def __init__(self) -> None:
        self._clock = SystemClock()
        self._answers: dict[str, tuple[float, Reply]] = {}
        self._building = threading.Lock()

    def get(self, path: str, build: Callable[[], Reply]) -> Reply:
        with self._building:
            now = self._clock.now()
            cached = self._answers.get(path)
            if cached is not None and now < cached[0]:
                return cached[1]
            answer = build()
            done = self._clock.now()
            self._answers[path] = (done + max(CACHE_TTL, CACHE_FACTOR * (done - now)), answer)
            return answer

    def clear(self) -> None:
        with self._building:
            self._answers.clear()


class _App:
    """What the handler threads share."""

    def __init__(self, runtime: Runtime, token: str | None) -> None:
        self.runtime = runtime
        self.token = None if token is None else token.encode()
        self.redact = Redactor(runtime.config.secrets())
        self.cache = _Cache()
        self._clock = SystemClock()
        self._pacing = threading.Lock()
        self._next_turn = 0.0

    def answer(self, path: str, route: Route, body: Body) -> Answer | Reply:
        self._wait_turn()
        if not route.cached:
            answer = route.handler(self.runtime, body)
            self.cache.clear()  # a reset changes what the cached routes show
            return answer
        return self.cache.get(path, lambda: self.encode(route.handler(self.runtime, body)))

    def _wait_turn(self) -> None:
        with self._pacing:
            now = self._clock.now()
            turn = max(now, self._next_turn)
            self._next_turn = turn + 1.0 / MAX_RATE
        if turn > now:
            self._clock.wait(_NEVER, turn - now)

    def encode(self, answer: Answer | Reply) -> Reply:
        """The bytes sent for ``answer``; the last gate: no configured key leaves in any
        JSON answer, even inside a model name."""
        if isinstance(answer, Reply):
            return answer
        clean = scrub(answer, self.redact.known)
        return Reply(json.dumps(clean, allow_nan=False).encode(), "application/json")

    def check_access(self, headers: Message) -> None:
        if self.token is None:
            # Without a token the endpoint is loopback-only; a Host header naming anything
            # else means a browser was steered here by DNS rebinding, so refuse it.
            host = headers.get("Host")
            if host is not None and not (
                _host_name(host).lower() == "localhost" or _loopback_literal(_host_name(host))
            ):
                raise HttpError(
                    HTTPStatus.FORBIDDEN,
                    "the Host header must name a loopback address (localhost, 127.0.0.1, ::1)",
                )
            return
        scheme, _, presented = headers.get("Authorization", "").partition(" ")
        # compare_digest takes time independent of where the tokens differ.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self.token
        ):
            raise HttpError(
                HTTPStatus.UNAUTHORIZED,
                "this endpoint needs 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": 'Bearer realm="switchover-debug"'},
            )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # Connections waiting to be accepted: beyond it clients wait for SYN retries instead
    # of an immediate 503.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, app: _App) -> None:
        self.address_family = family
        self.app = app
        self.clock = SystemClock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        #: connection -> when it must have delivered its request; plain dict operations.
        self.reading: dict[socket.socket, float] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(_BUSY)
                request.shutdown(socket.SHUT_WR)
                # Closing with unread bytes would reset the connection, and the reset
                # can overtake the 503: read what the client sent first.
                while request.recv(65536):
                    pass
            request.close()
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.reading.pop(request, None)
            self._slots.release()

    def service_actions(self) -> None:
        """Cut off the clients that did not deliver their request in time."""
        now = self.clock.now()
        for connection, deadline in list(self.reading.items()):
            if now >= deadline and self.reading.pop(connection, None) is not None:
                # Reading ends (EOF) and the handler answers what it has: a 400 for a
                # short body, nothing for unfinished headers (see parse_request).
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RD)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The standard library prints a traceback to stderr; a client that hangs up
        # mid-answer is no error of ours.
        log.debug("debug connection failed: %s", self.app.redact(str(sys.exc_info()[1])))

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's full name; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    server_version = "switchover-debug"
    sys_version = ""
    # Answer even an unparsable request line with a status line and headers (the default,
    # HTTP/0.9, would send the JSON error bare).
    default_request_version = "HTTP/1.0"
    timeout = REQUEST_TIMEOUT
    server: _Server

    def setup(self) -> None:
        self.server.reading[self.request] = self.server.clock.now() + REQUEST_TIMEOUT
        super().setup()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        if self.request not in self.server.reading:  # cut off before their end
            self.close_connection = True
            return False
        return parsed

    def _serve(self) -> None:
        app = self.server.app
        headers: Mapping[str, str] = {}
        try:
            path = urlsplit(self.path).path
            # The page holds no data, and a browser cannot send a token when it navigates:
            # the page asks for the token and sends it with every fetch it makes.
            if not (path == "/" and app.token is not None):
                app.check_access(self.headers)
            route = ROUTES.get(path)
            if route is None:
                known = ", ".join(f"{r.method} {p}" for p, r in ROUTES.items())
                raise HttpError(HTTPStatus.NOT_FOUND, f"no such path {path!r}; try {known}")
            if self.command != route.method:
                raise HttpError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"{path} takes {route.method}, not {self.command}",
                    {"Allow": route.method},
                )
            body = self._body(route.method)
            self.server.reading.pop(self.request, None)  # the whole request is in
            status, answer = HTTPStatus.OK, app.answer(path, route, body)
        except HttpError as error:
            status, answer, headers = error.status, self._error(error.message), error.headers
        except RuntimeStoppedError:
            status, answer = HTTPStatus.SERVICE_UNAVAILABLE, self._error("the runtime is stopped")
        except SwitchoverError as error:  # an actor did not answer an operator call in time
            status, answer = HTTPStatus.SERVICE_UNAVAILABLE, self._error(str(error))
        except Exception as error:
            # Logged without a traceback (which could quote anything): the type says
            # where to look, and this is a bug of ours to report, not a client's.
            log.error(
                "debug endpoint failed on %s %s: %s",
                self.command,
                self._path(),
                type(error).__name__,
            )
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            answer = self._error("internal error; the server log has the details")
        self._send(status, answer, headers)

    # Every common method goes through the router, so a wrong one on a known path is a 405;
    # anything more exotic gets the standard library's 501 (as JSON, see send_error).
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = _serve

    def _body(self, method: str) -> Body:
        if method != "POST":
            return {}
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            # Browsers send cross-site form posts without asking first; a JSON content type
            # makes them ask (CORS preflight), which this server never grants.
            raise HttpError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "send the body as 'Content-Type: application/json'",
            )
        length_header = self.headers.get("Content-Length")
        if length_header is None or "Transfer-Encoding" in self.headers:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length (no chunked bodies)")
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length must be a non-negative integer")
        if length > MAX_BODY:
            raise HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY} bytes"
            )
        try:
            raw = self.rfile.read(length)
        except OSError:  # the client stalled past REQUEST_TIMEOUT and was cut off
            raw = b""
        if len(raw) < length:
            raise HttpError(
                HTTPStatus.BAD_REQUEST,
                f"the body is shorter than its Content-Length (or took over {REQUEST_TIMEOUT}s)",
            )
        try:
            body = json.loads(raw)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            raise HttpError(
                HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {error}"
            ) from None
        except RecursionError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body is nested too deeply") from None
        if not isinstance(body, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _error(self, message: str) -> Answer:
        return {"ok": False, "error": self.server.app.redact(message)}

    def _path(self) -> str:
        return self.server.app.redact(str(getattr(self, "path", "")))

    def _send(self, status: HTTPStatus, answer: Answer | Reply, headers: Mapping[str, str]) -> None:
        reply = self.server.app.encode(answer)
        body = reply.body
        self.send_response(status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in {**reply.headers, **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The standard parser calls this for malformed requests and unknown methods;
        # answer in JSON like every other error, never with its HTML page.
        self.close_connection = True
        status = HTTPStatus(code)
        self._send(status, self._error(message or status.phrase), {"Connection": "close"})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), self.server.app.redact(format % args, limit=None))


class DebugServer:
    """A running debug endpoint; ``close()`` stops it (the runtime closes it when it stops).

    Example:
        >>> server = rt.serve_debug()          # loopback, a free port, no token
        >>> httpx.get(server.url + "/debug/actors").json()
        >>> server.close()
    """

    def __init__(self, runtime: Runtime, *, host: str, port: int, token: str | None) -> None:
        if token is not None and (
            not isinstance(token, str) or not token or any(c.isspace() for c in token)
        ):
            raise ConfigError("token", "must be a non-empty string without spaces")
        if token is not None and len(token) < MIN_TOKEN:
            raise ConfigError("token", f"must be at least {MIN_TOKEN} characters long")
        if token is None and not is_loopback(host):
            raise ConfigError(
                "token", f"binding {host or 'every address'!r} (not loopback) requires a token"
            )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = _Server((host, port), family, _App(runtime, token))
        bound = self._server.server_name
        shown = f"[{bound}]" if ":" in bound else bound
        self.url = f"http://{shown}:{self._server.server_port}"
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="switchover-debug",
            daemon=True,
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"DebugServer({self.url}, {'closed' if self._closed else 'serving'})"

    def close(self) -> None:
        """Stop accepting, close the socket and join the serving thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> DebugServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
