"""Helpers shared by the tests: realistic keys, a config factory, and ``flush``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from switchover import Config, CooldownConfig, ProviderConfig, RetryConfig, Runtime
from switchover.testing import inject_hold

#: Realistic keys. PLAIN_KEY has no ``sk-`` shape: only the runtime's knowledge of the
#: configured keys can keep it out of messages.
OPENAI_MAIN = "sk-proj-MainKey0001aaaaBBBBccccDDDDeeee"
OPENAI_BACKUP = "sk-proj-BackKey0002ffffGGGGhhhhIIIIjjjj"
CLAUDE_KEY = "sk-ant-api03-ClaudeKey0003kkkkLLLLmmmmNNNN"
PLAIN_KEY = "Zq8vN3xLp0Rt7WmKc2HyQ4uB"
ALL_KEYS = (OPENAI_MAIN, OPENAI_BACKUP, CLAUDE_KEY, PLAIN_KEY)

#: The ``start`` fixture: ``start(config=None, **runtime_kwargs) -> Runtime``.
StartRuntime = Callable[..., Runtime]


def providers() -> list[ProviderConfig]:
    """openai (two keys), claude and local (one ``default`` key each)."""
    return [
        ProviderConfig(
            name="openai",
            api="openai",
            base_url="https://api.openai.com/v1",
            profiles={"main": OPENAI_MAIN, "backup": OPENAI_BACKUP},
        ),
        ProviderConfig(
            name="claude",
            api="anthropic",
            base_url="https://api.anthropic.com",
            profiles={"default": CLAUDE_KEY},
        ),
        ProviderConfig(
            name="local",
            api="openai",
            base_url="http://localhost:4010/v1",
            profiles={"default": PLAIN_KEY},
        ),
    ]


def make_config(**overrides: Any) -> Config:
    """A Config with the test providers; keyword arguments replace any field."""
    fields: dict[str, Any] = {
        "providers": providers(),
        "aliases": {"fast": "openai/gpt-4o-mini"},
        "retry": RetryConfig(attempts=3, min_delay=0.5, max_delay=8.0),
        "cooldown": CooldownConfig(),
        "chain_workers": 4,
        "request_timeout": 120.0,
    }
    fields.update(overrides)
    return Config(**fields)


def flush(rt: Runtime) -> None:
    """Return once every key and health actor has handled everything told to it so far.

    Outcomes reach those actors as tells; a hold whose release is already set, queued
    behind them, is handled only after them.
    """
    done = threading.Event()
    done.set()
    for snapshot in rt.inspect().actors:
        if snapshot.kind in ("profile", "health"):
            assert inject_hold(rt, snapshot.name, done).wait(timeout=10)
