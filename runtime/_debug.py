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
thread outlives ``close()`` for long).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._core._errors import ConfigError, RuntimeStoppedError, SwitchoverError
from ._core._redact import Redactor, scrub
from ._core._types import ModelHealth
from ._debug_page import PAGE, PAGE_HEADERS

if TYPE_CHECKING:
    from ._runtime import Runtime

log = logging.getLogger("switchover.debug")

#: Largest request body accepted; a reset body is a few dozen bytes.
MAX_BODY = 64 * 1024
#: Seconds a connection may stay silent before the server drops it.
SOCKET_TIMEOUT = 10.0
#: How often the serving thread checks whether it was asked to stop.
POLL_INTERVAL = 0.1


class HttpError(Exception):
    """An answer other than 200, raised anywhere in a route and sent as JSON."""

    def __init__(
        self, status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


Body = Mapping[str, Any]
Answer = dict[str, Any]
Handler = Callable[["Runtime", Body], Answer]
Raw = tuple[str, bytes, Mapping[str, str]]  # content type, body, extra headers
RawHandler = Callable[["Runtime"], Raw]


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


def _page(runtime: Runtime) -> Raw:
    return "text/html; charset=utf-8", PAGE, PAGE_HEADERS


def _metrics(runtime: Runtime) -> Raw:
    from ._metrics import exposition

    try:
        collector = runtime.metrics_collector()
    except ConfigError:
        raise HttpError(
            HTTPStatus.NOT_FOUND, "metrics are off: create the Runtime with metrics=True"
        ) from None
    return "text/plain; version=0.0.4; charset=utf-8", exposition(collector), {}


#: path -> (method, handler)
ROUTES: Mapping[str, tuple[str, Handler]] = {
    "/debug/actors": ("GET", _actors),
    "/debug/live": ("GET", _live),
    "/api/v1/models/health": ("GET", _health),
    "/api/v1/models/health/reset": ("POST", _reset_model),
    "/api/v1/profiles/reset": ("POST", _reset_profile),
}
#: GET routes that answer other than JSON.
RAW_ROUTES: Mapping[str, RawHandler] = {"/": _page, "/metrics": _metrics}


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


class _App:
    """What the handler threads share; immutable after construction."""

    def __init__(self, runtime: Runtime, token: str | None) -> None:
        self.runtime = runtime
        self.token = None if token is None else token.encode()
        self.redact = Redactor(runtime.config.secrets())

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

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, app: _App) -> None:
        self.address_family = family
        self.app = app
        super().__init__(address, _Handler)

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
    timeout = SOCKET_TIMEOUT
    server: _Server

    def _serve(self) -> None:
        app = self.server.app
        headers: Mapping[str, str] = {}
        try:
            path = urlsplit(self.path).path
            # The page holds no data, and a browser cannot send a token when it navigates:
            # the page asks for the token and sends it with every fetch it makes.
            if not (path == "/" and app.token is not None):
                app.check_access(self.headers)
            raw = RAW_ROUTES.get(path)
            if raw is not None:
                if self.command not in ("GET", "HEAD"):
                    raise HttpError(
                        HTTPStatus.METHOD_NOT_ALLOWED,
                        f"{path} takes GET, not {self.command}",
                        {"Allow": "GET"},
                    )
                self._send_raw(HTTPStatus.OK, *raw(app.runtime))
                return
            route = ROUTES.get(path)
            if route is None:
                known = ", ".join(
                    [
                        *(f"GET {p}" for p in RAW_ROUTES),
                        *(f"{m} {p}" for p, (m, _) in ROUTES.items()),
                    ]
                )
                raise HttpError(HTTPStatus.NOT_FOUND, f"no such path {path!r}; try {known}")
            method, handler = route
            if self.command != method:
                raise HttpError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"{path} takes {method}, not {self.command}",
                    {"Allow": method},
                )
            status, answer = HTTPStatus.OK, handler(app.runtime, self._body(method))
        except HttpError as error:
            status, answer, headers = error.status, self._error(error.message), error.headers
        except RuntimeStoppedError:
            status, answer = HTTPStatus.SERVICE_UNAVAILABLE, self._error("the runtime is stopped")
        except SwitchoverError as error:  # an actor did not answer an operator call in time
            status, answer = HTTPStatus.SERVICE_UNAVAILABLE, self._error(str(error))
        except Exception:
            log.exception("debug endpoint failed on %s %s", self.command, self._path())
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
        raw = self.rfile.read(length)
        if len(raw) < length:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
        try:
            body = json.loads(raw)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            raise HttpError(
                HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {error}"
            ) from None
        if not isinstance(body, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _error(self, message: str) -> Answer:
        return {"ok": False, "error": self.server.app.redact(message)}

    def _path(self) -> str:
        return self.server.app.redact(str(getattr(self, "path", "")))

    def _send(self, status: HTTPStatus, answer: Answer, headers: Mapping[str, str]) -> None:
        # The last gate: no configured key leaves in any answer, even inside a model name.
        body = json.dumps(scrub(answer, self.server.app.redact.known), allow_nan=False).encode()
        self._send_raw(status, "application/json", body, headers)

    def _send_raw(
        self, status: HTTPStatus, content_type: str, body: bytes, headers: Mapping[str, str]
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
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
