"""Request validation and the frozen values that cross threads."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from switchover import (
    Attempt,
    Completion,
    Done,
    ErrorKind,
    HealthState,
    ModelHealth,
    ReasoningDelta,
    Request,
    RequestRejected,
    ServedBy,
    TextDelta,
    ToolCall,
    Usage,
)
from switchover._core._types import MAX_TOKENS_LIMIT

MESSAGES = [{"role": "user", "content": "hi"}]


def test_request_freezes_its_sequences() -> None:
    request = Request(
        model="openai/gpt-4o",
        messages=MESSAGES,
        fallback_models=["fast"],
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    assert isinstance(request.messages, tuple)
    assert request.fallback_models == ("fast",)
    assert isinstance(request.tools, tuple)
    assert Request(model="m/x", messages=MESSAGES, fallback_models="fast").fallback_models == (
        "fast",
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.model = "other/x"  # type: ignore[misc]


def test_content_may_be_parts() -> None:
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "u"}}]
    assert Request(model="m/x", messages=[{"role": "user", "content": parts}]).messages


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"model": 5}, id="model-int"),
        pytest.param({"messages": "hi"}, id="messages-str"),
        pytest.param({"messages": ["hi"]}, id="message-str"),
        pytest.param({"messages": [{"role": "user", "content": 5}]}, id="content-int"),
        pytest.param({"fallback_models": [None]}, id="fallback-none"),
        pytest.param({"fallback_models": 5}, id="fallbacks-int"),
        pytest.param({"max_tokens": 1.5}, id="max_tokens-float"),
        pytest.param({"max_tokens": True}, id="max_tokens-bool"),
        pytest.param({"temperature": "hot"}, id="temperature-str"),
        pytest.param({"timeout": "10"}, id="timeout-str"),
        pytest.param({"tools": "f"}, id="tools-str"),
    ],
)
def test_wrong_types_raise_type_error(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"model": "openai/gpt-4o", "messages": MESSAGES, **kwargs}
    with pytest.raises(TypeError):
        Request(**fields)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"model": "  "}, id="empty-model"),
        pytest.param({"messages": []}, id="no-messages"),
        pytest.param({"messages": [{"role": "wizard", "content": "x"}]}, id="unknown-role"),
        pytest.param({"messages": [{"content": "x"}]}, id="no-role"),
        pytest.param({"fallback_models": [""]}, id="empty-fallback"),
        pytest.param({"max_tokens": 0}, id="max_tokens-zero"),
        pytest.param({"max_tokens": MAX_TOKENS_LIMIT + 1}, id="max_tokens-absurd"),
        pytest.param({"temperature": 2.5}, id="temperature-high"),
        pytest.param({"temperature": float("nan")}, id="temperature-nan"),
        pytest.param({"timeout": 0}, id="timeout-zero"),
        pytest.param({"timeout": float("inf")}, id="timeout-inf"),
    ],
)
def test_impossible_values_are_rejected_as_bad_request(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"model": "openai/gpt-4o", "messages": MESSAGES, **kwargs}
    with pytest.raises(RequestRejected) as raised:
        Request(**fields)
    assert raised.value.kind is ErrorKind.BAD_REQUEST


def test_events_and_outcomes_are_frozen_values() -> None:
    served = ServedBy(model="openai/gpt-4o", provider="openai", profile="main")
    attempt = Attempt(model="openai/gpt-4o", provider="openai", profile="main", outcome="ok")
    assert (attempt.kind, attempt.status, attempt.code, attempt.message, attempt.duration) == (
        None,
        None,
        None,
        "",
        0.0,
    )
    done = Completion(
        text="t",
        tool_calls=(ToolCall(id="1", name="f", arguments="{}"),),
        usage=Usage(input_tokens=1, output_tokens=2),
        finish_reason="stop",
        served_by=served,
        attempts=(attempt,),
    )
    values: list[Any] = [
        served,
        attempt,
        done,
        TextDelta("a"),
        ReasoningDelta("b"),
        Done(finish_reason="stop"),
        ModelHealth(
            model="m",
            state=HealthState.HEALTHY,
            cooldown_remaining=None,
            consecutive_failures=0,
            last_error=None,
            reason=None,
        ),
    ]
    for value in values:
        field = attrs.fields(type(value))[0].name
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(value, field, None)
        assert value == attrs.evolve(value)
        assert hash(value) == hash(attrs.evolve(value))


def test_health_states_and_error_kinds_are_the_designs_strings() -> None:
    assert [str(s) for s in HealthState] == ["healthy", "cooling", "probing", "disabled"]
    assert [str(k) for k in ErrorKind] == [
        "rate_limit",
        "auth",
        "balance",
        "model_missing",
        "transient",
        "invalid_request",
        "bad_request",
        "context_exceeded",
        "output_limit",
        "unknown",
    ]
    assert ErrorKind("rate_limit") is ErrorKind.RATE_LIMIT
    assert ErrorKind.AUTH == "auth"
