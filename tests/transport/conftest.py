"""A runtime in front of the loopback FakeServer, and SDK clients through its transports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anthropic
import httpx
import httpx2
import openai
import pytest
from switchover import Config, CooldownConfig, ProviderConfig, RetryConfig, Runtime
from switchover.testing import FakeServer

OPENAI_KEY = "sk-proj-TransportKey0001aaaaBBBBccccDDDD"
CLAUDE_KEY = "sk-ant-api03-TransportKey0002eeeeFFFFgggg"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


def transport_config(server: FakeServer, **overrides: object) -> Config:
    """``oa`` (OpenAI wire) and ``an`` (Anthropic wire), both on the fake; quick retries."""
    fields: dict[str, object] = {
        "providers": [
            ProviderConfig(
                name="oa", api="openai", base_url=server.openai_url, profiles={"main": OPENAI_KEY}
            ),
            ProviderConfig(
                name="an",
                api="anthropic",
                base_url=server.anthropic_url,
                profiles={"main": CLAUDE_KEY},
            ),
        ],
        "aliases": {"fast": "oa/gpt-4o-mini"},
        "retry": RetryConfig(attempts=2, min_delay=0.001, max_delay=0.002),
        "cooldown": CooldownConfig(profile_min=0.05, profile_max=0.1),
        "chain_workers": 4,
        "request_timeout": 20.0,
    }
    fields.update(overrides)
    return Config(**fields)  # type: ignore[arg-type]


@pytest.fixture
def make_runtime(server: FakeServer) -> Iterator[Callable[..., Runtime]]:
    """``make_runtime(observers=(), **config_overrides)``: a started runtime on the fake,
    stopped at teardown."""
    made: list[Runtime] = []

    def make(observers: tuple[object, ...] = (), **overrides: object) -> Runtime:
        runtime = Runtime(transport_config(server, **overrides), observers=observers)  # type: ignore[arg-type]
        made.append(runtime)
        return runtime.start()

    yield make
    for runtime in made:
        runtime.stop()


@pytest.fixture
def rt(server: FakeServer) -> Iterator[Runtime]:
    with Runtime(transport_config(server)) as runtime:
        yield runtime


@pytest.fixture
def oai(rt: Runtime) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        api_key="unused",
        base_url="http://switchover/v1",
        http_client=httpx.Client(transport=rt.transport()),
    )
    yield client
    client.close()


@pytest.fixture
def claude(rt: Runtime) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        api_key="unused",
        base_url="http://switchover",
        http_client=httpx2.Client(transport=rt.transport()),
    )
    yield client
    client.close()


@pytest.fixture
def aoai(rt: Runtime) -> Callable[[], openai.AsyncOpenAI]:
    """Makes an AsyncOpenAI through ``rt`` (inside the loop that uses it)."""
    return lambda: openai.AsyncOpenAI(
        api_key="unused",
        base_url="http://switchover/v1",
        http_client=httpx.AsyncClient(transport=rt.async_transport()),
    )


@pytest.fixture
def aclaude(rt: Runtime) -> Callable[[], anthropic.AsyncAnthropic]:
    """Makes an AsyncAnthropic through ``rt`` (inside the loop that uses it)."""
    return lambda: anthropic.AsyncAnthropic(
        api_key="unused",
        base_url="http://switchover",
        http_client=httpx2.AsyncClient(transport=rt.async_transport()),
    )
