"""Helpers shared by the tests: realistic keys, a config factory, ``flush``, and
``run_switchover`` (the command in a fresh interpreter, some modules blocked)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
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


def assert_scenario_refused(text: str, field: str, problem: str) -> None:
    """A chaos scenario file refused with the file, the field and the problem named."""
    from switchover.bench._scenario import ScenarioError, parse_scenario

    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="mine.toml")
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"mine.toml: {field}: ")


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


#: A ``python -c`` program: run the ``switchover`` command (``sys.argv[1:]``) with the
#: top-level modules named in ``SWITCHOVER_TEST_WITHOUT`` (comma-separated) unimportable,
#: as on an install without the extras that bring them.
_WITHOUT = """
import os, sys
from importlib.machinery import PathFinder
blocked = set(filter(None, os.environ["SWITCHOVER_TEST_WITHOUT"].split(",")))
class Without:
    # Finds what PathFinder finds, except the blocked: to importlib they are not installed.
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            return None
        return PathFinder.find_spec(name, path, target)
    find_distributions = PathFinder.find_distributions  # metadata: only imports are blocked
sys.meta_path = [Without if finder is PathFinder else finder for finder in sys.meta_path]
from switchover._cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_switchover(
    *argv: str, without: tuple[str, ...] = (), timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``switchover *argv`` in a fresh interpreter with the modules ``without`` blocked."""
    env = {**os.environ, "SWITCHOVER_TEST_WITHOUT": ",".join(without), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
