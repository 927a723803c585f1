"""The debug endpoint over HTTP, and the operator calls behind it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from switchover import Config, ConfigError, DebugServer, Request, Runtime, RuntimeStoppedError
from switchover._debug import MAX_BODY
from switchover.testing import Fail, ScriptedProvider

HI = ({"role": "user", "content": "hi"},)
RATE_LIMITED = Fail(429, {"error": {"code": "rate_limit_exceeded", "message": "slow down"}})
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def server(runtime: Runtime) -> Iterator[DebugServer]:
    with runtime.serve_debug() as server:
        yield server


@pytest.fixture
def client(server: DebugServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def rate_limit_gpt4o(
    runtime: Runtime, provider: ScriptedProvider, settle: Callable[..., None]
) -> Callable[[], None]:
    """Both openai keys and openai/gpt-4o cool down; the claude fallback serves."""

    def run() -> None:
        provider.script("gpt-4o", RATE_LIMITED)
        runtime.complete(Request(model="openai/gpt-4o", messages=HI))
        settle("health", "profile:openai/main", "profile:openai/backup")

    return run


def raw(server: DebugServer, data: bytes) -> tuple[int, dict[str, object], bytes]:
    """Send bytes as they are; return the status, the JSON body and the whole answer."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), answer


# -- in process ------------------------------------------------------------------------------


def test_reset_model_makes_it_healthy_and_rejects_what_health_does_not_list(
    runtime: Runtime, rate_limit_gpt4o: Callable[[], None]
) -> None:
    rate_limit_gpt4o()
    assert runtime.health()["openai/gpt-4o"].state == "cooling"

    runtime.reset("openai/gpt-4o")
    runtime.reset("fast")  # a configured alias with no row: listed by health(), so known

    assert "openai/gpt-4o" not in runtime.health()  # reset drops an unconfigured row
    for unknown in ("openai/gpt-4", "nowhere/model", "no-slash"):
        with pytest.raises(KeyError):
            runtime.reset(unknown)


def test_reset_profile_ends_a_key_cooldown(
    runtime: Runtime, rate_limit_gpt4o: Callable[[], None]
) -> None:
    rate_limit_gpt4o()
    assert runtime.inspect().actor("profile:openai/main").state["cooldown_remaining"]

    runtime.reset_profile("openai", "main")

    state = runtime.inspect().actor("profile:openai/main").state
    assert state["cooldown_remaining"] is None
    assert state["consecutive_failures"] == 0
    with pytest.raises(KeyError):
        runtime.reset_profile("openai", "nope")


# -- the routes ------------------------------------------------------------------------------


def test_actors_route_serves_the_runtime_snapshot(runtime: Runtime, client: httpx.Client) -> None:
    response = client.get("/debug/actors")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert {a["name"] for a in document["actors"]} == {a.name for a in runtime.inspect().actors}
    assert set(document["actors"][0]) == {
        "name",
        "kind",
        "state",
        "mailbox_depth",
        "processed",
        "restarts",
        "recent",
        "stale",
        "age",
    }


def test_actors_route_answers_while_an_actor_is_stuck(
    client: httpx.Client, hold: Callable[[str], None]
) -> None:
    hold("health")

    actors = {a["name"]: a for a in client.get("/debug/actors").json()["actors"]}

    assert actors["health"]["stale"] is True
    assert actors["supervisor"]["stale"] is False


def test_health_route_has_the_design_shape(
    rate_limit_gpt4o: Callable[[], None], client: httpx.Client
) -> None:
    rate_limit_gpt4o()

    models = {m["model"]: m for m in client.get("/api/v1/models/health").json()["models"]}

    assert set(models) == {"openai/gpt-4o", "openai/gpt-4o-mini", "claude/claude-sonnet-4-5"}
    cooling = models["openai/gpt-4o"]
    assert set(cooling) == {
        "model",
        "status",
        "reason",
        "cooldown_seconds",
        "last_error",
        "consecutive_failures",
    }
    assert cooling["status"] == "cooling"
    assert cooling["cooldown_seconds"] == pytest.approx(30.0)
    assert cooling["consecutive_failures"] == 1
    assert "rate_limit_exceeded" in cooling["last_error"]
    assert models["openai/gpt-4o-mini"]["status"] == "healthy"
    assert models["openai/gpt-4o-mini"]["cooldown_seconds"] is None


def test_reset_routes(
    runtime: Runtime, rate_limit_gpt4o: Callable[[], None], client: httpx.Client
) -> None:
    rate_limit_gpt4o()

    model = client.post("/api/v1/models/health/reset", json={"model": "openai/gpt-4o"})
    profile = client.post("/api/v1/profiles/reset", json={"provider": "openai", "profile": "main"})

    assert (model.status_code, model.json()) == (200, {"ok": True, "reset": "openai/gpt-4o"})
    assert (profile.status_code, profile.json()) == (200, {"ok": True, "reset": "openai/main"})
    assert "openai/gpt-4o" not in runtime.health()  # reset drops an unconfigured row
    assert runtime.inspect().actor("profile:openai/main").state["cooldown_remaining"] is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/api/v1/models/health/reset", {"model": "openai/gpt-4"}, id="model"),
        pytest.param(
            "/api/v1/profiles/reset", {"provider": "openai", "profile": "spare"}, id="profile"
        ),
        pytest.param(
            "/api/v1/profiles/reset", {"provider": "mistral", "profile": "main"}, id="provider"
        ),
    ],
)
def test_reset_of_something_unknown_is_a_json_404(
    client: httpx.Client, path: str, body: dict[str, str]
) -> None:
    response = client.post(path, json=body)

    assert response.status_code == 404
    assert response.json()["ok"] is False
    assert response.json()["error"]


