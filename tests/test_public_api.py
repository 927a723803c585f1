"""The public surface: every exported name imports, and the lists stay sorted."""

from __future__ import annotations

import importlib

import pytest

import actors
import runtime
import runtime.testing

DESIGN_NAMES = {
    "Runtime",
    "Config",
    "ProviderConfig",
    "RetryConfig",
    "CooldownConfig",
    "Request",
    "TextDelta",
    "ReasoningDelta",
    "ToolCall",
    "Done",
    "ServedBy",
    "Attempt",
    "Completion",
    "ModelHealth",
    "HealthState",
    "RuntimeSnapshot",
    "ActorSnapshot",
    "ErrorKind",
    "SwitchoverError",
    "ConfigError",
    "RuntimeStoppedError",
    "RequestRejected",
    "ChainExhausted",
    "DeadlineExceeded",
    "StreamInterrupted",
}


@pytest.mark.parametrize("module", [runtime, runtime.testing, actors], ids=lambda m: m.__name__)
def test_every_name_in_all_imports(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    fresh = importlib.import_module(module.__name__)  # type: ignore[attr-defined]
    for name in names:
        assert getattr(fresh, name) is not None, name
        exec(f"from {module.__name__} import {name}", {})  # type: ignore[attr-defined]


def test_the_design_names_are_exported() -> None:
    assert set(runtime.__all__) >= DESIGN_NAMES


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError):
        runtime.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_pure_modules_do_not_import_actors() -> None:
    import subprocess
    import sys

    code = (
        "import sys, runtime, runtime.testing, runtime._classify, runtime._policy;"
        "bad = [m for m in sys.modules if m == 'actors' or m.startswith('actors.')];"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    assert out.stdout.strip() == ""
