"""Issue 15 item 7: the debug endpoint cannot starve the runtime it shows.

Slow clients are bounded in number and cut off; answers of the costly routes are built
at most once per interval however many clients poll; malformed bodies are 400s; short
tokens are refused; nothing prints a traceback.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from switchover import ConfigError, DebugServer, Runtime
from switchover import _debug as debug

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut slow clients off after half a second (the default is several)."""
    monkeypatch.setattr(debug, "REQUEST_TIMEOUT", 0.5)


@pytest.fixture
def server(runtime: Runtime, quick: None) -> Iterator[DebugServer]:
    with runtime.serve_debug() as server:
        yield server


def _connect(server: DebugServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def test_slow_clients_hold_a_bounded_number_of_threads_and_are_cut_off(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(debug, "REQUEST_TIMEOUT", 3.0)  # long enough to open the rest
    with runtime.serve_debug() as server:
        _slow_clients(server)


def _slow_clients(server: DebugServer) -> None:
    slow = [_connect(server) for _ in range(debug.MAX_CONNECTIONS)]
    try:
        for sock in slow:
            sock.sendall(b"GET /debug/actors HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
        held = threading.Event()
        for _ in range(500):  # until the server holds them all (bounded: 5 s)
            if len(_handler_threads()) >= debug.MAX_CONNECTIONS or held.wait(0.01):
                break
        extra = [_connect(server) for _ in range(debug.MAX_CONNECTIONS * 3)]
        slow += extra
        busy = [_answer(sock)[0] for sock in extra]
        assert set(busy) == {503}  # answered at once, no thread, no descriptor kept
        assert len(_handler_threads()) <= debug.MAX_CONNECTIONS
        # The slow ones are cut off after REQUEST_TIMEOUT (EOF), and the endpoint serves.
        for sock in slow[: debug.MAX_CONNECTIONS]:
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(65536) == b""  # no answer: just cut off
        assert httpx.get(server.url + "/api/v1/models/health", timeout=10).status_code == 200
    finally:
        for sock in slow:
            sock.close()


def test_a_client_stalling_in_its_body_gets_a_400(server: DebugServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/models/health/reset HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model"'
        )
        status, body = _answer(sock)
    assert status == 400
    assert "shorter than its Content-Length" in json.loads(body)["error"]


def test_a_deeply_nested_body_gets_a_400(server: DebugServer) -> None:
    nested = "[" * 30_000 + "]" * 30_000
    answer = httpx.post(
        server.url + "/api/v1/models/health/reset",
        content=nested,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert "nested too deeply" in answer.json()["error"]


def test_clients_polling_the_snapshot_share_one_build_per_interval(
    server: DebugServer, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = 0
    inspect = runtime.inspect

    def counted(**kwargs: object) -> object:
        nonlocal builds
        builds += 1
        return inspect(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "inspect", counted)
    monkeypatch.setattr(debug, "CACHE_TTL", 60.0)
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            with httpx.Client(timeout=10) as client:
                for _ in range(10):
                    assert client.get(server.url + "/debug/actors").status_code == 200
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=poll) for _ in range(debug.MAX_CONNECTIONS // 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert builds == 1  # 40 answers, one snapshot
    # A reset through the endpoint drops the cached answers.
    reset = httpx.post(server.url + "/api/v1/models/health/reset", json={"model": "fast"})
    assert reset.status_code == 200
    assert httpx.get(server.url + "/debug/actors").status_code == 200
    assert builds == 2


@pytest.mark.parametrize("token", ["short", "fifteen-chars-x"])
def test_a_short_token_is_refused(runtime: Runtime, token: str) -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        runtime.serve_debug(token=token)


def test_hostile_clients_print_no_traceback(
    server: DebugServer, capfd: pytest.CaptureFixture[str]
) -> None:
    for data in (
        b"GET /debug/actors HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # then hang up at once
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"POST /api/v1/models/health/reset HTTP/1.1\r\nContent-Length: 5\r\n",
    ):
        sock = _connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(data)
        sock.close()  # a reset, mid-request or mid-answer
    assert httpx.get(server.url + "/api/v1/models/health", timeout=10).status_code == 200
    assert "Traceback" not in capfd.readouterr().err
