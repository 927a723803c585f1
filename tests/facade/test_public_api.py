"""The public surface: every exported name imports, nothing public is missing, one package."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest
import switchover
import switchover.actors
import switchover.actors.messages
import switchover.providers
import switchover.testing

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
NAMESPACES = [switchover, switchover.testing, switchover.providers, switchover.actors]


@pytest.mark.parametrize("module", NAMESPACES, ids=lambda m: m.__name__)
def test_every_name_in_all_imports(module: types.ModuleType) -> None:
    names = module.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    fresh = importlib.import_module(module.__name__)
    for name in names:
        assert getattr(fresh, name) is not None, name
        exec(f"from {module.__name__} import {name}", {})


@pytest.mark.parametrize("module", NAMESPACES, ids=lambda m: m.__name__)
def test_nothing_public_is_missing_from_all(module: types.ModuleType) -> None:
    # Like httpx's test_exported_members: a public-looking name that is not a submodule
    # must be listed, so that the surface is what __all__ says.
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in {"annotations", "TYPE_CHECKING", "Any", "logging"}
    }
    assert public <= set(module.__all__) | {"Runtime", "Stream"}


def test_the_design_names_are_exported() -> None:
    assert set(switchover.__all__) >= DESIGN_NAMES


def test_the_version_is_the_distributions() -> None:
    assert switchover.__version__ == importlib.metadata.version("switchover")
    out = subprocess.run(
        [sys.executable, "-m", "switchover", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"switchover {switchover.__version__}"


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="switchover"):
        switchover.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_the_package_logger_is_silent_until_configured() -> None:
    import logging

    handlers = logging.getLogger("switchover").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_importing_the_package_loads_neither_actors_nor_bench() -> None:
    code = (
        "import sys, switchover, switchover.testing, switchover.providers;"
        "bad = [m for m in sys.modules if m.startswith(('switchover.actors', 'switchover.bench'))];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
