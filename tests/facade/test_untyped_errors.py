"""Issue 15 item 10: inputs that used to raise untyped errors (or be retried) are refused
up front with a clear, typed error."""

from __future__ import annotations

from pathlib import Path

import pytest
import support
from hostile import HostileProvider
from switchover import Config, ConfigError, ProviderConfig, Request, RequestRejected, Runtime
from switchover.providers._anthropic import AnthropicWire
from switchover.providers._openai import OpenAIWire

pytestmark = pytest.mark.timeout(60)

HI = ({"role": "user", "content": "hi"},)


@pytest.mark.parametrize("timeout", [1e10, 1e300, 10**12])
def test_a_huge_request_timeout_is_rejected_up_front(timeout: float) -> None:
    with pytest.raises(RequestRejected, match="timeout"):
        Request(model="openai/m", messages=HI, timeout=timeout)
    with pytest.raises(ConfigError, match="request_timeout"):
        support.make_config(request_timeout=timeout)


def test_the_largest_accepted_timeout_streams() -> None:
    request = Request(model="openai/m", messages=HI, timeout=365 * 86400.0)
    config = support.make_config()
    with Runtime(config, providers={p.name: HostileProvider() for p in config.providers}) as rt:
        assert rt.complete(request).text == "hello"


def test_deeply_nested_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.toml"):
        Config.from_toml(path)


def test_non_utf8_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes("chain_workers = 4 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml.*UTF-8"):
        Config.from_toml(path)


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("chain_workers = = 4\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        Config.from_toml(path)


@pytest.mark.parametrize(
    "tools",
    [[1], ["x"], [None], [{"type": "function", "function": {"name": "f", "x": {1, 2}}}]],
    ids=["int", "str", "none", "unencodable"],
)
def test_bad_tools_are_refused_by_the_request(tools: list[object]) -> None:
    with pytest.raises((TypeError, RequestRejected), match=r"Request\.tools\[0\]"):
        Request(model="openai/m", messages=HI, tools=tools)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wire", "base", "url"),
    [
        (
            OpenAIWire(),
            "https://h.test/v1?api-version=2",
            "https://h.test/v1/chat/completions?api-version=2",
        ),
        (OpenAIWire(), "https://h.test/v1/?a=1&b=2", "https://h.test/v1/chat/completions?a=1&b=2"),
        (AnthropicWire(), "https://h.test?x=1", "https://h.test/v1/messages?x=1"),
        (AnthropicWire(), "https://h.test/v1?x=1", "https://h.test/v1/messages?x=1"),
        (OpenAIWire(), "https://h.test/v1", "https://h.test/v1/chat/completions"),
    ],
)
def test_the_endpoint_path_goes_before_the_base_urls_query(
    wire: object, base: str, url: str
) -> None:
    assert wire.url(base) == url  # type: ignore[attr-defined]


def test_provider_config_with_a_query_still_validates() -> None:
    ProviderConfig(name="p", api="openai", base_url="https://h.test/v1?a=1", profiles={"a": "k"})
