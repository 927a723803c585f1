"""Configs and helpers shared by the reliability tests (supervision, history, lifecycle)."""

from __future__ import annotations

import os
import threading

from runtime import Config, CooldownConfig, ProviderConfig, Request, RetryConfig

MODEL_KINDS = ("rate_limit", "transient", "auth", "balance", "model_missing")


def provider(name: str, profiles: int, **timeouts: float) -> ProviderConfig:
    return ProviderConfig(
        name=name,
        api="openai",
        base_url=f"http://{name}.invalid",
        profiles={f"p{i}": f"sk-{name}-{i}-0123456789abcdef" for i in range(profiles)},
        **timeouts,
    )


def small_config(*, workers: int = 4, timeout: float = 30.0, profiles: int = 2) -> Config:
    """One provider ``a`` with ``profiles`` keys; cooldowns long enough to observe."""
    return Config(
        providers=[provider("a", profiles)],
        retry=RetryConfig(attempts=2, min_delay=0.0, max_delay=0.0),
        chain_workers=workers,
        request_timeout=timeout,
    )


def fleet_config(*, workers: int = 16) -> Config:
    """Three providers on real time with millisecond cooldowns: every mechanism fires."""
    fast = {"connect_timeout": 0.05, "first_token_timeout": 0.02, "idle_timeout": 0.02}
    return Config(
        providers=[provider("a", 3, **fast), provider("b", 2, **fast), provider("c", 1, **fast)],
        fallbacks=("c/last",),
        aliases={"fast": "b/fast"},
        retry=RetryConfig(attempts=3, min_delay=0.0005, max_delay=0.002),
        cooldown=CooldownConfig(
            profile_min=0.002,
            profile_max=0.05,
            model_base=dict.fromkeys(MODEL_KINDS, 0.005),
            model_max=0.05,
            disabled_probe_interval=0.05,
        ),
        chain_workers=workers,
        request_timeout=2.0,
    )


FLEET_MODELS = ("a/m1", "a/m2", "b/m3", "fast")


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
