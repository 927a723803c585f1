"""Failover log lines, Prometheus metrics and OpenTelemetry spans, on a scripted runtime."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import prometheus_client
import pytest
import support
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from switchover import (
    AttemptBegan,
    AttemptRecord,
    ChainExhausted,
    ConfigError,
    ErrorKind,
    Request,
    RequestOpened,
    RequestRejected,
    RetryConfig,
    Runtime,
    Usage,
)
from switchover.testing import Fail, FakeClock, Reply, ScriptedProvider

RATE_LIMITED = Fail(
    429,
    {"error": {"type": "rate_limit_error", "message": "slow down", "code": "rate_limit_exceeded"}},
    headers={"retry-after": "30"},
)
OVERLOADED = Fail(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})


def _request(model: str = "openai/gpt-4o", *fallbacks: str) -> Request:
    return Request(
        model=model, fallback_models=fallbacks, messages=[{"role": "user", "content": "hi"}]
    )


def _samples(rt: Runtime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(rt.metrics_collector())
    text = prometheus_client.generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# -- logs --------------------------------------------------------------------------------------


def test_failover_and_key_cooling_are_logged_with_structured_fields(
    start: support.StartRuntime, scripted: ScriptedProvider, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.script("gpt-4o", RATE_LIMITED)  # both openai keys: rate limited
    rt = start()
    with caplog.at_level(logging.INFO, logger="switchover.events"):
        done = rt.complete(_request("openai/gpt-4o", "claude/claude-x"))
        support.flush(rt)
    assert done.served_by.model == "claude/claude-x"
    records = [r for r in caplog.records if r.name == "switchover.events"]
    lines = {r.getMessage(): r for r in records}
    assert len(lines) == len(records)  # each line once (a failover is not logged twice)
    cooling = [m for m in lines if m.startswith("key openai/main cooling")]
    assert cooling == ["key openai/main cooling 30s: rate_limit (retry-after 30)"]
    failover = lines["request 1 failed over openai/gpt-4o -> claude/claude-x (rate_limit)"]
    assert failover.levelno == logging.INFO
    assert (failover.event, failover.from_model, failover.to_model) == (
        "failover",
        "openai/gpt-4o",
        "claude/claude-x",
    )
    assert lines[cooling[0]].cooldown_seconds == 30.0
    text = "\n".join(lines)
    assert not any(key in text for key in support.ALL_KEYS)
    assert "slow down" not in text  # provider message content stays out


def test_exhausted_chain_is_a_warning(
    start: support.StartRuntime, scripted: ScriptedProvider, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.default = RATE_LIMITED
    rt = start(support.make_config(retry=RetryConfig(attempts=1)))
    with caplog.at_level(logging.INFO, logger="switchover.events"), pytest.raises(ChainExhausted):
        rt.complete(_request("openai/gpt-4o"))
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith(
        "request 1: chain exhausted after 2 calls and 0 skips (openai/gpt-4o); retry after"
    )
    assert warning.event == "exhausted"


def test_model_healthy_again_at_its_probe_commit_is_logged(
    start: support.StartRuntime,
    scripted: ScriptedProvider,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scripted.script("claude-x", OVERLOADED, OVERLOADED, OVERLOADED, Reply())
    rt = start()
    with caplog.at_level(logging.INFO, logger="switchover.events"):
        rt.complete(_request("claude/claude-x", "openai/gpt-4o"))
        support.flush(rt)
        clock.advance(3600)
        rt.complete(_request("claude/claude-x", "openai/gpt-4o"))
        support.flush(rt)
    messages = [r.getMessage() for r in caplog.records]
    assert "model claude/claude-x cooling 10s: transient" in messages
    assert "model claude/claude-x healthy again when its probe began answering" in messages


def test_logging_off_costs_no_walk_state(start: support.StartRuntime) -> None:
    logging.getLogger("switchover.events").setLevel(logging.WARNING)
    try:
        rt = start()
        rt.complete(_request())
        log = next(o for o in rt._observer._observers if type(o).__name__ == "FailoverLog")
        assert log._walks._walks == {}
    finally:
        logging.getLogger("switchover.events").setLevel(logging.NOTSET)


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_count_requests_attempts_failovers_and_retries(
    start: support.StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", RATE_LIMITED, key=support.OPENAI_MAIN)
    scripted.script("gpt-4o", OVERLOADED, Reply(), key=support.OPENAI_BACKUP)
    rt = start(metrics=True)
    rt.complete(_request("openai/gpt-4o", "claude/claude-x"))
    support.flush(rt)
    s = _samples(rt)
    attempts = "switchover_attempts_total"
    common = {"provider": "openai", "model": "openai/gpt-4o"}
    assert _value(s, attempts, **common, profile="main", outcome="error", kind="rate_limit") == 1
    assert _value(s, attempts, **common, profile="backup", outcome="error", kind="transient") == 1
    assert _value(s, attempts, **common, profile="backup", outcome="ok", kind="none") == 1
    assert _value(s, "switchover_retries_total", **common, profile="backup") == 1
    assert _value(s, "switchover_requests_total", model="openai/gpt-4o", outcome="served") == 1
    assert (
        _value(
            s,
            "switchover_key_cooldowns_total",
            provider="openai",
            profile="main",
            kind="rate_limit",
        )
        == 1
    )
    assert _value(s, "switchover_time_to_first_token_seconds_count", **common) == 1
    assert (
        _value(s, "switchover_key_state", provider="openai", profile="main", state="cooling") == 1
    )
    assert (
        _value(s, "switchover_key_cooldown_remaining_seconds", provider="openai", profile="main")
        > 0
    )
    assert _value(s, "switchover_chain_workers", state="idle") == 4
    assert _value(s, "switchover_actor_restarts_total", actor="health", kind="health") == 0
    assert not any(key in repr(s) for key in support.ALL_KEYS)


def test_metrics_failover_and_model_state(
    start: support.StartRuntime, scripted: ScriptedProvider
) -> None:
    scripted.script("gpt-4o", Fail(404, {"error": {"code": "model_not_found", "message": "gone"}}))
    rt = start(metrics=True)
    rt.complete(_request("openai/gpt-4o", "claude/claude-x"))
    support.flush(rt)
    s = _samples(rt)
    assert (
        _value(
            s,
            "switchover_failovers_total",
            from_model="openai/gpt-4o",
            to_model="claude/claude-x",
            because="model_missing",
        )
        == 1
    )
    assert _value(s, "switchover_model_state", model="openai/gpt-4o", state="cooling") == 1
    assert _value(s, "switchover_model_state", model="openai/gpt-4o", state="healthy") == 0
    rt.complete(_request("openai/gpt-4o", "claude/claude-x"))
    s = _samples(rt)
    assert (
        _value(s, "switchover_skips_total", provider="openai", model="openai/gpt-4o", scope="model")
        == 1
    )


def test_caller_chosen_models_fold_into_a_bounded_label(
    start: support.StartRuntime,
) -> None:
    from switchover._metrics import EXTRA_MODELS

    rt = start(metrics=True)
    for i in range(EXTRA_MODELS + 5):
        rt.complete(_request(f"openai/model-{i}"))
    s = _samples(rt)
    served = {dict(labels)["model"] for name, labels in s if name == "switchover_requests_total"}
    assert len(served) == EXTRA_MODELS + 1
    assert _value(s, "switchover_requests_total", model="other", outcome="served") == 5


def test_metrics_collector_needs_metrics_on(start: support.StartRuntime) -> None:
    rt = start()
    with pytest.raises(ConfigError, match="metrics=True"):
        rt.metrics_collector()


def test_collector_registers_in_a_users_registry_and_survives_stop(
    start: support.StartRuntime,
) -> None:
    rt = start(metrics=True)
    rt.complete(_request())
    registry = prometheus_client.CollectorRegistry()
    registry.register(rt.metrics_collector())
    rt.stop()
    text = prometheus_client.generate_latest(registry).decode()
    assert 'switchover_requests_total{model="openai/gpt-4o",outcome="served"} 1.0' in text
    assert "switchover_actor_mailbox_depth" not in text  # stopped: counters only


def test_announced_calls_are_not_counted_twice() -> None:
    """Once the walk emits attempt_began, a failover is counted at once, and only once."""
    from switchover._core._redact import Redactor
    from switchover._metrics import FAILOVERS, RETRIES, Metrics

    metrics = Metrics(support.make_config(), Redactor())
    metrics.request_opened(RequestOpened(1, ("openai/a", "claude/b"), deadline=99.0, at=0.0))

    def record(model: str, provider: str, profile: str, outcome: str, kind=None) -> AttemptRecord:
        return AttemptRecord(1, model, provider, profile, outcome, kind, False, 0.0, 0.0, 1.0)

    metrics.attempt_began(AttemptBegan(1, "openai/a", "openai", "main", False, 0.0))
    metrics.attempt_ended(record("openai/a", "openai", "main", "error", ErrorKind.TRANSIENT))
    metrics.attempt_began(AttemptBegan(1, "openai/a", "openai", "main", False, 1.0))  # retry
    metrics.attempt_ended(record("openai/a", "openai", "main", "error", ErrorKind.TRANSIENT))
    metrics.attempt_began(AttemptBegan(1, "claude/b", "claude", "default", False, 2.0))
    failover = (FAILOVERS, "openai/a", "claude/b", "transient")
    assert metrics.count(*failover) == 1  # counted when the call began
    metrics.attempt_ended(record("claude/b", "claude", "default", "ok"))
    assert metrics.count(*failover) == 1
    assert metrics.count(RETRIES, "openai", "openai/a", "main") == 1


# -- traces ------------------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_a_span_per_request_and_per_attempt_with_genai_attributes(
    start: support.StartRuntime, scripted: ScriptedProvider, spans
) -> None:
    provider, exporter = spans
    scripted.script("gpt-4o", RATE_LIMITED)
    scripted.script("claude-x", Reply(usage=Usage(input_tokens=12, output_tokens=3)))
    rt = start(tracer_provider=provider)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as parent:
        rt.complete(_request("openai/gpt-4o", "claude/claude-x"))
    finished = {s.name: s for s in exporter.get_finished_spans() if s.name != "handler"}
    request = finished["chat openai/gpt-4o"]
    assert request.parent.span_id == parent.get_span_context().span_id
    attempts = [
        s
        for s in exporter.get_finished_spans()
        if s.parent and s.parent.span_id == request.context.span_id
    ]
    assert [
        (a.attributes["switchover.profile"], a.attributes["switchover.outcome"]) for a in attempts
    ] == [
        ("main", "error"),
        ("backup", "error"),
        ("default", "ok"),
    ]
    served = attempts[-1].attributes
    assert served["gen_ai.system"] == "anthropic"
    assert served["gen_ai.request.model"] == "claude-x"
    assert served["gen_ai.response.model"] == "claude-x"
    assert (served["gen_ai.usage.input_tokens"], served["gen_ai.usage.output_tokens"]) == (12, 3)
    assert served["switchover.chain.position"] == 1
    assert served["switchover.failover_from"] == "openai/gpt-4o"
    assert attempts[0].attributes["error.type"] == "rate_limit"
    assert attempts[0].attributes["gen_ai.system"] == "openai"
    assert request.attributes["gen_ai.response.model"] == "claude-x"
    assert request.attributes["switchover.outcome"] == "served"
    assert request.attributes["switchover.failovers"] == 1
    assert all(a.start_time <= a.end_time for a in attempts)
    assert not any(
        k in repr([dict(s.attributes) for s in finished.values()]) for k in support.ALL_KEYS
    )


def test_a_failed_request_span_has_an_error_type(
    start: support.StartRuntime, scripted: ScriptedProvider, spans
) -> None:
    provider, exporter = spans
    scripted.default = RATE_LIMITED
    rt = start(tracer_provider=provider)
    with pytest.raises(ChainExhausted):
        rt.complete(_request("openai/gpt-4o"))
    [request] = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert request.attributes["error.type"] == "exhausted"
    assert request.status.status_code.name == "ERROR"


def test_without_a_tracer_provider_nothing_is_kept(start: support.StartRuntime) -> None:
    rt = start()
    tracing = next(o for o in rt._observer._observers if type(o).__name__ == "Tracing")
    rt.complete(_request())
    assert tracing._open == {}
    assert tracing._walks._walks == {}


def test_a_key_inside_a_model_string_never_shows(
    start: support.StartRuntime,
    scripted: ScriptedProvider,
    caplog: pytest.LogCaptureFixture,
    spans,
) -> None:
    provider, exporter = spans
    leaky = f"openai/{support.OPENAI_BACKUP}"
    scripted.script(support.OPENAI_BACKUP, Fail(404, {"error": {"code": "model_not_found"}}))
    rt = start(metrics=True, tracer_provider=provider)
    with caplog.at_level(logging.INFO, logger="switchover.events"):
        with pytest.raises(RequestRejected):  # the runtime refuses it before any call
            rt.complete(_request(leaky, "claude/claude-x"))
        scripted.script("gpt-4o", RATE_LIMITED)
        rt.complete(_request("openai/gpt-4o", "claude/claude-x"))
        support.flush(rt)
    shown = [
        "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
        repr(_samples(rt)),
        repr([(s.name, dict(s.attributes)) for s in exporter.get_finished_spans()]),
        repr(rt.transitions()),
    ]
    assert "failed over" in shown[0]
    for text in shown:
        assert support.OPENAI_BACKUP not in text
        assert support.OPENAI_BACKUP[:12] not in text
