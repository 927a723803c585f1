"""The README's examples work as written: its TOML loads, its Python runs, its test command
is the one CI runs.

The Python example runs against a loopback FakeServer: the README's TOML with its two
``base_url`` values pointed there (no other change), keys from the environment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from switchover import Config, CooldownConfig, RetryConfig
from switchover.testing import FakeServer, Reply

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
KEYS = {
    "OPENAI_API_KEY": "sk-proj-ReadmeMainKeyAlphaBravoCharlie",
    "OPENAI_BACKUP_KEY": "sk-proj-ReadmeBackupKeyDeltaEchoFoxtrot",
    "ANTHROPIC_API_KEY": "sk-ant-api03-ReadmeClaudeKeyGolfHotelIndia",
}


def block(language: str) -> str:
    """The README's one fenced block in ``language``."""
    (found,) = re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.M | re.S)
    return str(found)


def test_the_toml_example_loads_into_the_config_it_describes() -> None:
    config = Config.from_toml_text(block("toml"), env=KEYS)

    assert [p.name for p in config.providers] == ["openai", "claude"]
    openai, claude = config.providers
    assert list(openai.profiles) == ["main", "backup"]  # the order keys are tried in
    assert openai.profiles["backup"] == KEYS["OPENAI_BACKUP_KEY"]
    assert claude.api == "anthropic"
    assert claude.profiles == {"default": KEYS["ANTHROPIC_API_KEY"]}
    assert config.fallbacks == ("claude/claude-sonnet-4-5",)
    assert config.aliases == {"smart": "openai/gpt-4o", "fast": "openai/gpt-4o-mini"}
    # "Every value below is the default except the providers, aliases and fallbacks."
    assert config.retry == RetryConfig()
    assert config.cooldown == CooldownConfig()
    defaults = Config(providers=config.providers)
    assert (config.chain_workers, config.request_timeout) == (
        defaults.chain_workers,
        defaults.request_timeout,
    )


def test_the_python_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, key in KEYS.items():
        monkeypatch.setenv(name, key)
    with FakeServer(default=Reply("fine", chunks=2)) as server:
        toml = block("toml")
        for real, fake in (
            ("https://api.openai.com/v1", server.openai_url),
            ("https://api.anthropic.com", server.anthropic_url),
        ):
            assert real in toml
            toml = toml.replace(real, fake)
        (tmp_path / "switchover.toml").write_text(toml)
        monkeypatch.chdir(tmp_path)

        exec(compile(block("python"), "README.md", "exec"), {"__name__": "readme"})

        calls = server.calls
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["fine"] * 3
    assert out[3] == "fine"
    assert out[4].startswith("served by ServedBy(model='openai/gpt-4o'")
    assert out[4].endswith("after 1 attempts")
    assert {c.request.model for c in calls} == {"gpt-4o"}
    assert {c.request.key for c in calls} == {KEYS["OPENAI_API_KEY"]}


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```sh\n(.*?)\n```$", quick_start, flags=re.M | re.S)

    assert len(commands) == 2
    assert commands[0].endswith("switchover chaos")
    assert commands[1] == ci


def test_the_readme_stays_a_front_door() -> None:
    assert README.count("\n") <= 220, "README.md is the front door: details go to docs/"
