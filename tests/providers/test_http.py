"""The built-in HTTP adapters, through Runtime, against the loopback FakeServer.

Every test speaks real HTTP on 127.0.0.1 with the default adapters; timeouts are small so
the suite stays fast, and time bounds are generous so a noisy machine does not flake.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import freezegun
import httpcore
import httpx
import pytest
from conftest import MakeCall
from switchover import (
    ChainExhausted,
    Config,
    CooldownConfig,
    DeadlineExceeded,
    ErrorKind,
    ProviderCall,
    ProviderConfig,
    ProviderFailure,
    Request,
    RequestRejected,
    RetryConfig,
    Runtime,
    RuntimeStoppedError,
    StreamInterrupted,
    SwitchoverError,
    TextDelta,
    ToolCall,
    Usage,
)
from switchover._core._clock import SystemClock
from switchover._core._redact import PIECE, Redactor
from switchover.actors._directory import profile_name
from switchover.actors.messages import Inspect
from switchover.providers._http import (
    HTTPX_ERRORS,
    HttpProvider,
    http_provider,
    transport_failure_of,
)
from switchover.providers._watchdog import Watch, Watchdog
from switchover.testing import (
    Cut,
    EmptyBody,
    Fail,
    FakeClock,
    FakeServer,
    Hang,
    Html,
    HugeLine,
    InvalidUtf8,
    JsonBody,
    Refuse,
    Reply,
    ResetMidHeaders,
    ServerStep,
    StreamError,
    Trickle,
    TruncatedJson,
    WrongContentType,
    closed_port_url,
    connect_blackhole,
)

MAIN = "sk-test-main-0123456789abcdef"
BACKUP = "sk-test-backup-0123456789abcdef"
APIS = ["openai", "anthropic"]
#: Generous slack on top of any timeout we wait for: the machine is small and shared.
SLACK = 3.0


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


def provider(base_url: str, api: str, name: str = "p", **timeouts: float) -> ProviderConfig:
    return ProviderConfig(
        name=name,
        api=api,  # type: ignore[arg-type]
        base_url=base_url,
        profiles={"main": MAIN, "backup": BACKUP},
        **timeouts,
    )


def make_config(
    server: FakeServer,
    api: str,
    *,
    fallbacks: tuple[str, ...] = ("p/fallback",),
    timeouts: dict[str, float] | None = None,
    extra: tuple[ProviderConfig, ...] = (),
    **fields: Any,
) -> Config:
    fields.setdefault("retry", RetryConfig(attempts=2, min_delay=0.0, max_delay=0.0))
    return Config(
        providers=[provider(server.base_url(api), api, **(timeouts or {})), *extra],
        fallbacks=fallbacks,
        **fields,
    )


def ask(model: str = "p/m", max_tokens: int | None = None) -> Request:
    return Request(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=max_tokens)


def settle(rt: Runtime) -> None:
    """Wait until every actor has handled what was told to it before now (FIFO mailboxes)."""
    supervisor = rt._running()
    for member in supervisor.directory.members.values():
        assert member.ref is not None
        member.ref.ask(Inspect(), timeout=30)


def model_state(rt: Runtime, model: str) -> str:
    settle(rt)
    row = rt.health().get(model)
    return "healthy" if row is None else str(row.state)


def key_view(rt: Runtime, profile: str) -> dict[str, Any]:
    settle(rt)
    snapshot = rt.inspect().to_dict()
    name = profile_name("p", profile)
    return next(a["state"] for a in snapshot["actors"] if a["name"] == name)


def elapsed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


# --- the happy path -------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_a_reply_arrives_whole(server: FakeServer, api: str) -> None:
    server.default = Reply(
        "hello world",
        chunks=3,
        reasoning="thinking",
        tool_calls=(ToolCall("call_1", "lookup", '{"q": "x"}'), ToolCall("call_2", "f", "{}")),
        usage=Usage(input_tokens=7, output_tokens=3),
    )
    with Runtime(make_config(server, api)) as rt:
        done = rt.complete(ask())
    assert done.text == "hello world"
    assert done.reasoning == "thinking"
    assert done.tool_calls == (
        ToolCall("call_1", "lookup", '{"q": "x"}'),
        ToolCall("call_2", "f", "{}"),
    )
    assert done.usage == Usage(input_tokens=7, output_tokens=3)
    assert done.finish_reason == "stop"
    (call,) = server.calls
    assert (call.request.api, call.request.model, call.key) == (api, "m", MAIN)


@pytest.mark.parametrize("api", APIS)
def test_text_arrives_as_separate_deltas(server: FakeServer, api: str) -> None:
    server.default = Reply("abcdef", chunks=3)
    with Runtime(make_config(server, api)) as rt, rt.stream(ask()) as stream:
        texts = [e.text for e in stream if isinstance(e, TextDelta)]
    assert texts == ["ab", "cd", "ef"]


@pytest.mark.parametrize("api", APIS)
def test_keep_alive_reuses_one_connection(server: FakeServer, api: str) -> None:
    with Runtime(make_config(server, api)) as rt:
        for _ in range(5):
            rt.complete(ask())
    assert len(server.calls) == 5
    assert server.accepted == 1


@pytest.mark.parametrize("api", APIS)
def test_a_whole_json_answer_is_accepted(server: FakeServer, api: str) -> None:
    server.default = JsonBody(Reply("whole answer", tool_calls=(ToolCall("c", "f", '{"a":1}'),)))
    with Runtime(make_config(server, api)) as rt:
        done = rt.complete(ask())
    assert done.text == "whole answer"
    assert done.tool_calls == (ToolCall("c", "f", '{"a": 1}' if api == "anthropic" else '{"a":1}'),)
    assert done.served_by.model == "p/m"


# --- the classification table, row by row ---------------------------------------------------


def _openai(status: int, kind: str, message: str, code: str | None = None, **more: Any) -> Fail:
    return Fail(status, {"error": {"message": message, "type": kind, "code": code, **more}})


def _anthropic(status: int, kind: str, message: str, **more: Any) -> Fail:
    return Fail(status, {"type": "error", "error": {"type": kind, "message": message, **more}})


CASES: dict[str, list[tuple[str, ServerStep, ErrorKind, str]]] = {
    # id, step, expected kind, what the chain does
    "openai": [
        (
            "429 rate_limit_exceeded",
            _openai(429, "requests", "Rate limit reached for m", "rate_limit_exceeded"),
            ErrorKind.RATE_LIMIT,
            "next_profile",
        ),
        (
            "in-stream rate limit",
            StreamError(
                {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}
            ),
            ErrorKind.RATE_LIMIT,
            "next_profile",
        ),
        (
            "401 invalid_api_key",
            _openai(401, "invalid_request_error", "Incorrect API key provided", "invalid_api_key"),
            ErrorKind.AUTH,
            "next_profile",
        ),
        (
            "403",
            _openai(403, "request_forbidden", "Country, region, or territory not supported"),
            ErrorKind.AUTH,
            "next_profile",
        ),
        (
            "429 insufficient_quota",
            _openai(
                429, "insufficient_quota", "You exceeded your current quota", "insufficient_quota"
            ),
            ErrorKind.BALANCE,
            "next_profile",
        ),
        (
            "402",
            Fail(402, {"error": {"message": "Payment required"}}),
            ErrorKind.BALANCE,
            "next_profile",
        ),
        (
            "404 model_not_found",
            _openai(
                404,
                "invalid_request_error",
                "The model `m` does not exist or you do not have access to it.",
                "model_not_found",
            ),
            ErrorKind.MODEL_MISSING,
            "next_model",
        ),
        (
            "500",
            _openai(500, "server_error", "The server had an error while processing your request."),
            ErrorKind.TRANSIENT,
            "retry_then_next_model",
        ),
        (
            "503",
            _openai(503, "server_error", "The engine is currently overloaded"),
            ErrorKind.TRANSIENT,
            "retry_then_next_model",
        ),
        ("connection reset", Refuse(), ErrorKind.TRANSIENT, "retry_then_next_model"),
        ("no first token", Hang(), ErrorKind.TRANSIENT, "next_model"),
        (
            "400 no marker",
            _openai(400, "invalid_request_error", "Something about this request is off"),
            ErrorKind.INVALID_REQUEST,
            "next_model_no_verdict",
        ),
        (
            "404 no marker",
            _openai(404, "invalid_request_error", "Not found"),
            ErrorKind.INVALID_REQUEST,
            "next_model_no_verdict",
        ),
        (
            "422 no marker",
            _openai(422, "invalid_request_error", "Unprocessable"),
            ErrorKind.INVALID_REQUEST,
            "next_model_no_verdict",
        ),
        (
            "context_length_exceeded",
            _openai(
                400,
                "invalid_request_error",
                "This model's maximum context length is 8192 tokens. "
                "However, your messages resulted in 9000 tokens.",
                "context_length_exceeded",
                param="messages",
            ),
            ErrorKind.CONTEXT_EXCEEDED,
            "reject",
        ),
        (
            "malformed",
            _openai(
                400,
                "invalid_request_error",
                "Missing required parameter: 'messages[0].role'.",
                "missing_required_parameter",
            ),
            ErrorKind.BAD_REQUEST,
            "reject",
        ),
        (
            "unknown",
            StreamError({"error": {"message": "something odd happened"}}),
            ErrorKind.UNKNOWN,
            "retry_then_next_model_no_verdict",
        ),
    ],
    "anthropic": [
        (
            "429 rate_limit_error",
            _anthropic(
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            ),
            ErrorKind.RATE_LIMIT,
            "next_profile",
        ),
        (
            "in-stream rate limit",
            StreamError(
                {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
            ),
            ErrorKind.RATE_LIMIT,
            "next_profile",
        ),
        (
            "401 authentication_error",
            _anthropic(401, "authentication_error", "invalid x-api-key"),
            ErrorKind.AUTH,
            "next_profile",
        ),
        (
            "403 permission_error",
            _anthropic(403, "permission_error", "Your API key does not have permission"),
            ErrorKind.AUTH,
            "next_profile",
        ),
        (
            "402 billing_error",
            _anthropic(402, "billing_error", "Payment required"),
            ErrorKind.BALANCE,
            "next_profile",
        ),
        (
            "credit balance too low",
            _anthropic(
                400,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API.",
            ),
            ErrorKind.BALANCE,
            "next_profile",
        ),
        (
            "429 spend limit",
            _anthropic(
                429,
                "rate_limit_error",
                "spend limit",
                details={"error_code": "enforced_spend_limit_reached"},
            ),
            ErrorKind.BALANCE,
            "next_profile",
        ),
        (
            "404 model",
            _anthropic(404, "not_found_error", "model: claude-nope"),
            ErrorKind.MODEL_MISSING,
            "next_model",
        ),
        (
            "529 overloaded_error",
            _anthropic(529, "overloaded_error", "Overloaded"),
            ErrorKind.TRANSIENT,
            "retry_then_next_model",
        ),
        (
            "in-stream overloaded_error",
            StreamError(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            ),
            ErrorKind.TRANSIENT,
            "retry_then_next_model",
        ),
        (
            "500 api_error",
            _anthropic(500, "api_error", "Internal server error"),
            ErrorKind.TRANSIENT,
            "retry_then_next_model",
        ),
        ("connection reset", Refuse(), ErrorKind.TRANSIENT, "retry_then_next_model"),
        ("no first token", Hang(), ErrorKind.TRANSIENT, "next_model"),
        (
            "400 no marker",
            _anthropic(400, "invalid_request_error", "Something about this request is off"),
            ErrorKind.INVALID_REQUEST,
            "next_model_no_verdict",
        ),
        (
            "404 no marker",
            _anthropic(404, "not_found_error", "Not found"),
            ErrorKind.INVALID_REQUEST,
            "next_model_no_verdict",
        ),
        (
            "prompt is too long",
            _anthropic(
                400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"
            ),
            ErrorKind.CONTEXT_EXCEEDED,
            "reject",
        ),
        (
            "malformed",
            _anthropic(
                400,
                "invalid_request_error",
                'messages: roles must alternate between "user" and "assistant"',
            ),
            ErrorKind.BAD_REQUEST,
            "reject",
        ),
        (
            "unknown",
            StreamError({"type": "error", "error": {"type": "something_new", "message": "odd"}}),
            ErrorKind.UNKNOWN,
            "retry_then_next_model_no_verdict",
        ),
    ],
}


@pytest.mark.parametrize(
    ("api", "step", "kind", "action"),
    [
        pytest.param(api, step, kind, action, id=f"{api}-{name}")
        for api, cases in CASES.items()
        for name, step, kind, action in cases
    ],
)
def test_classification_table(
    server: FakeServer, api: str, step: ServerStep, kind: ErrorKind, action: str
) -> None:
    server.script("m", step, key=MAIN)
    # Generous: every answer but the hanging one must beat it on a loaded machine.
    config = make_config(server, api, timeouts={"first_token_timeout": 2.0})
    with Runtime(config) as rt:
        if action == "reject":
            with pytest.raises(RequestRejected) as rejected:
                rt.complete(ask())
            assert rejected.value.kind is kind
            assert [c.model for c in server.calls] == ["m"]
            assert model_state(rt, "p/m") == "healthy"
            return
        done = rt.complete(ask())
        failed = done.attempts[0]
        assert (failed.model, failed.profile, failed.outcome) == ("p/m", "main", "error")
        assert failed.kind is kind
        if isinstance(step, Fail):
            assert failed.status == step.status
        calls = [(c.model, c.key) for c in server.calls]
        if action == "next_profile":
            assert done.served_by.model == "p/m"
            assert done.served_by.profile == "backup"
            assert calls == [("m", MAIN), ("m", BACKUP)]
            assert model_state(rt, "p/m") == "healthy"
            assert key_view(rt, "main")["cooldown_remaining"] > 0
            return
        assert done.served_by.model == "p/fallback"
        tries = 2 if action.startswith("retry") else 1
        assert calls == [("m", MAIN)] * tries + [("fallback", MAIN)]
        expected_health = "healthy" if action.endswith("no_verdict") else "cooling"
        assert model_state(rt, "p/m") == expected_health


@pytest.mark.parametrize("api", APIS)
def test_max_tokens_over_the_ceiling_is_dropped_once_for_that_model(
    server: FakeServer, api: str
) -> None:
    # Anthropic requires max_tokens: dropping it sends the documented default (4096).
    server.ceiling("m", 8192)
    with Runtime(make_config(server, api)) as rt:
        done = rt.complete(ask(max_tokens=100_000))
    assert done.served_by.model == "p/m"
    assert done.attempts[0].kind is ErrorKind.OUTPUT_LIMIT
    sent = [c.request.max_tokens for c in server.calls]
    assert sent == [100_000, None if api == "openai" else 4096]


@pytest.mark.parametrize("api", APIS)
def test_an_output_ceiling_the_default_exceeds_moves_on(server: FakeServer, api: str) -> None:
    server.ceiling("m", 10)
    with Runtime(make_config(server, api)) as rt:
        if api == "openai":  # no max_tokens sent: the ceiling never triggers
            assert rt.complete(ask()).served_by.model == "p/m"
        else:  # the default 4096 is over the ceiling: not the caller's fault, next model
            assert rt.complete(ask()).served_by.model == "p/fallback"


@pytest.mark.parametrize("api", APIS)
def test_connect_timeout_moves_to_the_next_model_at_once(server: FakeServer, api: str) -> None:
    with connect_blackhole() as url:
        dead = provider(url, api, name="dead", connect_timeout=0.3)
        config = make_config(server, api, fallbacks=("p/fallback",), extra=(dead,))
        with Runtime(config) as rt:
            start = time.monotonic()
            done = rt.complete(ask("dead/m"))
            took = time.monotonic() - start
    assert done.served_by.model == "p/fallback"
    (failed,) = [a for a in done.attempts if a.outcome == "error"]
    assert failed.kind is ErrorKind.TRANSIENT
    assert "connect timeout" in failed.message
    assert 0.25 <= took < 0.3 + SLACK  # one try: a hung target is not retried in place


@pytest.mark.parametrize("api", APIS)
def test_connection_refused_is_transient(server: FakeServer, api: str) -> None:
    dead = provider(closed_port_url(), api, name="dead")
    with Runtime(make_config(server, api, extra=(dead,))) as rt:
        done = rt.complete(ask("dead/m"))
    assert done.served_by.model == "p/fallback"
    assert [a.kind for a in done.attempts if a.outcome == "error"] == [ErrorKind.TRANSIENT] * 2
    assert "connection failed" in done.attempts[0].message


@pytest.mark.parametrize("api", APIS)
def test_a_trickle_before_the_first_token_is_an_idle_timeout(server: FakeServer, api: str) -> None:
    server.script("m", Trickle(interval=0.05))  # bytes keep coming, but never a whole event
    timeouts = {"first_token_timeout": 30.0, "idle_timeout": 1.0}
    with Runtime(make_config(server, api, timeouts=timeouts)) as rt:
        start = time.monotonic()
        done = rt.complete(ask())
        took = time.monotonic() - start
    assert done.served_by.model == "p/fallback"
    failed = done.attempts[0]
    assert failed.kind is ErrorKind.TRANSIENT
    assert "idle" in failed.message
    assert took < 1.0 + SLACK


@pytest.mark.parametrize("api", APIS)
def test_a_slow_first_token_fails_over(server: FakeServer, api: str) -> None:
    server.script("m", Reply("late", delay=5.0))
    with Runtime(make_config(server, api, timeouts={"first_token_timeout": 0.3})) as rt:
        start = time.monotonic()
        done = rt.complete(ask())
        took = time.monotonic() - start
    assert done.served_by.model == "p/fallback"
    assert "no first token within 0.3s" in done.attempts[0].message
    assert took < 0.3 + SLACK


# --- the commit rule ------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    "step",
    [
        pytest.param(Cut(after=0), id="cut"),
        pytest.param(StreamError({"error": {"type": "server_error", "message": "x"}}), id="error"),
        pytest.param(Fail(500, {"error": {"message": "boom"}}), id="status"),
    ],
)
def test_a_failure_before_the_first_token_fails_over_silently(
    server: FakeServer, api: str, step: ServerStep
) -> None:
    server.script("m", step)
    server.script("fallback", Reply("from the fallback", chunks=2))
    with Runtime(make_config(server, api)) as rt, rt.stream(ask()) as stream:
        events = list(stream)
        assert stream.served_by.model == "p/fallback"
        assert [a.outcome for a in stream.attempts] == ["error", "error", "ok"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "from the fallback"


@pytest.mark.parametrize("api", APIS)
def test_a_failure_after_the_first_token_interrupts_the_stream(
    server: FakeServer, api: str
) -> None:
    server.script("m", Cut(after=2, text="part "))
    with Runtime(make_config(server, api)) as rt:
        stream = rt.stream(ask())
        with pytest.raises(StreamInterrupted) as interrupted:
            list(stream)
        assert interrupted.value.partial_text == "part part "
        assert interrupted.value.served_by.model == "p/m"
        assert interrupted.value.kind is ErrorKind.TRANSIENT
        assert [c.model for c in server.calls] == ["m"]  # nothing spliced in from elsewhere
        assert stream.attempts[-1].outcome == "error"
        assert model_state(rt, "p/m") == "cooling"
        view = key_view(rt, "main")
        assert (view["failures"], view["last_error_kind"]) == (1, "transient")


@pytest.mark.parametrize("api", APIS)
def test_a_clean_end_records_success(server: FakeServer, api: str) -> None:
    with Runtime(make_config(server, api)) as rt:
        rt.complete(ask())
        view = key_view(rt, "main")
    assert (view["successes"], view["failures"]) == (1, 0)


# --- wait hints -----------------------------------------------------------------------------


def _only_model(server: FakeServer, api: str) -> Config:
    config = make_config(
        server,
        api,
        fallbacks=(),
        cooldown=CooldownConfig(model_base={"rate_limit": 1.0}),
    )
    one_key = provider(server.base_url(api), api)
    return Config(
        providers=[
            ProviderConfig(
                name="p", api=one_key.api, base_url=one_key.base_url, profiles={"main": MAIN}
            )
        ],
        retry=config.retry,
        cooldown=config.cooldown,
    )


def _rate_limited(server: FakeServer, api: str, headers: dict[str, str]) -> float:
    """The key's cooldown after one 429 that carries ``headers``.

    Read from the profile actor's own answer, so it is consistent even under freezegun
    (which leaves pykka's threads on real time).
    """
    body: object = (
        {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}
        if api == "openai"
        else {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    )
    server.script("m", Fail(429, body, headers=headers))
    with Runtime(_only_model(server, api)) as rt:
        with pytest.raises(ChainExhausted) as first:
            rt.complete(ask())
        assert first.value.attempts[0].kind is ErrorKind.RATE_LIMIT
        remaining = key_view(rt, "main")["cooldown_remaining"]
    assert isinstance(remaining, float)
    return remaining


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        pytest.param({"retry-after": "40"}, 40.0, id="seconds"),
        pytest.param({"retry-after-ms": "25000", "retry-after": "99"}, 25.0, id="milliseconds"),
    ],
)
def test_retry_after_sets_the_key_cooldown(
    server: FakeServer, api: str, headers: dict[str, str], wait: float
) -> None:
    assert wait - SLACK < _rate_limited(server, api, headers) <= wait


@pytest.mark.parametrize("api", APIS)
def test_a_cooling_key_is_not_called_and_retry_after_says_when(
    server: FakeServer, api: str
) -> None:
    server.script("m", Fail(429, {"error": {"code": "rate_limit_exceeded"}}, {"retry-after": "40"}))
    with Runtime(_only_model(server, api)) as rt:
        with pytest.raises(ChainExhausted):
            rt.complete(ask())
        settle(rt)  # the key's cooldown is told, not asked: let it land
        with pytest.raises(ChainExhausted) as second:
            rt.complete(ask())
    assert len(server.calls) == 1
    assert [a.outcome for a in second.value.attempts] == ["skipped"]
    assert second.value.retry_after is not None
    assert 40 - SLACK < second.value.retry_after <= 40


NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("api", APIS)
def test_retry_after_as_an_http_date(server: FakeServer, api: str) -> None:
    header = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    with freezegun.freeze_time(NOW):
        remaining = _rate_limited(server, api, {"retry-after": header})
    assert 30 - SLACK < remaining <= 30


def test_openai_reset_headers(server: FakeServer) -> None:
    remaining = _rate_limited(
        server,
        "openai",
        {
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1m30s",
            "x-ratelimit-remaining-tokens": "5000",  # not exhausted: its reset is ignored
            "x-ratelimit-reset-tokens": "6m0s",
        },
    )
    assert 90 - SLACK < remaining <= 90


def test_anthropic_reset_headers(server: FakeServer) -> None:
    with freezegun.freeze_time(NOW):
        remaining = _rate_limited(
            server,
            "anthropic",
            {
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": (NOW + timedelta(seconds=45)).isoformat(),
                "anthropic-ratelimit-requests-remaining": "10",
                "anthropic-ratelimit-requests-reset": (NOW + timedelta(seconds=200)).isoformat(),
            },
        )
    assert 45 - SLACK < remaining <= 45


# --- deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_a_hanging_upstream_costs_at_most_the_request_timeout(server: FakeServer, api: str) -> None:
    server.default = Hang()
    config = make_config(server, api, fallbacks=(), request_timeout=0.5)
    with Runtime(config) as rt:
        start = time.monotonic()
        with pytest.raises((DeadlineExceeded, ChainExhausted)):
            rt.complete(ask())
        took = time.monotonic() - start
    assert 0.45 <= took < 0.5 + SLACK


@pytest.mark.parametrize("api", APIS)
def test_the_deadline_cuts_a_committed_stream(server: FakeServer, api: str) -> None:
    server.default = Reply("abc", chunks=3, chunk_delay=10.0)
    config = make_config(server, api, fallbacks=(), request_timeout=1.0)
    with Runtime(config) as rt:
        start = time.monotonic()
        stream = rt.stream(ask())
        with pytest.raises(StreamInterrupted) as interrupted:
            list(stream)
        took = time.monotonic() - start
    assert interrupted.value.partial_text == "a"
    assert "deadline" in str(interrupted.value)
    assert 0.95 <= took < 1.0 + SLACK


@pytest.mark.parametrize("api", APIS)
def test_an_idle_gap_after_commit_interrupts(server: FakeServer, api: str) -> None:
    server.default = Reply("abc", chunks=3, chunk_delay=10.0)
    with Runtime(make_config(server, api, timeouts={"idle_timeout": 1.0})) as rt:
        stream = rt.stream(ask())
        with pytest.raises(StreamInterrupted, match="idle"):
            list(stream)


@pytest.mark.parametrize("api", APIS)
def test_a_slow_reader_is_not_an_idle_provider(server: FakeServer, api: str) -> None:
    server.default = Reply("abc", chunks=3)
    config = make_config(server, api, timeouts={"idle_timeout": 1.0})
    with Runtime(config) as rt, rt.stream(ask()) as stream:
        first = next(stream)
        threading.Event().wait(1.5)  # the caller dawdles: no idle timeout for that
        rest = list(stream)
    assert [first, *rest][:3] == [TextDelta("a"), TextDelta("b"), TextDelta("c")]


@pytest.mark.parametrize("api", APIS)
def test_a_reader_that_held_an_event_long_still_gets_idle_timeouts(
    server: FakeServer, api: str
) -> None:
    server.default = Trickle(interval=0.05, after=1)  # one chunk, then a byte at a time
    config = make_config(server, api, timeouts={"idle_timeout": 1.0}, request_timeout=30.0)
    with Runtime(config) as rt:
        stream = rt.stream(ask())
        assert next(stream) == TextDelta("x")
        threading.Event().wait(1.5)  # the caller holds the event past the idle budget
        start = time.monotonic()
        with pytest.raises(StreamInterrupted, match="idle"):
            list(stream)
        assert time.monotonic() - start < 1.0 + SLACK  # not at the 30 s deadline


# --- closing early, stopping, concurrency ---------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_closing_early_releases_the_connection_and_the_worker(server: FakeServer, api: str) -> None:
    server.script("m", Reply("x" * 50, chunks=50, chunk_delay=0.05))
    with Runtime(make_config(server, api, chain_workers=1)) as rt:
        stream = rt.stream(ask())
        assert next(stream) == TextDelta("x")
        stream.close()
        assert server.wait_for(lambda s: s.open_connections == 0, timeout=30)
        # The only chain worker is free at once: a second request is served promptly.
        assert elapsed(lambda: rt.complete(ask("p/other"))) < SLACK
        assert model_state(rt, "p/m") == "healthy"
        view = key_view(rt, "main")
        assert view["failures"] == 0


@pytest.mark.parametrize("api", APIS)
def test_breaking_out_of_the_loop_closes_the_connection(server: FakeServer, api: str) -> None:
    server.script("m", Reply("x" * 50, chunks=50, chunk_delay=0.05))
    with Runtime(make_config(server, api)) as rt:
        with rt.stream(ask()) as stream:
            for _ in stream:
                break
        assert server.wait_for(lambda s: s.open_connections == 0, timeout=30)


@pytest.mark.parametrize("api", APIS)
def test_closing_from_another_thread_wakes_the_reader(server: FakeServer, api: str) -> None:
    server.script("m", Reply("abc", chunks=3, chunk_delay=30.0))
    with Runtime(make_config(server, api)) as rt:
        stream = rt.stream(ask())
        next(stream)
        outcome: list[BaseException] = []

        def read() -> None:
            try:
                list(stream)
            except SwitchoverError as error:
                outcome.append(error)

        reader = threading.Thread(target=read)
        reader.start()
        assert server.wait_for(lambda s: s.open_connections == 1, timeout=30)
        stream.close()
        reader.join(timeout=30)
        assert not reader.is_alive()
    assert isinstance(outcome[0], StreamInterrupted)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("committed", [False, True], ids=["hanging", "streaming"])
def test_stopping_the_runtime_ends_calls_in_flight_promptly(
    server: FakeServer, api: str, committed: bool
) -> None:
    server.default = Reply("ab", chunks=2, chunk_delay=30.0) if committed else Hang()
    rt = Runtime(make_config(server, api, fallbacks=(), timeouts={"first_token_timeout": 30.0}))
    rt.start()
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            rt.complete(ask())
        except SwitchoverError as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    assert server.wait_for(lambda s: len(s.calls) == 1, timeout=30)
    start = time.monotonic()
    rt.stop()
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert time.monotonic() - start < SLACK + 1
    assert isinstance(outcome[0], RuntimeStoppedError)


@pytest.mark.parametrize("api", APIS)
def test_sixteen_concurrent_streams(server: FakeServer, api: str) -> None:
    server.default = Reply("abc", chunks=3, chunk_delay=0.01)
    barrier = threading.Barrier(16)
    texts: list[str] = []
    errors: list[BaseException] = []

    def one(rt: Runtime) -> None:
        try:
            with rt.stream(ask()) as stream:
                first = next(stream)
                barrier.wait(timeout=20)  # all sixteen are open at the same time
                rest = [e for e in stream if isinstance(e, TextDelta)]
            assert isinstance(first, TextDelta)
            texts.append(first.text + "".join(e.text for e in rest))
        except BaseException as error:
            errors.append(error)

    with Runtime(make_config(server, api, chain_workers=16)) as rt:
        threads = [threading.Thread(target=one, args=(rt,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert texts == ["abc"] * 16


# --- hostile answers ------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("step", "says"),
    [
        pytest.param(Html(), "HTTP 502", id="html"),
        pytest.param(TruncatedJson(status=500), "HTTP 500", id="truncated-error-body"),
        pytest.param(TruncatedJson(after=0), "not valid JSON", id="truncated-chunk"),
        pytest.param(WrongContentType(), "content type 'text/plain'", id="wrong-content-type"),
        pytest.param(EmptyBody(), "ended before", id="empty-body"),
        pytest.param(InvalidUtf8(), "UTF-8", id="invalid-utf8"),
        pytest.param(HugeLine(), "larger than 1048576 bytes", id="10MB-line"),
        pytest.param(ResetMidHeaders(), "reset", id="reset-mid-headers"),
        pytest.param(Trickle(interval=0.05), "idle", id="trickle"),
    ],
)
def test_hostile_answers_are_classified_and_failed_over(
    server: FakeServer, api: str, step: ServerStep, says: str
) -> None:
    server.script("m", step)
    with Runtime(make_config(server, api, timeouts={"idle_timeout": 1.0})) as rt:
        done = rt.complete(ask())
    assert done.served_by.model == "p/fallback"
    failed = done.attempts[0]
    assert failed.kind is ErrorKind.TRANSIENT
    assert says in failed.message


@pytest.mark.parametrize("api", APIS)
def test_invalid_utf8_after_commit_interrupts(server: FakeServer, api: str) -> None:
    server.script("m", InvalidUtf8(after=1))
    with Runtime(make_config(server, api)) as rt:
        stream = rt.stream(ask())
        with pytest.raises(StreamInterrupted, match="UTF-8") as interrupted:
            list(stream)
    assert interrupted.value.partial_text == "x"


# --- keys never leak ------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_no_key_in_any_message(server: FakeServer, api: str) -> None:
    echo = f"Incorrect API key provided: {MAIN} (and {BACKUP})"
    server.script("m", Fail(401, {"error": {"message": echo, "code": "invalid_api_key"}}))
    server.script("fallback", Cut(after=1, text=f"bearer {MAIN}"))
    with Runtime(make_config(server, api)) as rt:
        stream = rt.stream(ask())
        with pytest.raises(StreamInterrupted) as interrupted:
            list(stream)
        snapshot = json.dumps(rt.inspect().to_dict())
        health = repr(rt.health())
    texts = [a.message for a in stream.attempts] + [str(interrupted.value), snapshot, health]
    for key in (MAIN, BACKUP):
        pieces = {key[i : i + PIECE] for i in range(len(key) - PIECE + 1)}
        for text in texts:
            assert not any(piece in text for piece in pieces), text


# --- the httpx exception map ----------------------------------------------------------------


def test_every_httpx_exception_class_is_mapped() -> None:
    exported = {
        value
        for name in httpx.__all__
        if isinstance(value := getattr(httpx, name), type) and issubclass(value, Exception)
    }
    assert exported == set(HTTPX_ERRORS)


@pytest.mark.parametrize(
    ("error", "kind", "timeout"),
    [
        (httpx.ConnectTimeout("x"), ErrorKind.TRANSIENT, True),
        (httpx.ReadTimeout("x"), ErrorKind.TRANSIENT, True),
        (httpx.ConnectError("x"), ErrorKind.TRANSIENT, False),
        (httpx.ReadError("x"), ErrorKind.TRANSIENT, False),
        (httpx.RemoteProtocolError("x"), ErrorKind.TRANSIENT, False),
        (httpx.LocalProtocolError("x"), ErrorKind.UNKNOWN, False),
        (httpx.StreamClosed(), ErrorKind.TRANSIENT, False),
        (httpx.InvalidURL("x"), ErrorKind.UNKNOWN, False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_httpx_errors_map_to_their_kind(error: Exception, kind: ErrorKind, timeout: bool) -> None:
    failure = transport_failure_of(error, Redactor())
    assert (failure.kind, failure.timeout) == (kind, timeout)
    assert type(error).__name__ in failure.message


# --- the adapter on its own: cancellation and closing ----------------------------------------


@pytest.fixture
def adapter(server: FakeServer) -> Iterator[HttpProvider]:
    config = provider(server.openai_url, "openai")
    adapter = http_provider(config, workers=2, clock=SystemClock(), redact=Redactor([MAIN]))
    yield adapter
    adapter.close()


def _hanging_call(make_call: MakeCall, **fields: Any) -> ProviderCall:
    clock = SystemClock()
    return make_call(
        api_key=MAIN,
        clock=clock,
        deadline=clock.now() + 30,
        first_token_timeout=None,
        idle_timeout=30.0,
        **fields,
    )


def _fails_promptly(
    adapter: HttpProvider,
    call: ProviderCall,
    interrupt: Callable[[], None],
    server: FakeServer,
    calls_before: int,
) -> ProviderFailure:
    outcome: list[ProviderFailure] = []

    def read() -> None:
        try:
            list(adapter.open(call))
        except ProviderFailure as failure:
            outcome.append(failure)

    reader = threading.Thread(target=read)
    reader.start()
    assert server.wait_for(lambda s: len(s.calls) == calls_before + 1, timeout=30)
    interrupt()
    reader.join(timeout=SLACK + 1)
    assert not reader.is_alive()
    return outcome[0]


@pytest.mark.parametrize("reused", [False, True], ids=["new-connection", "keep-alive"])
def test_cancel_ends_a_hanging_call(
    server: FakeServer, adapter: HttpProvider, make_call: MakeCall, reused: bool
) -> None:
    if reused:  # a reused connection has no connect trace: its socket is learnt later
        list(adapter.open(_hanging_call(make_call)))
    server.default = Hang()
    call = _hanging_call(make_call)
    failure = _fails_promptly(adapter, call, call.cancel.set, server, int(reused))
    assert "cancelled" in str(failure)
    assert server.accepted == 1  # the hanging call really did reuse the first connection
    assert server.wait_for(lambda s: s.open_connections == 0, timeout=30)


def test_cancel_ends_a_committed_stream(
    server: FakeServer, adapter: HttpProvider, make_call: MakeCall
) -> None:
    server.default = Reply("ab", chunks=2, chunk_delay=30.0)
    call = _hanging_call(make_call)
    stream = adapter.open(call)
    assert next(stream) == TextDelta("a")
    call.cancel.set()
    start = time.monotonic()
    with pytest.raises(ProviderFailure, match="cancelled"):
        next(stream)
    assert time.monotonic() - start < SLACK


def test_closing_the_adapter_ends_calls_in_flight_and_its_thread(
    server: FakeServer, adapter: HttpProvider, make_call: MakeCall
) -> None:
    server.default = Hang()
    failure = _fails_promptly(adapter, _hanging_call(make_call), adapter.close, server, 0)
    assert "closed" in str(failure)
    assert not [t for t in threading.enumerate() if t.name.startswith("switchover-watchdog")]
    with pytest.raises(ProviderFailure, match="closed"):
        next(adapter.open(_hanging_call(make_call)))


# --- the budgets start when the request is sent ----------------------------------------------


@pytest.mark.parametrize(
    ("first_token", "limit"), [(2.0, 52.0), (None, 100.0)], ids=["fallback-left", "last-entry"]
)
def test_a_calls_budgets_start_when_its_request_is_sent(
    make_call: MakeCall, first_token: float | None, limit: float
) -> None:
    clock = FakeClock(start=0.0)
    call = make_call(clock=clock, deadline=100.0, first_token_timeout=first_token, idle_timeout=1.0)
    watch = Watch(Watchdog(clock, "test"), call)
    # Waiting for the client's pool or a connection: only the request deadline applies.
    assert (watch.limit, watch.expires) == (100.0, 100.0)
    assert "deadline" in watch.expired(100.0).message
    clock.advance(50.0)
    watch.trace("http11.send_request_headers.started", {})
    assert (watch.limit, watch.expires) == (limit, 51.0)
    if first_token is not None:
        assert "no first token within 2s" in watch.expired(52.0).message


class SteppedClock:
    """Time moves only when the test says; waits are real (so the watchdog thread blocks
    until then). ``seen_by_watchdog`` is the last time the watchdog thread read."""

    def __init__(self) -> None:
        self._now = 0.0
        self._changed = threading.Condition()
        self.seen_by_watchdog = -1.0

    def now(self) -> float:
        if threading.current_thread().name.startswith("switchover-watchdog"):
            with self._changed:
                self.seen_by_watchdog = self._now
                self._changed.notify_all()
        return self._now

    def wall(self) -> float:
        return 1_767_225_600.0 + self._now

    def advance(self, seconds: float) -> None:
        with self._changed:
            self._now += seconds
            self._changed.notify_all()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        end = self._now + timeout
        with self._changed:
            # Polls the event: setting it does not notify this condition.
            while not event.is_set() and self._now < end:
                self._changed.wait(0.01)
        return event.is_set()

    def watchdog_reads(self, at_least: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.seen_by_watchdog >= at_least, timeout=30)


def test_time_queued_in_the_client_before_sending_is_not_the_providers(
    server: FakeServer, make_call: MakeCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request held before it is sent (here in the connection pool, as under a burst of
    streams) for longer than its first-token and idle budgets is not timed out: those run
    from the moment the request goes out (DESIGN: "from sending the request")."""
    clock = SteppedClock()
    adapter = http_provider(
        provider(server.openai_url, "openai"), workers=2, clock=clock, redact=Redactor([MAIN])
    )
    queued, release = threading.Event(), threading.Event()
    enter_pool = httpcore.ConnectionPool.handle_request

    def held(pool: httpcore.ConnectionPool, request: httpcore.Request) -> httpcore.Response:
        queued.set()
        release.wait(30)
        return enter_pool(pool, request)

    monkeypatch.setattr(httpcore.ConnectionPool, "handle_request", held)
    server.default = Reply("ab", chunks=2)
    call = make_call(
        api_key=MAIN, clock=clock, deadline=100.0, first_token_timeout=1.0, idle_timeout=1.0
    )
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(list(adapter.open(call)))
        except ProviderFailure as failure:
            outcome.append(failure)

    reader = threading.Thread(target=read)
    try:
        reader.start()
        assert queued.wait(30)
        clock.advance(5.0)  # both budgets would have run out five times over
        assert clock.watchdog_reads(5.0)  # and the watchdog has looked since
        release.set()
        reader.join(30)
    finally:
        release.set()
        adapter.close()
    assert not reader.is_alive()
    events = outcome[0]
    assert isinstance(events, list), events
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("a"), TextDelta("b")]


# --- HTTPS ----------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """A FakeServer over HTTPS with a throwaway certificate the clients trust."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx trusts it (trust_env)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with FakeServer(tls=context) as fake:
        yield fake


def test_https_round_trip(tls_server: FakeServer) -> None:
    tls_server.default = Reply("secure", chunks=2)
    assert tls_server.url.startswith("https://")
    with Runtime(make_config(tls_server, "anthropic")) as rt:
        assert rt.complete(ask()).text == "secure"


def test_cancel_ends_a_hanging_https_call(tls_server: FakeServer, make_call: MakeCall) -> None:
    # The TLS socket replaces the TCP one during the handshake: the watchdog must shut that.
    tls_server.default = Hang()
    config = provider(tls_server.openai_url, "openai")
    https = http_provider(config, workers=1, clock=SystemClock(), redact=Redactor([MAIN]))
    try:
        call = _hanging_call(make_call)
        failure = _fails_promptly(https, call, call.cancel.set, tls_server, 0)
    finally:
        https.close()
    assert "cancelled" in str(failure)
