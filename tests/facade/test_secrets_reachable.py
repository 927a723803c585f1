"""Issue 15 item 4: no key is reachable from a public error, printed by httpx's or
httpcore's own loggers, or shown by the repr of a configuration."""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import support
from hostile import HostileProvider, Raise
from switchover import (
    ChainExhausted,
    Config,
    ProviderConfig,
    Request,
    RetryConfig,
    Runtime,
    StreamInterrupted,
    SwitchoverError,
)
from switchover.testing import Cut, Fail, FakeServer

pytestmark = pytest.mark.timeout(60)

KEY = "sk-proj-GARNETwhisk4TOUCANmireLAVENDERquay"
HI = ({"role": "user", "content": "hi"},)


def reachable(root: object) -> Iterator[object]:
    """Every object reachable from ``root`` through attributes, containers and exception
    chains (not through traceback frames: a frame reaches the whole program)."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (type, int, float, bool)):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, (str, bytes)):
            continue
        if isinstance(obj, dict):
            todo += list(obj.keys()) + list(obj.values())
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            todo += list(obj)
            continue
        if isinstance(obj, BaseException):
            todo += [obj.__cause__, obj.__context__, obj.args]
        if attrs.has(type(obj)):
            todo += [getattr(obj, a.name, None) for a in attrs.fields(type(obj))]
        for name in getattr(type(obj), "__slots__", ()):
            todo.append(getattr(obj, name, None))
        todo += list(getattr(obj, "__dict__", {}).values())
        if hasattr(obj, "headers") and not callable(obj.headers):
            with contextlib.suppress(Exception):
                todo += [str(v) for v in dict(obj.headers).values()]


def holds_key(root: object, key: str = KEY) -> list[str]:
    found = []
    for obj in reachable(root):
        if isinstance(obj, str) and key[8:24] in obj:
            found.append(obj)
        elif isinstance(obj, bytes) and key[8:24].encode() in obj:
            found.append(repr(obj))
    return found


def printed(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def _http_config(server: FakeServer, base_url: str | None = None) -> Config:
    return Config(
        providers=[
            ProviderConfig(
                name="openai",
                api="openai",
                base_url=base_url or server.openai_url,
                profiles={"main": KEY},
            )
        ],
        retry=RetryConfig(attempts=1),
        request_timeout=10.0,
    )


def test_a_stream_cut_mid_way_leaves_no_key_in_the_errors_object_graph() -> None:
    with (
        FakeServer(default=Cut(after=1)) as server,
        Runtime(_http_config(server)) as rt,
        pytest.raises(StreamInterrupted) as caught,
    ):
        rt.complete(Request(model="openai/m", messages=HI))
    assert caught.value.__context__ is None
    assert holds_key(caught.value) == []
    assert KEY[8:24] not in printed(caught.value)


def test_an_adapter_exception_quoting_the_key_is_in_no_public_error() -> None:
    def plan(call: Any) -> Raise:
        point = "mid" if call.model == "mid" else "open"
        return Raise(lambda: RuntimeError(f"bad key {call.api_key}"), point)

    config = support.make_config(
        providers=[
            ProviderConfig(name="openai", api="openai", base_url="http://x", profiles={"a": KEY})
        ],
        aliases={},
        retry=RetryConfig(attempts=1),
    )
    with Runtime(config, providers={"openai": HostileProvider(plan)}) as rt:
        errors: list[SwitchoverError] = []
        for model in ("openai/mid", "openai/open"):
            with pytest.raises((StreamInterrupted, ChainExhausted)) as caught:
                rt.complete(Request(model=model, messages=HI))
            errors.append(caught.value)
    for error in errors:
        assert holds_key(error) == []
        assert KEY[8:24] not in printed(error)
        logger = logging.getLogger("test.keys")
        record = logger.makeRecord("t", logging.ERROR, "f", 1, "x", (), (type(error), error, None))
        assert KEY[8:24] not in logging.Formatter().format(record)


def test_httpx_and_httpcore_records_are_scrubbed_while_the_runtime_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key echoed in a response header (httpcore, DEBUG) and a key in the base URL's
    query (httpx, INFO) never reach a handler; the filter goes when the runtime stops."""
    echo = Fail(500, {"error": {"message": "down", "type": "server_error"}}, {"x-echo": KEY})
    with FakeServer(default=echo) as server:
        config = _http_config(server, f"{server.openai_url}?key={KEY}")
        with caplog.at_level(logging.DEBUG), Runtime(config) as rt, pytest.raises(ChainExhausted):
            rt.complete(Request(model="openai/m", messages=HI))
        seen = [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
        assert any(r.name == "httpx" for r in seen)
        assert any(r.name.startswith("httpcore") for r in seen)
        assert [r.getMessage() for r in seen if KEY[8:24] in r.getMessage()] == []
    for name in ("httpx", "httpcore.http11", "httpcore.connection"):
        assert logging.getLogger(name).filters == []


@pytest.mark.parametrize(
    "base_url",
    [
        f"https://api.example.test/v1?key={KEY}",
        f"https://user:{KEY}@api.example.test/v1",
        f"https://api.example.test/{KEY}/v1",
    ],
    ids=["query", "userinfo", "path"],
)
def test_no_repr_of_a_configuration_shows_a_key(base_url: str) -> None:
    provider = ProviderConfig(name="p", api="openai", base_url=base_url, profiles={"a": KEY})
    config = Config(providers=[provider], aliases={"fast": "p/m"})
    for text in (repr(provider), repr(config), str(config)):
        assert KEY[8:24] not in text, text
        assert "api.example.test" in text


def test_a_key_pasted_anywhere_in_the_config_stays_out_of_its_repr() -> None:
    provider = ProviderConfig(
        name="p", api="openai", base_url="https://api.example.test", profiles={"a": KEY}
    )
    config = Config(providers=[provider], aliases={KEY: "p/m"})
    assert KEY[8:24] not in repr(config)


def test_a_key_with_a_line_break_is_refused_up_front() -> None:
    with pytest.raises(Exception, match=r"control character|whitespace"):
        ProviderConfig(
            name="p", api="openai", base_url="https://x.test", profiles={"a": KEY + "\r\nX: y"}
        )
