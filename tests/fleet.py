"""Configs and helpers shared by the reliability tests (supervision, history, lifecycle).

The mixed-fault fleet itself lives in :mod:`runtime.testing` (the soak script uses it too)."""

from __future__ import annotations

import os
import threading
from typing import Any

import pykka

from actors import Supervisor
from actors.messages import Inspect
from runtime import ActorSnapshot, Config, ProviderConfig, Request, RetryConfig, Runtime


def small_config(*, workers: int = 4, timeout: float = 30.0, profiles: int = 2) -> Config:
    """One provider ``a`` with ``profiles`` keys; default cooldowns (long enough to observe)."""
    keys = {f"p{i}": f"sk-a-{i}-0123456789abcdef" for i in range(profiles)}
    return Config(
        providers=[
            ProviderConfig(name="a", api="openai", base_url="http://a.invalid", profiles=keys)
        ],
        retry=RetryConfig(attempts=2, min_delay=0.0, max_delay=0.0),
        chain_workers=workers,
        request_timeout=timeout,
    )


def request(model: str = "a/m", *fallbacks: str, **kwargs: object) -> Request:
    return Request(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        fallback_models=fallbacks,
        **kwargs,  # type: ignore[arg-type]
    )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def actor_threads() -> list[threading.Thread]:
    """Live pykka actor threads (named after their actor class)."""
    return [t for t in threading.enumerate() if t.name.split("-")[0].endswith("Actor")]


def supervisor_of(rt: Runtime) -> Supervisor:
    """The running runtime's supervisor (tests reach inside)."""
    supervisor = rt._supervisor
    assert supervisor is not None
    return supervisor


def ref_of(rt: Runtime, name: str) -> pykka.ActorRef[Any]:
    """The current incarnation of actor ``name``."""
    ref = supervisor_of(rt).directory.members[name].ref
    assert ref is not None
    return ref


def live(rt: Runtime, name: str) -> ActorSnapshot:
    """The actor's own answer to Inspect, however long a loaded machine makes it take."""
    snapshot = supervisor_of(rt).directory.ask(name, Inspect(), 10.0)
    assert isinstance(snapshot, ActorSnapshot)
    return snapshot
