"""The loopback FakeServer itself, spoken to with plain httpx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from switchover import ErrorKind, classify
from switchover.testing import Fail, FakeServer, Hang, Reply, ServerRequest, ServerStep


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def post(
    client: httpx.Client, server: FakeServer, path: str, key: str = "sk-1", **body: Any
) -> httpx.Response:
    body.setdefault("model", "m")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    headers = {"authorization": f"Bearer {key}"} if "chat" in path else {"x-api-key": key}
    return client.post(server.url + path, json=body, headers=headers)


def sse_data(response: httpx.Response) -> list[Any]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/v1/chat/completions", "openai"),
        ("/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
    ],
)
def test_routes_pick_the_wire_format_and_calls_are_recorded(
    server: FakeServer, client: httpx.Client, path: str, api: str
) -> None:
    response = post(client, server, path, key="sk-abc", stream=True, max_tokens=77)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response)
    if api == "openai":
        assert data[-1] == "[DONE]"
        assert data[1]["choices"][0]["delta"] == {"content": "ok"}
    else:
        assert [d["type"] for d in data][-1] == "message_stop"
    (call,) = server.calls
    assert (call.request.api, call.request.path, call.request.model) == (api, path, "m")
    assert (call.key, call.request.max_tokens, call.request.stream) == ("sk-abc", 77, True)
    assert call.answer == Reply()
    assert call.status == 200
    assert "sk-abc" not in repr(call)


def test_an_unknown_route_is_a_404(server: FakeServer, client: httpx.Client) -> None:
    response = post(client, server, "/v2/engines")
    assert response.status_code == 404
    assert server.calls == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_non_streaming_request_gets_a_whole_answer(
    server: FakeServer, client: httpx.Client, path: str
) -> None:
    server.default = Reply("whole")
    payload = post(client, server, path).json()
    text = (
        payload["choices"][0]["message"]["content"]
        if "chat" in path
        else payload["content"][0]["text"]
    )
    assert text == "whole"


def test_scripts_by_model_and_key_the_last_step_repeating(
    server: FakeServer, client: httpx.Client
) -> None:
    server.script("m", Fail(500), Fail(503))
    server.script("m", Fail(401), key="sk-bad")
    statuses = [post(client, server, "/v1/chat/completions").status_code for _ in range(3)]
    assert statuses == [500, 503, 503]
    assert post(client, server, "/v1/chat/completions", key="sk-bad").status_code == 401
    assert post(client, server, "/v1/chat/completions", model="other").status_code == 200
    assert [c.status for c in server.calls] == [500, 503, 503, 401, 200]


def test_a_rule_decides_live_and_can_change_while_calls_run(
    server: FakeServer, client: httpx.Client
) -> None:
    down = threading.Event()
    seen: list[ServerRequest] = []

    def rule(request: ServerRequest) -> ServerStep | None:
        seen.append(request)
        return Fail(503) if down.is_set() else None  # None: the default answers

    server.rule(rule)
    assert post(client, server, "/v1/messages").status_code == 200
    down.set()
    assert post(client, server, "/v1/messages").status_code == 503
    server.rule(None)
    assert post(client, server, "/v1/messages").status_code == 200
    assert [r.api for r in seen] == ["anthropic", "anthropic"]


def test_fail_sends_status_body_and_headers(server: FakeServer, client: httpx.Client) -> None:
    body = {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}
    server.default = Fail(429, body, headers={"retry-after": "7", "x-request-id": "r1"})
    response = post(client, server, "/v1/chat/completions", stream=True)
    assert response.status_code == 429
    assert response.json() == body
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-request-id"] == "r1"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_ceiling_answers_the_providers_real_output_limit_error(
    server: FakeServer, client: httpx.Client, path: str
) -> None:
    server.ceiling("m", 1000)
    assert post(client, server, path, stream=True, max_tokens=1000).status_code == 200
    response = post(client, server, path, stream=True, max_tokens=1001)
    assert response.status_code == 400
    assert classify(status=400, body=response.content).kind is ErrorKind.OUTPUT_LIMIT
    server.ceiling("m", None)
    assert post(client, server, path, stream=True, max_tokens=1001).status_code == 200


def test_keep_alive(server: FakeServer, client: httpx.Client) -> None:
    for _ in range(5):
        post(client, server, "/v1/chat/completions", stream=True)
    assert server.accepted == 1
    assert server.open_connections == 1


def test_a_simple_call_takes_well_under_5ms(server: FakeServer, client: httpx.Client) -> None:
    # A Nagle / delayed-ACK stall would cost every call 40 ms, so even the fastest of 30
    # shows it; the fastest is also the one a loaded machine disturbs least.
    for _ in range(5):
        post(client, server, "/v1/chat/completions", stream=True)
    took = []
    for _ in range(30):
        start = time.perf_counter()
        post(client, server, "/v1/chat/completions", stream=True)
        took.append(time.perf_counter() - start)
    assert min(took) < 0.005


def test_many_concurrent_connections(server: FakeServer) -> None:
    server.script("slow", Hang())
    timeouts: list[BaseException] = []

    def hang() -> None:
        with httpx.Client(timeout=2) as own:
            try:
                own.post(server.url + "/v1/messages", json={"model": "slow"})
            except httpx.ReadTimeout as error:
                timeouts.append(error)

    hung = [threading.Thread(target=hang) for _ in range(32)]
    for thread in hung:
        thread.start()
    assert server.wait_for(lambda s: len(s.calls) == 32, timeout=30)
    with httpx.Client(timeout=30) as client:  # 32 hanging calls do not hold up a 33rd
        assert post(client, server, "/v1/messages").status_code == 200
    for thread in hung:
        thread.join(timeout=30)
    assert len(timeouts) == 32
    # Each client that gave up closed its connection, and the server noticed.
    assert server.wait_for(lambda s: s.open_connections == 0, timeout=30)


def test_close_releases_hanging_connections(client: httpx.Client) -> None:
    server = FakeServer(default=Hang()).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            post(client, server, "/v1/messages")
        except httpx.HTTPError as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    assert server.wait_for(lambda s: len(s.calls) == 1, timeout=30)
    server.close()
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert isinstance(errors[0], httpx.RemoteProtocolError)
    assert server.open_connections == 0


def test_reset_forgets_scripts_rule_and_calls(server: FakeServer, client: httpx.Client) -> None:
    server.script("m", Fail(500))
    server.rule(lambda request: Fail(503))
    post(client, server, "/v1/messages")
    server.reset()
    assert server.calls == []
    assert post(client, server, "/v1/messages").status_code == 200
