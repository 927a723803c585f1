"""Shared fixtures."""

import threading
from collections.abc import Callable
from typing import Any

import freezegun
import pytest

from runtime import ProviderCall
from runtime.testing import FakeClock

# freezegun would also freeze the timeouts of pykka's futures (and so hang live actors):
# frozen time is only ever meant for switchover's own wall-clock logic.
freezegun.configure(extend_ignore_list=["pykka"])

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
