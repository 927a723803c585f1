"""Request validation on hostile input: a Request, RequestRejected (bad_request) or a
TypeError that names the field, always before any provider call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fleet import small_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchover import ErrorKind, Request, RequestRejected, Runtime
from switchover._core._types import MAX_TOKENS_LIMIT
from switchover.testing import FakeClock, ScriptedProvider

HOSTILE = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = ("model", "messages", "fallback_models", "max_tokens", "temperature", "tools", "timeout")

ANY = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=10),
        st.binary(max_size=10),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
ROLE = st.one_of(st.sampled_from(["user", "system", "assistant", "tool", "robot", ""]), ANY)
CONTENT = st.one_of(st.text(max_size=20), st.lists(st.dictionaries(st.text(max_size=5), ANY)), ANY)
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": ROLE}, optional={"content": CONTENT}),
    ANY,
)
KWARGS = st.fixed_dictionaries(
    {
        "model": st.one_of(st.sampled_from(["a/m", "  ", "", "x"]), ANY),
        "messages": st.one_of(st.lists(MESSAGE, max_size=3), ANY),
    },
    optional={
        "fallback_models": st.one_of(st.lists(st.text(max_size=5) | ANY, max_size=3), ANY),
        "max_tokens": st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70),
            st.sampled_from([0, 1, MAX_TOKENS_LIMIT, MAX_TOKENS_LIMIT + 1, 10**30]),
            ANY,
        ),
        "temperature": st.one_of(st.floats(allow_nan=True), ANY),
        "tools": st.one_of(st.lists(st.dictionaries(st.text(max_size=5), ANY), max_size=2), ANY),
        "timeout": st.one_of(st.floats(allow_nan=True), st.integers(), ANY),
    },
)


@HOSTILE
@given(KWARGS)
def test_a_request_is_valid_rejected_or_a_clear_type_error(kwargs: dict[str, Any]) -> None:
    outcome: object
    try:
        outcome = Request(**kwargs)
    except RequestRejected as error:
        outcome = error
    except TypeError as error:
        outcome = error
    if isinstance(outcome, RequestRejected):
        assert outcome.kind is ErrorKind.BAD_REQUEST
        assert str(outcome).startswith(tuple(f"Request.{f}" for f in FIELDS))
    elif isinstance(outcome, TypeError):
        assert str(outcome).startswith(tuple(f"Request.{f}" for f in FIELDS)), outcome
    else:
        assert isinstance(outcome, Request)
        assert outcome.messages, "a valid request has messages"
        assert outcome.model.strip()
        assert outcome.max_tokens is None or 0 < outcome.max_tokens <= MAX_TOKENS_LIMIT


CASES = [
    pytest.param({"messages": []}, RequestRejected, "messages is empty", id="no-messages"),
    pytest.param({"model": ""}, RequestRejected, "model is empty", id="empty-model"),
    pytest.param({"model": None}, TypeError, "model must be a str", id="model-none"),
    pytest.param({"messages": "hi"}, TypeError, "messages must be a list", id="messages-str"),
    pytest.param(
        {"messages": [("user", "hi")]}, TypeError, r"messages\[0\] must be a dict", id="tuple"
    ),
    pytest.param(
        {"messages": [{"role": ["user"]}]}, TypeError, "role must be a str", id="role-list"
    ),
    pytest.param({"messages": [{"role": "robot"}]}, RequestRejected, "has role 'robot'", id="role"),
    pytest.param({"fallback_models": b"a/b"}, TypeError, "fallback_models must be", id="bytes"),
    pytest.param(
        {"fallback_models": [""]}, RequestRejected, r"fallback_models\[0\] is empty", id="fb"
    ),
    pytest.param({"max_tokens": 0}, RequestRejected, "max_tokens=0 is outside", id="zero-tokens"),
    pytest.param({"max_tokens": 10**12}, RequestRejected, "is outside", id="absurd-tokens"),
    pytest.param({"max_tokens": 1.5}, TypeError, "max_tokens must be an int", id="float-tokens"),
    pytest.param({"max_tokens": True}, TypeError, "max_tokens must be an int", id="bool-tokens"),
    pytest.param({"temperature": float("nan")}, RequestRejected, "temperature", id="nan-temp"),
    pytest.param({"timeout": 0}, RequestRejected, "timeout=0", id="zero-timeout"),
    pytest.param({"timeout": "5"}, TypeError, "timeout must be a number", id="str-timeout"),
]


@pytest.mark.parametrize(("change", "error", "match"), CASES)
def test_each_kind_of_bad_request(
    change: dict[str, Any], error: type[Exception], match: str
) -> None:
    kwargs: dict[str, Any] = {"model": "a/m", "messages": [{"role": "user", "content": "hi"}]}
    kwargs.update(change)
    with pytest.raises(error, match=match):
        Request(**kwargs)


@pytest.fixture
def runtime() -> Iterator[tuple[Runtime, ScriptedProvider]]:
    scripted = ScriptedProvider()
    with Runtime(small_config(), providers={"a": scripted}, clock=FakeClock()) as rt:
        yield rt, scripted


def test_a_chain_naming_no_provider_is_rejected_before_any_call(
    runtime: tuple[Runtime, ScriptedProvider],
) -> None:
    rt, scripted = runtime
    request = Request(
        model="a/m", messages=[{"role": "user", "content": "hi"}], fallback_models=("zz/m",)
    )
    with pytest.raises(RequestRejected, match="names provider 'zz'") as raised:
        rt.stream(request)
    assert raised.value.kind is ErrorKind.BAD_REQUEST
    with pytest.raises(TypeError, match="stream\\(\\) needs a Request, not dict"):
        rt.stream({"model": "a/m"})  # type: ignore[arg-type]
    assert scripted.calls == []
