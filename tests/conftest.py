"""Shared fixtures: a small config, a scripted provider, a fake clock, a running runtime,
runtimes built on demand that always stop, and a check that no actor outlives its test."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import freezegun
import pykka
import pytest
import support
from switchover import Config, ProviderCall, ProviderConfig, Runtime
from switchover.testing import FakeClock, ScriptedProvider, inject_hold

# freezegun would also freeze the timeouts of pykka's futures (and so hang live actors):
# frozen time is only ever meant for switchover's own wall-clock logic.
freezegun.configure(extend_ignore_list=["pykka"])

#: Keys of the shared config; none contains a hex run, so no fingerprint can echo one.
KEYS = {
    ("openai", "main"): "sk-proj-MainQuokkaXylophoneJuniper",
    ("openai", "backup"): "sk-proj-BackupWombatQuasarZephyr",
    ("claude", "default"): "sk-ant-api03-KiwiMarzipanVortexGlyph",
}


def make_config(keys: dict[tuple[str, str], str] = KEYS) -> Config:
    """Two providers (openai: main, backup; claude: default), a fallback and an alias."""
    profiles: dict[str, dict[str, str]] = {}
    for (provider, profile), key in keys.items():
        profiles.setdefault(provider, {})[profile] = key
    return Config(
        providers=[
            ProviderConfig(
                name="openai",
                api="openai",
                base_url="https://api.openai.test/v1",
                profiles=profiles["openai"],
            ),
            ProviderConfig(
                name="claude",
                api="anthropic",
                base_url="https://api.anthropic.test",
                profiles=profiles["claude"],
            ),
        ],
        fallbacks=("claude/claude-sonnet-4-5",),
        aliases={"fast": "openai/gpt-4o-mini"},
        chain_workers=4,
    )


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider(secrets=tuple(KEYS.values()))


@pytest.fixture
def runtime(config: Config, provider: ScriptedProvider, clock: FakeClock) -> Iterator[Runtime]:
    with Runtime(config, providers={"openai": provider, "claude": provider}, clock=clock) as rt:
        yield rt


@pytest.fixture
def hold(runtime: Runtime) -> Iterator[Callable[[str], None]]:
    """``hold(name)`` keeps an actor busy inside a handler until the test ends."""
    release = threading.Event()

    def hold_actor(name: str) -> None:
        assert inject_hold(runtime, name, release).wait(timeout=10)

    yield hold_actor
    release.set()  # before the runtime fixture stops the actors


@pytest.fixture
def settle(runtime: Runtime) -> Callable[..., None]:
    """``settle(*names)`` returns once those actors have handled everything sent so far.

    Outcomes reach the key and health actors as tells; a message that is answered in
    mailbox order is the barrier (a hold whose release is already set).
    """

    def wait_for(*names: str) -> None:
        done = threading.Event()
        done.set()
        for name in names:
            assert inject_hold(runtime, name, done).wait(timeout=10)

    return wait_for


@pytest.fixture
def scripted() -> ScriptedProvider:
    """One scripted provider behind every configured provider. It is given no secrets, so
    the runtime itself must keep keys out of what it reports."""
    return ScriptedProvider()


@pytest.fixture
def start(clock: FakeClock, scripted: ScriptedProvider) -> Iterator[support.StartRuntime]:
    """``start(config=None, *, clock=..., provider=..., rng=...)`` -> a running Runtime that
    is stopped at teardown. Defaults: ``support.make_config()``, the fake clock,
    ``scripted``."""
    started: list[Runtime] = []

    def _start(config: Config | None = None, **kwargs: Any) -> Runtime:
        config = config or support.make_config()
        provider = kwargs.pop("provider", scripted)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("rng", random.Random(7))
        rt = Runtime(config, providers={p.name: provider for p in config.providers}, **kwargs)
        started.append(rt)
        return rt.start()

    yield _start
    for rt in started:
        rt.stop()


@pytest.fixture(autouse=True)
def no_actor_survives() -> Iterator[None]:
    """Every test stops what it starts; a leaked actor fails the test that leaked it."""
    yield
    leaked = pykka.ActorRegistry.get_all()
    pykka.ActorRegistry.stop_all(timeout=10)
    assert not leaked, f"actors still running after the test: {leaked}"


MakeCall = Callable[..., ProviderCall]


@pytest.fixture
def make_call() -> MakeCall:
    """Build a ProviderCall; keyword arguments override the defaults."""

    def make(**fields: Any) -> ProviderCall:
        values: dict[str, Any] = {
            "model": "m",
            "api_key": "sk-test-123456789",
            "messages": ({"role": "user", "content": "hi"},),
            "max_tokens": None,
            "temperature": None,
            "tools": (),
            "deadline": 10.0,
            "connect_timeout": 1.0,
            "first_token_timeout": 1.0,
            "idle_timeout": 1.0,
            "clock": FakeClock(),
            "cancel": threading.Event(),
        }
        values.update(fields)
        return ProviderCall(**values)

    return make
