"""Config values and Config.from_toml: defaults, validation, ${ENV} expansion, and
ConfigErrors that name the offending field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from support import OPENAI_MAIN, make_config, providers
from switchover import Config, ConfigError, CooldownConfig, ProviderConfig, RetryConfig

TOML = """
fallbacks = ["claude/claude-sonnet-4-5"]
chain_workers = 8
request_timeout = 90.0

[aliases]
fast = "openai/gpt-4o-mini"

[retry]
attempts = 4
min_delay = 0.25
max_delay = 4.0

[cooldown]
profile_min = 2.0
profile_max = 120.0
model_max = 600.0
disable_after = 5

[cooldown.model_base]
rate_limit = 15.0

[[providers]]
name = "openai"
api = "openai"
base_url = "https://api.openai.com/v1"
profiles = { main = "${OPENAI_KEY}", backup = "sk-literal-backup-key" }

[[providers]]
name = "claude"
api = "anthropic"
base_url = "https://api.anthropic.com"
connect_timeout = 3.0
first_token_timeout = 30.0
idle_timeout = 20.0

[providers.profiles]
default = "${ANTHROPIC_KEY}"
"""
ENV = {"OPENAI_KEY": "sk-from-env-openai", "ANTHROPIC_KEY": "sk-ant-from-env"}


def test_defaults_match_the_design() -> None:
    config = Config(providers=providers())
    assert (config.fallbacks, dict(config.aliases)) == ((), {})
    assert (config.chain_workers, config.request_timeout) == (16, 120.0)
    assert attrs.astuple(config.retry) == (3, 0.5, 8.0)
    cooldown = config.cooldown
    assert (cooldown.profile_min, cooldown.profile_max, cooldown.model_max) == (5.0, 300.0, 3600.0)
    assert dict(cooldown.model_base) == {
        "rate_limit": 30.0,
        "transient": 10.0,
        "auth": 60.0,
        "balance": 60.0,
        "model_missing": 60.0,
    }
    assert (cooldown.disable_after, cooldown.disabled_probe_interval) == (3, 3600.0)
    claude = config.provider("claude")
    assert claude is not None
    assert (claude.connect_timeout, claude.first_token_timeout, claude.idle_timeout) == (
        5.0,
        60.0,
        60.0,
    )


def test_profiles_keep_their_order() -> None:
    openai = make_config().provider("openai")
    assert openai is not None
    assert list(openai.profiles) == ["main", "backup"]


def test_config_values_are_frozen() -> None:
    config = make_config()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.chain_workers = 3  # type: ignore[misc]


def test_from_toml_reads_every_field_and_expands_env(tmp_path: Path) -> None:
    path = tmp_path / "switchover.toml"
    path.write_text(TOML, encoding="utf-8")
    config = Config.from_toml(path, env=ENV)
    assert config.fallbacks == ("claude/claude-sonnet-4-5",)
    assert dict(config.aliases) == {"fast": "openai/gpt-4o-mini"}
    assert (config.chain_workers, config.request_timeout) == (8, 90.0)
    assert config.retry == RetryConfig(attempts=4, min_delay=0.25, max_delay=4.0)
    assert config.cooldown.model_base["rate_limit"] == 15.0
    assert config.cooldown.model_base["transient"] == 10.0
    assert (config.cooldown.disable_after, config.cooldown.model_max) == (5, 600.0)
    openai, claude = config.providers
    assert dict(openai.profiles) == {
        "main": "sk-from-env-openai",
        "backup": "sk-literal-backup-key",
    }
    assert dict(claude.profiles) == {"default": "sk-ant-from-env"}
    assert (claude.connect_timeout, claude.first_token_timeout, claude.idle_timeout) == (
        3.0,
        30.0,
        20.0,
    )
    assert config.secrets() == ("sk-from-env-openai", "sk-literal-backup-key", "sk-ant-from-env")


def test_from_toml_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "switchover.toml"
    path.write_text(TOML, encoding="utf-8")
    assert Config.from_toml(path).providers[1].profiles["default"] == "sk-ant-from-env"


def test_env_expansion_inside_a_longer_string() -> None:
    text = TOML.replace('"https://api.anthropic.com"', '"https://${HOST}/anthropic"')
    config = Config.from_toml_text(text, env={**ENV, "HOST": "proxy.local"})
    assert config.providers[1].base_url == "https://proxy.local/anthropic"


def field_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        Config.from_toml_text(text, env=ENV if env is None else env)
    assert raised.value.field in str(raised.value)
    return raised.value.field


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param("verbose = true\n" + TOML, "verbose", id="unknown-top-level-key"),
        pytest.param(
            TOML.replace("attempts = 4", "attempts = 4\njitter = 0.1"),
            "retry.jitter",
            id="unknown-retry-key",
        ),
        pytest.param(
            TOML.replace("model_max = 600.0", "model_max = 600.0\nmodel_min = 1.0"),
            "cooldown.model_min",
            id="unknown-cooldown-key",
        ),
        pytest.param(
            TOML.replace('api = "openai"', 'api = "openai"\norganization = "org-1"'),
            "providers[0].organization",
            id="unknown-provider-key",
        ),
        pytest.param(
            TOML.replace("rate_limit = 15.0", "overload = 15.0"),
            "cooldown.model_base.overload",
            id="unknown-health-kind",
        ),
        pytest.param(
            TOML.replace("chain_workers = 8", 'chain_workers = "8"'),
            "chain_workers",
            id="chain_workers-string",
        ),
        pytest.param(
            TOML.replace("chain_workers = 8", "chain_workers = 0"),
            "chain_workers",
            id="zero-workers",
        ),
        pytest.param(
            TOML.replace("request_timeout = 90.0", 'request_timeout = "90"'),
            "config.request_timeout",
            id="timeout-string",
        ),
        pytest.param(
            TOML.replace("request_timeout = 90.0", "request_timeout = -1.0"),
            "config.request_timeout",
            id="timeout-negative",
        ),
        pytest.param(
            TOML.replace("attempts = 4", "attempts = 2.5"), "retry.attempts", id="attempts-float"
        ),
        pytest.param(
            TOML.replace("attempts = 4", "attempts = 0"), "retry.attempts", id="attempts-zero"
        ),
        pytest.param(
            TOML.replace("min_delay = 0.25", "min_delay = 9.0"),
            "retry.max_delay",
            id="max-below-min",
        ),
        pytest.param(
            TOML.replace("profile_min = 2.0", "profile_min = true"),
            "cooldown.profile_min",
            id="bool-is-not-a-number",
        ),
        pytest.param(
            TOML.replace("profile_max = 120.0", "profile_max = 1.0"),
            "cooldown.profile_max",
            id="profile-max-below-min",
        ),
        pytest.param(
            TOML.replace("disable_after = 5", "disable_after = 0"),
            "cooldown.disable_after",
            id="disable_after-zero",
        ),
        pytest.param(
            TOML.replace("rate_limit = 15.0", "rate_limit = -15.0"),
            "cooldown.model_base.rate_limit",
            id="negative-model-base",
        ),
        pytest.param(
            TOML.replace('api = "anthropic"', 'api = "gemini"'),
            "providers['claude'].api",
            id="unknown-api",
        ),
        pytest.param(
            TOML.replace('"https://api.anthropic.com"', '"api.anthropic.com"'),
            "providers['claude'].base_url",
            id="url-without-scheme",
        ),
        pytest.param(
            TOML.replace("connect_timeout = 3.0", 'connect_timeout = "3s"'),
            "provider.connect_timeout",
            id="connect_timeout-string",
        ),
        pytest.param(
            TOML.replace('default = "${ANTHROPIC_KEY}"', 'default = ""'),
            "providers['claude'].profiles.default",
            id="empty-key",
        ),
        pytest.param(
            TOML.replace('default = "${ANTHROPIC_KEY}"', "default = 12345"),
            "providers['claude'].profiles.default",
            id="key-not-a-string",
        ),
        pytest.param(
            TOML.replace('name = "claude"', 'name = "openai"'), "providers.name", id="duplicate"
        ),
        pytest.param(
            TOML.replace('name = "claude"', 'name = "my provider"'),
            "providers.name",
            id="bad-name",
        ),
        pytest.param(
            TOML.replace('fast = "openai/gpt-4o-mini"', 'fast = "mistral/small"'),
            "aliases.fast",
            id="alias-to-unknown-provider",
        ),
        pytest.param(
            TOML.replace('"claude/claude-sonnet-4-5"', '"gemini/pro"'),
            "fallbacks[0]",
            id="fallback-to-unknown-provider",
        ),
        pytest.param(
            TOML.replace('fallbacks = ["claude/claude-sonnet-4-5"]', "fallbacks = [1]"),
            "fallbacks",
            id="fallback-not-a-string",
        ),
        pytest.param(
            TOML.replace("[aliases]", "[aliases]\nslow = 5"), "aliases", id="alias-not-a-string"
        ),
        pytest.param("chain_workers = 2\n", "providers", id="no-providers"),
        pytest.param('providers = "openai"\n', "providers", id="providers-not-tables"),
        pytest.param(
            'retry = "fast"\n' + TOML.split("\n[retry]", maxsplit=1)[0],
            "retry",
            id="retry-not-table",
        ),
        pytest.param("[[providers]\nname=", "toml", id="broken-toml"),
    ],
)
def test_bad_toml_raises_a_config_error_naming_the_field(text: str, field: str) -> None:
    assert field_of(text) == field


def test_a_missing_required_provider_field_names_the_provider_entry() -> None:
    text = TOML.replace('base_url = "https://api.openai.com/v1"\n', "")
    assert field_of(text) == "providers[0]"


@pytest.mark.parametrize("variable", ["OPENAI_KEY", "ANTHROPIC_KEY"])
def test_an_unset_env_variable_names_the_field(variable: str) -> None:
    env = {k: v for k, v in ENV.items() if k != variable}
    field = field_of(TOML, env=env)
    expected = (
        "providers[0].profiles.main"
        if variable == "OPENAI_KEY"
        else "providers[1].profiles.default"
    )
    assert field == expected
    with pytest.raises(ConfigError, match=variable):
        Config.from_toml_text(TOML, env=env)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_toml(tmp_path / "nope.toml")
    assert raised.value.field == "path"


def test_config_errors_never_quote_a_key() -> None:
    text = TOML.replace(
        'backup = "sk-literal-backup-key"', 'backup = "sk-literal-backup-key", x = 1'
    )
    with pytest.raises(ConfigError) as raised:
        Config.from_toml_text(text, env=ENV)
    assert "sk-" not in str(raised.value)


# --- the classes directly ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(lambda: RetryConfig(attempts=True), "retry.attempts", id="attempts-bool"),
        pytest.param(lambda: RetryConfig(min_delay=-1.0), "retry.min_delay", id="negative-delay"),
        pytest.param(
            lambda: RetryConfig(max_delay=float("inf")), "retry.max_delay", id="infinite-delay"
        ),
        pytest.param(lambda: CooldownConfig(profile_min=0), "cooldown.profile_min", id="zero-min"),
        pytest.param(
            lambda: CooldownConfig(model_base=[1, 2]), "cooldown.model_base", id="base-not-a-table"
        ),
        pytest.param(
            lambda: ProviderConfig(name="x", api="openai", base_url="https://x", profiles={}),
            "providers['x'].profiles",
            id="no-profiles",
        ),
        pytest.param(
            lambda: ProviderConfig(name="x", api="openai", base_url="https://x", profiles="k"),
            "profiles",
            id="profiles-not-a-table",
        ),
        pytest.param(
            lambda: ProviderConfig(
                name="x", api="openai", base_url="https://x", profiles={"bad name": "k"}
            ),
            "providers['x'].profiles",
            id="bad-profile-name",
        ),
        pytest.param(lambda: Config(providers=[]), "providers", id="empty-providers"),
        pytest.param(lambda: Config(providers=[{"name": "x"}]), "providers", id="dict-provider"),
        pytest.param(lambda: make_config(retry={"attempts": 2}), "retry", id="retry-dict"),
        pytest.param(lambda: make_config(cooldown=None), "cooldown", id="cooldown-none"),
        pytest.param(lambda: make_config(chain_workers=2048), "chain_workers", id="huge-pool"),
        pytest.param(lambda: make_config(fallbacks=("fast", "x/y")), "fallbacks[1]", id="fallback"),
    ],
)
def test_bad_values_raise_config_errors_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build()
    assert raised.value.field == field
    assert raised.value.reason


def test_fallbacks_may_use_aliases() -> None:
    assert make_config(fallbacks=("fast",)).fallbacks == ("fast",)
    assert make_config(fallbacks="openai/gpt-4o").fallbacks == ("openai/gpt-4o",)


def test_model_base_merges_with_the_defaults() -> None:
    cooldown = CooldownConfig(model_base={"auth": 5})
    assert cooldown.model_base["auth"] == 5.0
    assert cooldown.model_base["balance"] == 60.0


def test_provider_repr_shows_a_fingerprint_not_the_key() -> None:
    config = make_config()
    text = repr(config)
    assert OPENAI_MAIN not in text
    assert "sha256:" in text
    assert "main=" in text