# -- bad requests ----------------------------------------------------------------------------


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


RESET = "/api/v1/models/health/reset"
CT = "Content-Type: application/json"


@pytest.mark.parametrize(
    ("request_bytes", "status", "says"),
    [
        pytest.param(post(RESET, b"{nope", CT, "Content-Length: 5"), 400, "JSON", id="bad-json"),
        pytest.param(post(RESET, b"\xff\xfe", CT, "Content-Length: 2"), 400, "JSON", id="not-utf8"),
        pytest.param(post(RESET, b"[1]", CT, "Content-Length: 3"), 400, "object", id="array"),
        pytest.param(post(RESET, b"{}", CT, "Content-Length: 2"), 400, "model", id="no-model"),
        pytest.param(
            post(RESET, b'{"model": 7}', CT, "Content-Length: 12"), 400, "model", id="model-int"
        ),
        pytest.param(
            post(RESET, b"{}", "Content-Type: text/plain", "Content-Length: 2"),
            415,
            "application/json",
            id="form-post",
        ),
        pytest.param(post(RESET, b"", CT), 411, "Content-Length", id="no-length"),
        pytest.param(
            post(RESET, b"{}", CT, "Content-Length: x"), 400, "Content-Length", id="bad-length"
        ),
        pytest.param(
            post(RESET, b"", CT, f"Content-Length: {MAX_BODY + 1}"), 413, "over", id="too-big"
        ),
        pytest.param(b"GET /debug/nope HTTP/1.1\r\n\r\n", 404, "/debug/actors", id="no-path"),
        pytest.param(b"GET /api/v1/profiles/reset HTTP/1.1\r\n\r\n", 405, "POST", id="get-post"),
        pytest.param(b"DELETE /debug/actors HTTP/1.1\r\n\r\n", 405, "GET", id="delete"),
        pytest.param(b"BREW /debug/actors HTTP/1.1\r\n\r\n", 501, "BREW", id="unknown-method"),
        pytest.param(b"this is not http\r\n\r\n", 400, "version", id="garbage"),
        pytest.param(b"GET\r\n\r\n", 400, "request", id="one-word"),
    ],
)
def test_bad_requests_get_clear_json_errors(
    server: DebugServer, request_bytes: bytes, status: int, says: str
) -> None:
    got, body, answer = raw(server, request_bytes)

    assert got == status
    assert body["ok"] is False
    assert says in str(body["error"])
    assert b"application/json" in answer
    assert b"Traceback" not in answer
    assert b"<html" not in answer.lower()


def test_a_wrong_method_names_the_allowed_one(client: httpx.Client) -> None:
    response = client.post("/debug/actors", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_an_oversized_body_is_refused_with_413(client: httpx.Client) -> None:
    response = client.post(RESET, content=b"x" * (4 * MAX_BODY), headers=JSON)
    assert response.status_code == 413
    assert response.json()["ok"] is False


def test_a_body_just_under_the_limit_is_read(client: httpx.Client) -> None:
    body = json.dumps({"model": "openai/gpt-4o", "pad": "x" * (MAX_BODY - 100)})
    response = client.post(RESET, content=body, headers=JSON)
    assert response.status_code == 404  # read and parsed: the model just has no row


# -- access ----------------------------------------------------------------------------------


def test_without_a_token_only_loopback_host_names_are_served(server: DebugServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    for host, status in (
        (f"localhost:{port}", 200),
        (f"127.0.0.1:{port}", 200),
        ("[::1]", 200),
        (f"attacker.example:{port}", 403),
    ):
        response = httpx.get(server.url + "/debug/actors", headers={"Host": host})
        assert response.status_code == status, host


def test_a_token_is_required_on_every_request(runtime: Runtime) -> None:
    with runtime.serve_debug(token="s3cret-debug-token") as server:
        url = server.url
        anonymous = httpx.get(url + "/debug/actors")
        wrong = httpx.get(url + "/debug/actors", headers={"Authorization": "Bearer nope"})
        other_path = httpx.get(url + "/not-a-route")
        right = httpx.get(
            url + "/debug/actors", headers={"Authorization": "Bearer s3cret-debug-token"}
        )

    assert anonymous.status_code == wrong.status_code == other_path.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "Bearer" in anonymous.json()["error"]
    assert right.status_code == 200


def test_ipv6_loopback_is_served(runtime: Runtime) -> None:
    try:
        server = runtime.serve_debug(host="::1")
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    with server:
        assert server.url.startswith("http://[::1]:")
        assert httpx.get(server.url + "/api/v1/models/health").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::"])
def test_binding_beyond_loopback_needs_a_token(runtime: Runtime, host: str) -> None:
    with pytest.raises(ConfigError, match="token"):
        runtime.serve_debug(host=host)


@pytest.mark.parametrize("token", ["", "two words"])
def test_a_malformed_token_is_refused(runtime: Runtime, token: str) -> None:
    with pytest.raises(ConfigError, match="token"):
        runtime.serve_debug(token=token)


# -- lifecycle -------------------------------------------------------------------------------


def debug_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "switchover-debug"]


def test_close_stops_serving(runtime: Runtime) -> None:
    server = runtime.serve_debug()
    assert httpx.get(server.url + "/debug/actors").status_code == 200

    server.close()
    server.close()  # idempotent

    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/debug/actors")
    assert not debug_threads()


def test_stopping_the_runtime_closes_its_servers(
    config: Config, provider: ScriptedProvider
) -> None:
    rt = Runtime(config, providers={"openai": provider, "claude": provider})
    rt.start()
    servers = [rt.serve_debug(), rt.serve_debug()]

    rt.stop()

    for server in servers:
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/debug/actors")
    assert not debug_threads()
    with pytest.raises(RuntimeStoppedError):
        rt.serve_debug()
