"""The chain walk through a running Runtime: ScriptedProvider faults on a FakeClock.

Each test scripts the provider per (model id, key), runs requests, and checks what the
caller sees (events, errors, attempts), what reached the provider (calls, keys,
max_tokens, timing) and what the key and health actors recorded.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from typing import Any

import bodies as b
import pytest
from support import (
    CLAUDE_KEY,
    OPENAI_BACKUP,
    OPENAI_MAIN,
    PLAIN_KEY,
    StartRuntime,
    flush,
    make_config,
)
from switchover import (
    ChainExhausted,
    CooldownConfig,
    DeadlineExceeded,
    Done,
    ErrorKind,
    HealthState,
    ProviderCall,
    ProviderFailure,
    ReasoningDelta,
    Request,
    RequestRejected,
    RetryConfig,
    Runtime,
    StreamInterrupted,
    TextDelta,
    ToolCall,
    classify,
)
from switchover.testing import (
    Cut,
    Fail,
    FakeClock,
    Hang,
    Refuse,
    Reply,
    ScriptedProvider,
    StreamError,
)

K = ErrorKind
GPT = "openai/gpt-4o"
MINI = "openai/gpt-4o-mini"
HAIKU = "claude/claude-3-haiku-20240307"
LLAMA = "local/llama3"
MESSAGES = ({"role": "user", "content": "hi"},)


def req(model: str = GPT, *fallbacks: str, **kwargs: Any) -> Request:
    return Request(model=model, messages=MESSAGES, fallback_models=fallbacks, **kwargs)


def key_state(rt: Runtime, provider: str, profile: str) -> dict[str, Any]:
    flush(rt)
    return dict(rt.inspect().actor(f"profile:{provider}/{profile}").state)


def health(rt: Runtime, model: str) -> Any:
    flush(rt)
    return rt.health().get(model)


def state_of(rt: Runtime, model: str) -> HealthState:
    """The model's health state; a model with no row (never failed, or healthy again and
    not named by the configuration, so dropped) is healthy."""
    row = health(rt, model)
    return HealthState.HEALTHY if row is None else row.state


def later(rt: Runtime, clock: FakeClock, seconds: float) -> None:
    """Move time on once the actors have recorded what happened so far (at its time)."""
    flush(rt)
    clock.advance(seconds)


def outcomes(attempts: Any) -> list[tuple[str, str | None, str, Any]]:
    return [(a.model, a.profile, a.outcome, a.kind) for a in attempts]


# --- success ---------------------------------------------------------------------------------


def test_a_successful_stream_commits_and_reports_who_served_it(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script(
        "gpt-4o",
        Reply(
            "hello world",
            chunks=3,
            reasoning="think",
            tool_calls=(ToolCall(id="t1", name="f", arguments="{}"),),
        ),
    )
    rt = start()
    with rt.stream(req()) as stream:
        events = list(stream)
    assert isinstance(events[0], ReasoningDelta)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "hello world"
    assert isinstance(events[-2], ToolCall)
    assert isinstance(events[-1], Done)
    assert (stream.served_by.model, stream.served_by.provider, stream.served_by.profile) == (
        GPT,
        "openai",
        "main",
    )
    assert outcomes(stream.attempts) == [(GPT, "main", "ok", None)]
    assert [c.key for c in scripted.calls] == [OPENAI_MAIN]
    state = key_state(rt, "openai", "main")
    assert (state["calls"], state["successes"], state["failures"]) == (1, 1, 0)


def test_complete_collects_the_whole_answer(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Reply("abc", chunks=3, reasoning="r", finish_reason="length"))
    done = start().complete(req())
    assert (done.text, done.reasoning, done.finish_reason) == ("abc", "r", "length")
    assert done.served_by.profile == "main"
    assert len(done.attempts) == 1


# --- key kinds: next profile -----------------------------------------------------------------


def test_rate_limit_rotates_to_the_next_profile_and_cools_the_key(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT), key=OPENAI_MAIN)
    rt = start()
    first = rt.complete(req())
    assert first.served_by.profile == "backup"
    assert outcomes(first.attempts) == [
        (GPT, "main", "error", K.RATE_LIMIT),
        (GPT, "backup", "ok", None),
    ]
    assert first.attempts[0].status == 429
    assert first.attempts[0].code == "rate_limit_exceeded"
    assert 4.5 <= key_state(rt, "openai", "main")["cooldown_remaining"] <= 5.5
    assert health(rt, GPT) is None  # a key fault that another key absorbed is not the model's
    second = rt.complete(req())
    assert [(a.profile, a.outcome) for a in second.attempts] == [
        ("main", "skipped"),
        ("backup", "ok"),
    ]
    assert "cooling" in second.attempts[0].message
    assert [c.key for c in scripted.calls] == [OPENAI_MAIN, OPENAI_BACKUP, OPENAI_BACKUP]


def test_when_every_profile_is_rate_limited_the_model_fails_and_the_next_model_serves(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT))
    rt = start()
    done = rt.complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures) == (HealthState.COOLING, 1)
    assert row.cooldown_remaining == pytest.approx(30.0)
    again = rt.complete(req(GPT, HAIKU))
    assert again.attempts[0].outcome == "skipped"
    assert again.attempts[0].profile is None
    assert len(scripted.calls_to("gpt-4o")) == 2


def test_auth_rotates_profiles_and_the_key_cooldown_escalates(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(401, b.OPENAI_BAD_KEY), key=OPENAI_MAIN)
    rt = start()
    cooldowns = []
    for _ in range(4):
        assert rt.complete(req()).served_by.profile == "backup"
        state = key_state(rt, "openai", "main")
        cooldowns.append(state["cooldown_remaining"])
        clock.advance(state["cooldown_remaining"])  # the next request probes the key again
    assert state["consecutive_failures"] == 4
    for n, seconds in enumerate(cooldowns):
        assert 5.0 * 2**n * 0.9 - 1e-6 <= seconds <= max(5.0, 5.0 * 2**n * 1.1) + 1e-6


def test_403_rotates_profiles_too(start: StartRuntime, scripted: ScriptedProvider) -> None:
    # Defect 2: the reference's key layer did not know 403; one classifier serves both.
    scripted.script("gpt-4o", Fail(403, b.ANTHROPIC_PERMISSION), key=OPENAI_MAIN)
    rt = start()
    assert rt.complete(req()).served_by.profile == "backup"
    assert key_state(rt, "openai", "main")["last_error_kind"] == "auth"


def test_balance_cools_the_key_for_profile_max(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(429, b.OPENAI_QUOTA), key=OPENAI_MAIN)
    rt = start()
    assert rt.complete(req()).served_by.profile == "backup"
    assert key_state(rt, "openai", "main")["cooldown_remaining"] == 300.0


def test_an_in_stream_rate_limit_without_429_anywhere_still_cools_the_key(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    # Defect 2: a rate_limit body without "429" skipped the reference's key cooldown.
    scripted.script("gpt-4o", StreamError(b.ANTHROPIC_RATE_LIMIT), key=OPENAI_MAIN)
    rt = start()
    done = rt.complete(req())
    assert done.served_by.profile == "backup"
    assert done.attempts[0].kind is K.RATE_LIMIT
    assert done.attempts[0].status is None
    assert key_state(rt, "openai", "main")["cooldown_remaining"] > 0


def test_each_profile_sends_its_own_key(start: StartRuntime, scripted: ScriptedProvider) -> None:
    # Defect 4: the reference's profile rotation resent the same key.
    scripted.script("gpt-4o", Fail(401, b.OPENAI_BAD_KEY), key=OPENAI_MAIN)
    scripted.script("gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT), key=OPENAI_BACKUP)
    scripted.script("claude-3-haiku-20240307", Reply())
    scripted.script("llama3", Reply())
    rt = start()
    rt.complete(req(GPT, HAIKU))
    rt.complete(req(LLAMA))
    assert [(c.model, c.key) for c in scripted.calls] == [
        ("gpt-4o", OPENAI_MAIN),
        ("gpt-4o", OPENAI_BACKUP),
        ("claude-3-haiku-20240307", CLAUDE_KEY),
        ("llama3", PLAIN_KEY),
    ]


# --- keys are per (provider, profile) ---------------------------------------------------------


def test_a_cooldown_on_one_providers_default_does_not_touch_anothers_default(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("claude-3-haiku-20240307", Fail(429, b.ANTHROPIC_RATE_LIMIT))
    rt = start()
    with pytest.raises(ChainExhausted):
        rt.complete(req(HAIKU))
    assert key_state(rt, "claude", "default")["cooldown_remaining"] > 0
    assert key_state(rt, "local", "default")["cooldown_remaining"] is None
    done = rt.complete(req(LLAMA))
    assert (done.served_by.profile, done.attempts[0].outcome) == ("default", "ok")


def test_failure_counts_are_per_provider_and_profile(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("claude-3-haiku-20240307", Fail(429, b.ANTHROPIC_RATE_LIMIT))
    rt = start()
    for _ in range(2):
        with pytest.raises(ChainExhausted):
            rt.complete(req(HAIKU))
        flush(rt)  # the failure is recorded at the time it happened
        clock.advance(3_600.0)
    assert key_state(rt, "claude", "default")["consecutive_failures"] == 2
    assert key_state(rt, "local", "default")["consecutive_failures"] == 0
    assert key_state(rt, "openai", "main")["consecutive_failures"] == 0


def test_a_key_failure_count_survives_cooldown_expiry(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    # Defect 3: the reference deleted the count on expiry, so backoff never grew.
    scripted.script(
        "gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT), Fail(429, b.OPENAI_RATE_LIMIT), Reply(),
        key=OPENAI_MAIN,
    )  # fmt: skip
    rt = start()
    rt.complete(req())
    first = key_state(rt, "openai", "main")
    clock.advance(first["cooldown_remaining"] + 0.001)
    assert key_state(rt, "openai", "main")["consecutive_failures"] == 1  # expired, still counted
    rt.complete(req())
    second = key_state(rt, "openai", "main")
    assert second["consecutive_failures"] == 2
    assert second["cooldown_remaining"] >= 9.0
    clock.advance(second["cooldown_remaining"] + 0.001)
    assert rt.complete(req()).served_by.profile == "main"
    assert key_state(rt, "openai", "main")["consecutive_failures"] == 0


def test_an_expired_key_is_probed_and_put_back_in_service(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT), Reply(), key=OPENAI_MAIN)
    rt = start()
    rt.complete(req())
    later(rt, clock, 10.0)
    assert rt.complete(req()).served_by.profile == "main"
    assert key_state(rt, "openai", "main")["cooldown_remaining"] is None


# --- model kinds -----------------------------------------------------------------------------


def test_model_missing_goes_to_the_next_model_without_rotating_keys(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(404, b.OPENAI_MODEL_MISSING))
    rt = start()
    done = rt.complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    assert [c.key for c in scripted.calls_to("gpt-4o")] == [OPENAI_MAIN]
    row = health(rt, GPT)
    assert (row.state, row.cooldown_remaining) == (HealthState.COOLING, 60.0)
    assert "model_not_found" in (row.last_error or "")


def test_transient_errors_retry_in_place_then_go_to_the_next_model(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(500, b.OPENAI_SERVER_ERROR))
    rt = start()
    done = rt.complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    calls = scripted.calls_to("gpt-4o")
    assert [c.key for c in calls] == [OPENAI_MAIN] * 3  # RetryConfig.attempts, same key
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]
    assert 0.0 <= gaps[0] <= 0.5
    assert 0.0 <= gaps[1] <= 1.0
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures) == (HealthState.COOLING, 1)
    assert row.cooldown_remaining == pytest.approx(10.0, abs=1.5)
    assert outcomes(done.attempts)[:3] == [(GPT, "main", "error", K.TRANSIENT)] * 3


@pytest.mark.parametrize("attempts", [1, 5])
def test_retry_config_sets_the_number_of_tries(
    start: StartRuntime, scripted: ScriptedProvider, attempts: int
) -> None:
    scripted.script("gpt-4o", Fail(529, b.ANTHROPIC_OVERLOADED))
    rt = start(make_config(retry=RetryConfig(attempts=attempts, min_delay=0.0, max_delay=0.0)))
    rt.complete(req(GPT, HAIKU))
    assert len(scripted.calls_to("gpt-4o")) == attempts


def test_a_retry_succeeding_in_place_serves_the_request(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Refuse(), Fail(502, b.CLOUDFLARE_502), Reply("third time"))
    rt = start()
    done = rt.complete(req(GPT, HAIKU))
    assert (done.text, done.served_by.model) == ("third time", GPT)
    assert [a.outcome for a in done.attempts] == ["error", "error", "ok"]
    # The retries ran on probation (the model's row appears); their success ends it.
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures) == (HealthState.HEALTHY, 0)


def test_a_hung_target_goes_to_the_next_model_at_once(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Hang())
    rt = start()
    began = clock.now()
    done = rt.complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    assert len(scripted.calls_to("gpt-4o")) == 1  # not retried in place
    assert clock.now() - began == pytest.approx(60.0)  # first_token_timeout
    assert health(rt, GPT).state is HealthState.COOLING


def test_a_slow_first_token_is_a_timeout_too(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Reply(delay=61.0))
    done = start().complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    assert done.attempts[0].kind is K.TRANSIENT


def test_the_last_chain_entry_may_wait_until_the_deadline(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Reply("slow but fine", delay=90.0))
    assert start().complete(req(GPT)).text == "slow but fine"


def test_invalid_request_goes_to_the_next_model_without_touching_health(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(400, b.OPENAI_TOO_LONG_STRING))
    rt = start()
    done = rt.complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    assert len(scripted.calls_to("gpt-4o")) == 1
    assert health(rt, GPT) is None
    assert key_state(rt, "openai", "main")["cooldown_remaining"] is None


def test_unknown_is_retried_in_place_then_the_next_model_without_touching_health(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", StreamError("something odd happened"))
    rt = start()
    done = rt.complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    assert len(scripted.calls_to("gpt-4o")) == 3
    assert {a.kind for a in done.attempts[:3]} == {K.UNKNOWN}
    assert health(rt, GPT) is None


class _Empty:
    """A provider whose 200 stream ends before any event."""

    def __init__(self) -> None:
        self.calls = 0

    def open(self, call: ProviderCall) -> Iterator[Any]:
        self.calls += 1
        return iter(())

    def close(self) -> None:
        pass


def test_an_empty_200_stream_is_unknown(start: StartRuntime) -> None:
    empty = _Empty()
    rt = start(provider=empty)
    with pytest.raises(ChainExhausted) as raised:
        rt.complete(req(GPT))
    assert {a.kind for a in raised.value.attempts} == {K.UNKNOWN}
    assert empty.calls == 3
    assert health(rt, GPT) is None


def test_an_in_stream_error_before_any_content_fails_over_transparently(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", StreamError(b.ANTHROPIC_OVERLOADED))
    done = start().complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    assert [a.kind for a in done.attempts[:3]] == [K.TRANSIENT] * 3


# --- max_tokens ------------------------------------------------------------------------------


def test_output_limit_drops_max_tokens_once_for_that_model(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(400, b.OPENAI_MAX_TOKENS), Reply("fits"))
    rt = start()
    done = rt.complete(req(GPT, max_tokens=100_000))
    assert done.text == "fits"
    assert [c.max_tokens for c in scripted.calls] == [100_000, None]
    assert health(rt, GPT) is None


def test_max_tokens_is_dropped_for_that_model_only(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    # Defect 6: the reference dropped max_tokens for the rest of the chain.
    scripted.script("gpt-4o", Fail(400, b.ANTHROPIC_MAX_TOKENS), Fail(500, b.OPENAI_SERVER_ERROR))
    rt = start()
    done = rt.complete(req(GPT, HAIKU, max_tokens=512))
    assert done.served_by.model == HAIKU
    assert [c.max_tokens for c in scripted.calls_to("gpt-4o")] == [512, None, None, None]
    assert [c.max_tokens for c in scripted.calls_to("claude-3-haiku-20240307")] == [512]


def test_max_tokens_stays_dropped_for_the_models_next_key(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    # The drop is per model, not per key: the backup key serves the same model.
    scripted.script(
        "gpt-4o", Fail(400, b.OPENAI_MAX_TOKENS), Fail(429, b.OPENAI_RATE_LIMIT), key=OPENAI_MAIN
    )
    done = start().complete(req(GPT, max_tokens=100_000))
    assert done.served_by.profile == "backup"
    assert [(c.key, c.max_tokens) for c in scripted.calls] == [
        (OPENAI_MAIN, 100_000),
        (OPENAI_MAIN, None),
        (OPENAI_BACKUP, None),
    ]


def test_output_limit_again_after_the_drop_rejects_and_tries_no_other_model(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(400, b.OPENAI_CONTEXT_COMPLETION))
    rt = start()
    with pytest.raises(RequestRejected) as raised:
        rt.complete(req(GPT, HAIKU, max_tokens=8000))
    assert raised.value.kind is K.OUTPUT_LIMIT
    assert "max_tokens" in str(raised.value)
    assert len(raised.value.attempts) == 2
    assert scripted.calls_to("claude-3-haiku-20240307") == []
    assert health(rt, GPT) is None


def test_output_limit_without_max_tokens_is_not_the_callers_fault(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    # Defect 6: the reference said "lower max_tokens" even when none was set.
    scripted.script("gpt-4o", Fail(400, b.ANTHROPIC_MAX_TOKENS))
    scripted.script("claude-3-haiku-20240307", Fail(400, b.ANTHROPIC_MAX_TOKENS))
    rt = start()
    assert rt.complete(req(GPT, LLAMA)).served_by.model == LLAMA
    assert len(scripted.calls_to("gpt-4o")) == 1
    with pytest.raises(ChainExhausted) as raised:
        rt.complete(req(HAIKU))
    assert "max_tokens was dropped" not in str(raised.value)
    assert "lower" not in str(raised.value).lower()


# --- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        pytest.param(Fail(400, b.OPENAI_CONTEXT), K.CONTEXT_EXCEEDED, id="context_exceeded"),
        pytest.param(Fail(400, b.ANTHROPIC_PROMPT_TOO_LONG), K.CONTEXT_EXCEEDED, id="prompt-long"),
        pytest.param(StreamError(b.OPENAI_CONTEXT), K.CONTEXT_EXCEEDED, id="in-stream-context"),
        pytest.param(Fail(400, b.ANTHROPIC_ROLES), K.BAD_REQUEST, id="bad_request"),
        pytest.param(Fail(400, b.OPENAI_INVALID_TYPE), K.BAD_REQUEST, id="bad_request-code"),
    ],
)
def test_request_faults_reject_with_no_further_model(
    start: StartRuntime, scripted: ScriptedProvider, fault: Any, kind: ErrorKind
) -> None:
    scripted.script("gpt-4o", fault)
    rt = start()
    with pytest.raises(RequestRejected) as raised:
        rt.complete(req(GPT, HAIKU, max_tokens=100))
    assert raised.value.kind is kind
    assert outcomes(raised.value.attempts) == [(GPT, "main", "error", kind)]
    assert scripted.calls_to("claude-3-haiku-20240307") == []
    assert health(rt, GPT) is None
    assert key_state(rt, "openai", "main")["cooldown_remaining"] is None


@pytest.mark.parametrize(
    "chain",
    [
        pytest.param(("nowhere/gpt-4o",), id="primary"),
        pytest.param((GPT, "nowhere/x"), id="per-request-fallback"),
        pytest.param((GPT, "no-slash"), id="not-provider-slash-model"),
    ],
)
def test_chain_entries_naming_unknown_providers_reject_before_any_call(
    start: StartRuntime, scripted: ScriptedProvider, chain: tuple[str, ...]
) -> None:
    rt = start()
    with pytest.raises(RequestRejected) as raised:
        rt.complete(req(*chain))
    assert raised.value.kind is K.BAD_REQUEST
    assert scripted.calls == []


def test_provider_prefix_is_the_first_segment(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    rt = start()
    done = rt.complete(req("local/meta-llama/Llama-3-8b"))
    assert done.served_by.model == "local/meta-llama/Llama-3-8b"
    assert scripted.calls[0].model == "meta-llama/Llama-3-8b"


# --- aliases, health table -------------------------------------------------------------------


def test_an_alias_and_its_target_share_one_health_row(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o-mini", Fail(404, b.OPENAI_MODEL_MISSING))
    rt = start()
    rt.complete(req("fast", HAIKU))
    assert health(rt, MINI).state is HealthState.COOLING
    assert "fast" not in rt.health()
    again = rt.complete(req(MINI, HAIKU))
    assert (again.attempts[0].model, again.attempts[0].outcome) == (MINI, "skipped")
    assert len(scripted.calls_to("gpt-4o-mini")) == 1
    rt.reset("fast")
    assert health(rt, MINI).state is HealthState.HEALTHY


def test_a_chain_is_deduplicated_by_resolved_model(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o-mini", Fail(404, b.OPENAI_MODEL_MISSING))
    rt = start(make_config(fallbacks=(MINI,)))
    with pytest.raises(ChainExhausted):
        rt.complete(req("fast", MINI))
    assert len(scripted.calls_to("gpt-4o-mini")) == 1


def test_health_lists_configured_models_and_every_model_that_failed(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(404, b.OPENAI_MODEL_MISSING))
    rt = start(make_config(fallbacks=(HAIKU,)))
    assert set(rt.health()) == {HAIKU, MINI}
    rt.complete(req(GPT))
    assert set(health(rt, GPT) and rt.health()) == {HAIKU, MINI, GPT}
    assert rt.health()[HAIKU].state is HealthState.HEALTHY


def test_global_fallbacks_come_after_per_request_fallbacks(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(404, b.OPENAI_MODEL_MISSING))
    scripted.script("gpt-4o-mini", Fail(404, b.OPENAI_MODEL_MISSING))
    rt = start(make_config(fallbacks=(LLAMA,)))
    done = rt.complete(req(GPT, "fast"))
    assert [a.model for a in done.attempts] == [GPT, MINI, LLAMA]


# --- success and failure after commit --------------------------------------------------------


def test_a_stream_cut_after_commit_raises_and_is_recorded_as_a_failure(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    # Defect 5: the reference recorded success when the headers arrived.
    scripted.script("gpt-4o", Cut(after=2, text="par"))
    rt = start()
    received: list[str] = []
    with rt.stream(req(GPT, HAIKU)) as stream, pytest.raises(StreamInterrupted) as raised:
        received.extend(e.text for e in stream if isinstance(e, TextDelta))
    assert received == ["par", "par"]
    error = raised.value
    assert (error.partial_text, error.kind, error.served_by.model) == ("parpar", K.TRANSIENT, GPT)
    assert scripted.calls_to("claude-3-haiku-20240307") == []  # nothing spliced in
    assert stream.attempts[-1].outcome == "error"
    assert health(rt, GPT).state is HealthState.COOLING
    state = key_state(rt, "openai", "main")
    assert (state["successes"], state["failures"]) == (0, 1)


def test_a_stream_that_ends_without_done_is_interrupted(start: StartRuntime) -> None:
    class NoDone:
        def open(self, call: ProviderCall) -> Iterator[Any]:
            return iter([TextDelta("half")])

        def close(self) -> None:
            pass

    rt = start(provider=NoDone())
    with pytest.raises(StreamInterrupted) as raised:
        rt.complete(req(GPT))
    assert raised.value.partial_text == "half"


def test_a_probe_commit_ends_probation_and_its_clean_end_clears_the_count(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(500, b.OPENAI_SERVER_ERROR), Reply("ok", chunks=2), Reply())
    rt = start(make_config(retry=RetryConfig(attempts=1)))
    rt.complete(req(GPT, HAIKU))
    later(rt, clock, 10.0)  # cooling over: the next request is the probe
    stream = rt.stream(req(GPT, HAIKU))
    next(stream)
    # Committed: back in service for everyone, but not yet a success.
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures) == (HealthState.HEALTHY, 1)
    assert key_state(rt, "openai", "main")["successes"] == 0
    assert rt.complete(req(GPT, HAIKU)).served_by.model == GPT  # not skipped meanwhile
    list(stream)
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures) == (HealthState.HEALTHY, 0)
    assert key_state(rt, "openai", "main")["successes"] == 2


def test_a_committed_probe_cut_mid_stream_cools_the_model_for_longer(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    # The commit made the model healthy after the probe began; its own verdict still counts.
    scripted.script("gpt-4o", Fail(500, b.OPENAI_SERVER_ERROR), Cut(after=1, text="par"))
    rt = start(make_config(retry=RetryConfig(attempts=1)))
    rt.complete(req(GPT, HAIKU))
    later(rt, clock, 10.0)
    stream = rt.stream(req(GPT, HAIKU))
    next(stream)
    assert health(rt, GPT).state is HealthState.HEALTHY
    with pytest.raises(StreamInterrupted):
        list(stream)
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures, row.cooldown_remaining) == (
        HealthState.COOLING,
        2,
        20.0,
    )


def test_closing_early_counts_as_neither_success_nor_failure(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(500, b.OPENAI_SERVER_ERROR), Reply("a long answer", chunks=5))
    rt = start(make_config(retry=RetryConfig(attempts=1)))
    rt.complete(req(GPT, HAIKU))
    later(rt, clock, 10.0)
    with rt.stream(req(GPT, HAIKU)) as stream:
        next(stream)
    # The commit put the model back in service; closing proved nothing, so the count stays.
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures) == (HealthState.HEALTHY, 1)
    state = key_state(rt, "openai", "main")
    assert (state["calls"], state["successes"], state["failures"]) == (2, 0, 1)
    assert rt.complete(req(GPT, HAIKU)).served_by.model == GPT
    assert health(rt, GPT).consecutive_failures == 0


# --- cooling, probing, disabled --------------------------------------------------------------


def test_a_failed_probe_cools_the_model_for_longer(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(500, b.OPENAI_SERVER_ERROR))
    rt = start(make_config(retry=RetryConfig(attempts=1)))
    rt.complete(req(GPT, HAIKU))
    later(rt, clock, 10.0)
    rt.complete(req(GPT, HAIKU))
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures, row.cooldown_remaining) == (
        HealthState.COOLING,
        2,
        20.0,
    )


def test_disabled_is_reached_after_three_in_a_row_and_left_by_reset(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    # Defect 7: the reference never entered its disabled state.
    scripted.script("gpt-4o", Fail(404, b.OPENAI_MODEL_MISSING))
    rt = start()
    for _ in range(3):
        assert rt.complete(req(GPT, HAIKU)).served_by.model == HAIKU
        row = health(rt, GPT)
        clock.advance(row.cooldown_remaining if row.state is HealthState.COOLING else 0.0)
    assert row.state is HealthState.DISABLED
    assert row.reason is not None
    assert "model_missing" in row.reason
    assert row.cooldown_remaining == pytest.approx(3600.0)
    clock.advance(3_000.0)
    skipped = rt.complete(req(GPT, HAIKU)).attempts[0]
    assert (skipped.outcome, skipped.message) == ("skipped", "model disabled")
    assert len(scripted.calls_to("gpt-4o")) == 3
    scripted.script("gpt-4o", Reply("back"))
    rt.reset(GPT)
    assert state_of(rt, GPT) is HealthState.HEALTHY
    assert rt.complete(req(GPT, HAIKU)).text == "back"


def test_a_disabled_model_is_probed_after_the_probe_interval(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(401, b.OPENAI_BAD_KEY))
    cooldown = CooldownConfig(disable_after=1, disabled_probe_interval=100.0)
    rt = start(make_config(cooldown=cooldown))
    rt.complete(req(GPT, HAIKU))
    assert health(rt, GPT).state is HealthState.DISABLED
    clock.advance(100.0)
    scripted.script("gpt-4o", Reply("probe ok"))
    assert rt.complete(req(GPT, HAIKU)).text == "probe ok"
    assert state_of(rt, GPT) is HealthState.HEALTHY


def test_counts_are_per_kind_in_the_health_table(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    # Defect 7: the reference shared one count across kinds.
    scripted.script(
        "gpt-4o", Fail(500, b.OPENAI_SERVER_ERROR), Fail(500, b.OPENAI_SERVER_ERROR),
        Fail(404, b.OPENAI_MODEL_MISSING),
    )  # fmt: skip
    rt = start(make_config(retry=RetryConfig(attempts=1)))
    for _ in range(3):
        rt.complete(req(GPT, HAIKU))
        clock.advance(health(rt, GPT).cooldown_remaining)
    row = health(rt, GPT)
    assert row.consecutive_failures == 1  # model_missing once, not "three failures"
    assert row.state is HealthState.PROBING


def test_reset_without_a_model_resets_every_model_and_every_key(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(404, b.OPENAI_MODEL_MISSING))
    scripted.script("claude-3-haiku-20240307", Fail(404, b.ANTHROPIC_MODEL_MISSING))
    scripted.script("gpt-4o-mini", Fail(401, b.OPENAI_BAD_KEY))
    rt = start()
    with pytest.raises(ChainExhausted):
        rt.complete(req(GPT, HAIKU, MINI))
    assert {health(rt, m).state for m in (GPT, HAIKU, MINI)} == {HealthState.COOLING}
    assert key_state(rt, "openai", "main")["cooldown_remaining"] is not None
    rt.reset()
    assert {state_of(rt, m) for m in (GPT, HAIKU, MINI)} == {HealthState.HEALTHY}
    for profile in ("main", "backup"):
        state = key_state(rt, "openai", profile)
        assert (state["cooldown_remaining"], state["consecutive_failures"]) == (None, 0)
    with pytest.raises(KeyError):
        rt.reset("nowhere/x")


# --- exhaustion and deadlines ----------------------------------------------------------------


def test_the_final_error_keeps_every_attempt(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    # Defect 10: the reference kept only the last model's error.
    scripted.script("gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT), key=OPENAI_MAIN)
    scripted.script("gpt-4o", Fail(401, b.OPENAI_BAD_KEY), key=OPENAI_BACKUP)
    scripted.script("claude-3-haiku-20240307", Fail(529, b.ANTHROPIC_OVERLOADED))
    scripted.script("llama3", Fail(404, b.OPENAI_MODEL_MISSING))
    rt = start(make_config(retry=RetryConfig(attempts=2, min_delay=0.0, max_delay=0.0)))
    with pytest.raises(ChainExhausted) as raised:
        rt.complete(req(GPT, HAIKU, LLAMA))
    assert outcomes(raised.value.attempts) == [
        (GPT, "main", "error", K.RATE_LIMIT),
        (GPT, "backup", "error", K.AUTH),
        (HAIKU, "default", "error", K.TRANSIENT),
        (HAIKU, "default", "error", K.TRANSIENT),
        (LLAMA, "default", "error", K.MODEL_MISSING),
    ]
    assert [a.status for a in raised.value.attempts] == [429, 401, 529, 529, 404]
    message = str(raised.value)
    assert GPT in message
    assert HAIKU in message
    assert LLAMA in message


def test_retry_after_is_none_when_nothing_is_cooling(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(400, b.OPENAI_TOO_LONG_STRING))
    with pytest.raises(ChainExhausted) as raised:
        start().complete(req(GPT))
    assert raised.value.retry_after is None


def test_retry_after_is_honest_when_everything_is_cooling(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(429, b.OPENAI_RATE_LIMIT, headers={"retry-after": "20"}))
    scripted.script("claude-3-haiku-20240307", Fail(429, b.ANTHROPIC_RATE_LIMIT))
    rt = start()
    with pytest.raises(ChainExhausted) as first:
        rt.complete(req(GPT, HAIKU))
    # Both models cool for 30 s (rate_limit base; gpt-4o's keys for at least 20 s).
    assert first.value.retry_after == pytest.approx(30.0)
    clock.advance(12.0)
    with pytest.raises(ChainExhausted) as second:
        rt.complete(req(GPT, HAIKU))
    assert [a.outcome for a in second.value.attempts] == ["skipped", "skipped"]
    assert second.value.retry_after == pytest.approx(18.0)
    assert len(scripted.calls) == 3


def test_retry_after_counts_cooling_keys(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("llama3", Fail(429, b.OPENAI_RATE_LIMIT, headers={"retry-after": "7"}))
    rt = start()
    with pytest.raises(ChainExhausted):
        rt.complete(req(LLAMA))
    rt.reset(LLAMA)  # the model is healthy again; its only key still cools
    flush(rt)
    with pytest.raises(ChainExhausted) as raised:
        rt.complete(req(LLAMA))
    assert raised.value.attempts[0].outcome == "skipped"
    assert raised.value.retry_after == pytest.approx(7.0)


def test_no_attempt_starts_and_no_retry_sleeps_past_the_deadline(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(500, b.OPENAI_SERVER_ERROR, delay=0.7))
    scripted.script("claude-3-haiku-20240307", Fail(500, b.ANTHROPIC_API_ERROR, delay=0.7))
    rt = start(make_config(retry=RetryConfig(attempts=10, min_delay=0.4, max_delay=0.4)))
    began = clock.now()
    with pytest.raises(DeadlineExceeded) as raised:
        rt.complete(req(GPT, HAIKU, timeout=3.0))
    assert scripted.calls
    assert all(c.at < began + 3.0 for c in scripted.calls)
    assert clock.now() <= began + 3.0
    assert len(raised.value.attempts) == len(scripted.calls)


def test_a_hang_on_the_last_entry_ends_at_the_deadline(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Hang())
    rt = start()
    began = clock.now()
    with pytest.raises(DeadlineExceeded) as raised:
        rt.complete(req(GPT, timeout=30.0))
    assert clock.now() - began == pytest.approx(30.0)
    assert len(raised.value.attempts) == 1


def test_request_timeout_from_the_config_applies(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Hang())
    rt = start(make_config(request_timeout=45.0))
    began = clock.now()
    with pytest.raises(DeadlineExceeded):
        rt.complete(req(GPT))
    assert clock.now() - began == pytest.approx(45.0)


# --- single probe ---------------------------------------------------------------------------


class Gated:
    """Fails the first call on ``key`` (on any key when None) with ``failure``; later calls
    on it block until ``gate`` opens, then answer. Calls on other keys answer at once."""

    def __init__(self, failure: Any, key: str | None = None) -> None:
        self.failure = failure
        self.key = key
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def open(self, call: ProviderCall) -> Iterator[Any]:
        if self.key is None or call.api_key == self.key:
            with self._lock:
                self.calls += 1
                first = self.calls == 1
            if first:
                raise ProviderFailure(self.failure)
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return iter([TextDelta("answer"), Done()])

    def close(self) -> None:
        pass


def crowd(rt: Runtime, gated: Gated, callers: int) -> tuple[list[Any], Any]:
    """``callers`` threads send the same request at once. Returns what the others got while
    one call was held inside the provider, then what that held call got."""
    results: queue.Queue[Any] = queue.Queue()

    def call() -> None:
        try:
            results.put(rt.complete(req(GPT)))
        except Exception as error:
            results.put(error)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    assert gated.entered.wait(30)
    others = [results.get(timeout=30) for _ in range(callers - 1)]
    gated.gate.set()
    for thread in threads:
        thread.join(30)
    return others, results.get(timeout=30)


def test_when_cooling_ends_exactly_one_probe_reaches_the_provider(
    start: StartRuntime, clock: FakeClock
) -> None:
    # Defect 8: every caller probed the model at once when its cooldown ended.
    gated = Gated(classify(status=500, body=b.OPENAI_SERVER_ERROR))
    rt = start(make_config(chain_workers=13, retry=RetryConfig(attempts=1)), provider=gated)
    with pytest.raises(ChainExhausted):
        rt.complete(req(GPT))
    later(rt, clock, 10.0)
    skipped, probe = crowd(rt, gated, 12)
    assert gated.calls == 2  # the failure, then exactly one probe
    assert probe.text == "answer"
    for error in skipped:
        assert isinstance(error, ChainExhausted)
        assert [(a.outcome, a.message) for a in error.attempts] == [
            ("skipped", "model probe in flight")
        ]
    assert state_of(rt, GPT) is HealthState.HEALTHY


def test_when_a_key_cooldown_ends_exactly_one_caller_probes_the_key(
    start: StartRuntime, clock: FakeClock
) -> None:
    gated = Gated(classify(status=429, body=b.OPENAI_RATE_LIMIT), key=OPENAI_MAIN)
    rt = start(make_config(chain_workers=11), provider=gated)
    assert rt.complete(req(GPT)).served_by.profile == "backup"
    later(rt, clock, 10.0)
    others, probe = crowd(rt, gated, 10)
    assert gated.calls == 2
    assert probe.served_by.profile == "main"
    for done in others:
        assert done.served_by.profile == "backup"
        assert (done.attempts[0].outcome, done.attempts[0].message) == (
            "skipped",
            "key probe in flight",
        )
    assert key_state(rt, "openai", "main")["cooldown_remaining"] is None


def test_an_idle_gap_after_commit_interrupts_the_stream(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Reply("abc", chunks=3, chunk_delay=61.0))
    rt = start()
    with pytest.raises(StreamInterrupted) as raised:
        rt.complete(req(GPT, HAIKU))
    assert (raised.value.partial_text, raised.value.kind) == ("a", K.TRANSIENT)
    assert scripted.calls_to("claude-3-haiku-20240307") == []
    assert health(rt, GPT).state is HealthState.COOLING


# --- probation: a transient failure retried in place -----------------------------------------


def probation_rule(rt: Runtime, seen: dict[str, Any], retry: Any) -> Any:
    """GPT fails once with a 500; during the holder's in-place retry (answered ``retry``)
    two other requests run: one with a fallback, one with GPT alone."""
    gpt_calls = itertools.count()

    def rule(call: ProviderCall) -> Any:
        if call.model != "gpt-4o":
            return Reply("fallback")
        number = next(gpt_calls)
        if number == 0:
            return Fail(500, b.OPENAI_SERVER_ERROR)
        if number == 1:
            flush(rt)
            seen["state"] = rt.health()[GPT].state
            seen["other"] = rt.complete(req(GPT, HAIKU))
            seen["alone"] = rt.complete(req(GPT))
            return retry
        return Reply("alone")

    return rule


def test_a_transient_failure_puts_the_model_on_probation_while_it_is_retried(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    rt = start()
    seen: dict[str, Any] = {}
    scripted.rule(probation_rule(rt, seen, Reply("retried")))
    done = rt.complete(req(GPT, HAIKU))
    assert (done.text, done.served_by.model) == ("retried", GPT)
    assert seen["state"] is HealthState.PROBING
    # A request with somewhere else to go skips the model while its probe holder retries.
    other = seen["other"]
    assert other.served_by.model == HAIKU
    assert (other.attempts[0].outcome, other.attempts[0].message) == (
        "skipped",
        "model probe in flight",
    )
    # A request with nothing after it still calls the model: probation never fails it.
    assert seen["alone"].served_by.model == GPT
    assert len(scripted.calls_to("gpt-4o")) == 3
    assert state_of(rt, GPT) is HealthState.HEALTHY


def test_a_probe_holder_whose_keys_cool_before_its_retry_lets_the_probe_go(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    # The holder's main key is revoked; its backup answers 500 (probation, held by it)
    # while another request, on gpt-4o-mini, finds the backup key revoked too for a few
    # seconds. The holder cannot retry in place: it made no call under its probe, so it
    # must not keep the probe for its whole lease, and the next request may probe as soon
    # as a key is back.
    rt = start()
    holder_calls = itertools.count()

    def rule(call: ProviderCall) -> Any:
        if call.api_key == OPENAI_MAIN or call.model == "gpt-4o-mini":
            return Fail(401, b.OPENAI_BAD_KEY)
        if call.model != "gpt-4o":
            return Reply("fallback")
        if next(holder_calls) == 0:
            flush(rt)
            assert rt.complete(req(MINI, HAIKU)).served_by.model == HAIKU  # cools the backup
            flush(rt)
            return Fail(500, b.OPENAI_SERVER_ERROR)
        return Reply("probed")

    scripted.rule(rule)
    done = rt.complete(req(GPT, HAIKU))
    assert outcomes(done.attempts) == [
        (GPT, "main", "error", K.AUTH),
        (GPT, "backup", "error", K.TRANSIENT),
        (GPT, "backup", "skipped", None),  # cooled meanwhile: no retry in place
        (HAIKU, "default", "ok", None),
    ]
    assert state_of(rt, GPT) is HealthState.PROBING
    later(rt, clock, 6.0)  # both keys' cooldowns are over, the holder's lease is not
    again = rt.complete(req(GPT, HAIKU))
    assert (again.text, again.served_by.model) == ("probed", GPT)
    assert state_of(rt, GPT) is HealthState.HEALTHY


def test_a_model_whose_in_place_retries_all_fail_cools_down_once(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    rt = start(make_config(retry=RetryConfig(attempts=2, min_delay=0.0, max_delay=0.0)))
    seen: dict[str, Any] = {}
    scripted.rule(probation_rule(rt, seen, Fail(503, b.OPENAI_SERVER_ERROR)))
    done = rt.complete(req(GPT, HAIKU))
    assert done.served_by.model == HAIKU
    assert seen["other"].served_by.model == HAIKU
    row = health(rt, GPT)
    # The lone request's success made it healthy; the holder's failure then cooled it,
    # counting one failure for the whole in-place sequence.
    assert row.state is HealthState.COOLING
    assert row.consecutive_failures == 1


def test_a_failed_probe_goes_on_to_the_next_model_without_retrying_in_place(
    start: StartRuntime, scripted: ScriptedProvider, clock: FakeClock
) -> None:
    scripted.script("gpt-4o", Fail(500, b.OPENAI_SERVER_ERROR))
    rt = start()
    assert rt.complete(req(GPT, HAIKU)).served_by.model == HAIKU
    assert len(scripted.calls_to("gpt-4o")) == 3  # a healthy model: retried in place
    later(rt, clock, 12.0)
    # Its cooldown is over; the probe finds it still failing: one call, then the fallback.
    done = rt.complete(req(GPT, HAIKU))
    assert outcomes(done.attempts) == [
        (GPT, "main", "error", K.TRANSIENT),
        (HAIKU, "default", "ok", None),
    ]
    row = health(rt, GPT)
    assert (row.state, row.consecutive_failures) == (HealthState.COOLING, 2)
    later(rt, clock, 25.0)
    # With nothing after it, the probe still retries in place: it is the request's only hope.
    with pytest.raises(ChainExhausted):
        rt.complete(req(GPT))
    assert len(scripted.calls_to("gpt-4o")) == 3 + 1 + 3


def test_a_transient_failure_while_another_request_holds_the_probe_moves_on_at_once(
    start: StartRuntime, scripted: ScriptedProvider
) -> None:
    rt = start()
    second_in = threading.Event()
    retry_in = threading.Event()
    second_done = threading.Event()
    other: queue.Queue[Any] = queue.Queue()
    gpt_calls = itertools.count()

    def second() -> None:
        other.put(rt.complete(req(GPT, HAIKU)))
        second_done.set()

    def rule(call: ProviderCall) -> Any:
        if call.model != "gpt-4o":
            return Reply("fallback")
        number = next(gpt_calls)
        if number == 0:  # the first request's call: let a second request call too, then fail
            threading.Thread(target=second).start()
            assert second_in.wait(30)
            return Fail(500, b.OPENAI_SERVER_ERROR)
        if number == 1:  # the second request's call: it fails once the first one retries
            second_in.set()
            assert retry_in.wait(30)
            return Fail(500, b.OPENAI_SERVER_ERROR)
        retry_in.set()  # the first request's retry, holding the model's probe throughout
        assert second_done.wait(30)
        return Reply("retried")

    scripted.rule(rule)
    assert rt.complete(req(GPT, HAIKU)).text == "retried"
    # The second request neither slept nor retried: the probe holder is finding out.
    assert outcomes(other.get(timeout=30).attempts) == [
        (GPT, "main", "error", K.TRANSIENT),
        (HAIKU, "default", "ok", None),
    ]
    assert len(scripted.calls_to("gpt-4o")) == 3
