"""The seed port reproduces the reference's documented behaviour, defects included."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from switchover.bench.baselines.seed import (
    ErrorKind,
    FailoverManager,
    HealthRegistry,
    LlmRequest,
    SeedError,
    backoff_delay_ms,
    classify_error,
    classify_str,
    cooling_backoff,
    is_auth_error,
    is_max_tokens_error,
    is_rate_limit,
    status_display,
)

ANTHROPIC = (
    "Anthropic API error {status} at https://api.anthropic.com/v1/messages (model={model}): {body}"
)
OVERLOADED = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param(
            ANTHROPIC.format(
                status="529 <unknown status code>", model="claude-3-haiku-20240307", body=OVERLOADED
            ),
            ErrorKind.AUTH,
            id="403-inside-haiku-model-id",
        ),
        pytest.param(
            ANTHROPIC.format(
                status="529 <unknown status code>", model="claude-sonnet-4-5", body=OVERLOADED
            ),
            ErrorKind.TRANSIENT,
            id="overloaded-sonnet",
        ),
        pytest.param("OpenAI API error 429 Too Many Requests: {}", ErrorKind.RATE_LIMIT, id="429"),
        pytest.param(
            'OpenAI API error 429 Too Many Requests: {"error":{"code":"insufficient_quota"}}',
            ErrorKind.BALANCE,
            id="quota-before-rate-limit",
        ),
        pytest.param(
            "OpenAI API error 404 Not Found: The model `gpt-4o` does not exist or you do not "
            "have access to it.",
            ErrorKind.MODEL_MISSING,
            id="model-missing",
        ),
        pytest.param("OpenAI API error 400 Bad Request: nope", ErrorKind.UNKNOWN, id="bare-400"),
        pytest.param("connect to localhost:4010 failed", ErrorKind.AUTH, id="port-4010"),
        pytest.param(
            "rsclaw turn failed 413: session_ctx_exceeded",
            ErrorKind.CONTEXT_EXCEEDED,
            id="rsclaw-ctx",
        ),
        pytest.param("余额不足", ErrorKind.BALANCE, id="cjk-balance"),
    ],
)
def test_substring_classification(text: str, kind: ErrorKind) -> None:
    assert classify_str(text) is kind


def test_the_layers_read_different_parts_of_the_error() -> None:
    # The profile pre-checks read only the outer message; classify_error the whole chain.
    error = SeedError("OpenAI request failed", "error sending request", "HTTP 429 from proxy")
    assert not is_rate_limit(error)
    assert classify_error(error) is ErrorKind.RATE_LIMIT
    overflow = SeedError("OpenAI API error 400 Bad Request: context_length_exceeded")
    assert is_max_tokens_error(overflow)
    assert not is_rate_limit(SeedError("429: max_tokens too large"))
    assert is_auth_error(SeedError("OpenAI API error 401 Unauthorized: {}"))


def test_constants() -> None:
    assert [backoff_delay_ms(n) for n in range(8)] == [
        400,
        824,
        1699,
        3497,
        6553,
        13504,
        27801,
        30510,
    ]
    assert [cooling_backoff(n, ErrorKind.RATE_LIMIT) for n in (1, 2, 8, 9)] == [30, 60, 3600, 3600]
    assert [cooling_backoff(n, ErrorKind.TRANSIENT) for n in (1, 2, 3)] == [10, 20, 40]
    assert status_display(429) == "429 Too Many Requests"
    assert status_display(529) == "529 <unknown status code>"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Provider:
    """Answers from a script; records every request (and the one key it holds)."""

    def __init__(self, *answers: SeedError | str) -> None:
        self.answers = list(answers)
        self.key = "sk-the-only-key"
        self.calls: list[tuple[str, str, int | None]] = []

    def stream(self, req: LlmRequest) -> Iterator[str]:
        self.calls.append((req.model, self.key, req.max_tokens))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, SeedError):
            raise answer
        return iter([answer])


def manager(
    registry: dict[str, Provider], clock: Clock, order: dict[str, list[str]]
) -> FailoverManager:
    return FailoverManager(
        order=order,
        fallbacks=[],
        registry=registry,  # type: ignore[arg-type]
        health=HealthRegistry(lambda s: s, clock),
        scale=lambda s: s / 1e6,  # sleeps shrink to microseconds; cooldowns use `clock`
        clock=clock,
        stopped=threading.Event(),
    )


def request(*fallbacks: str) -> LlmRequest:
    return LlmRequest("openai/gpt-4o", list(fallbacks), [{"role": "user", "content": "hi"}], 256)


RATE = SeedError("OpenAI API error 429 Too Many Requests: {}")


def test_rotation_resends_the_same_key_and_ignores_retry_after() -> None:
    clock = Clock()
    openai = Provider(RATE)
    claude = Provider("hello")
    m = manager({"openai": openai, "claude": claude}, clock, {"openai": ["main", "backup"]})
    m._scale = lambda s: s  # cooldowns in plain seconds for this check
    stream, served = m.call(request("claude/claude-sonnet-4-5"))
    assert list(stream) == ["hello"]
    assert served == "claude/claude-sonnet-4-5@default"
    assert [key for _, key, _ in openai.calls] == ["sk-the-only-key", "sk-the-only-key"]
    assert m.cooldowns == {"openai/main": 5.0, "openai/backup": 5.0}


def test_failure_counts_vanish_when_a_cooldown_expires() -> None:
    clock = Clock()
    m = manager({}, clock, {})
    m.set_cooldown("openai", "main", 5.0)
    assert m.hit_count("openai", "main") == 1
    clock.now = 5.0
    assert not m.is_cooling_down("openai", "main")
    assert m.hit_count("openai", "main") == 0  # so the backoff never grows


def test_success_is_recorded_at_headers_and_max_tokens_stays_dropped() -> None:
    clock = Clock()
    overflow = SeedError("OpenAI API error 400 Bad Request: max_tokens is too large")
    openai = Provider(overflow)
    claude = Provider("fine")
    m = manager({"openai": openai, "claude": claude}, clock, {})
    req = request("claude/claude-sonnet-4-5")
    with pytest.raises(SeedError, match="output token limit exceeded"):
        m.call(req)
    assert [mt for _, _, mt in openai.calls] == [256, None]
    assert req.max_tokens is None  # the shared request keeps the drop for later entries


def test_health_rows_share_their_count_across_kinds_and_never_disable() -> None:
    clock = Clock()
    health = HealthRegistry(lambda s: s, clock)
    health.ensure(["m"])
    health.record_failure("m", ErrorKind.TRANSIENT, "blip")
    health.record_failure("m", ErrorKind.TRANSIENT, "blip")
    health.record_failure("m", ErrorKind.AUTH, "401")
    # n = 3 across kinds and auth disables: one hour, and the row says Cooling.
    assert not health.is_callable("m")
    clock.now = 3599.0
    assert not health.is_callable("m")
    clock.now = 3600.0
    assert health.is_callable("m")  # every caller may probe at once: no single probe
