"""SharedConfig and the [shared] table: validation, ${ENV} passwords, no password shown."""

from __future__ import annotations

import pytest
from support import make_config
from switchover import Config, ConfigError, SharedConfig

PASSWORD = "hunter2-Redis-Secret"

TOML = """
[[providers]]
name = "openai"
api = "openai"
base_url = "https://api.openai.com/v1"
profiles = { main = "sk-proj-abcdefghijklmnop" }

[shared]
url = "rediss://app:${REDIS_PASSWORD}@cache.internal:6380/2"
namespace = "prod.eu"
probe_grace = 2.5
"""


def test_from_toml_reads_the_shared_table_and_expands_the_password() -> None:
    config = Config.from_toml_text(TOML, env={"REDIS_PASSWORD": PASSWORD})
    assert config.shared is not None
    assert config.shared.url == f"rediss://app:{PASSWORD}@cache.internal:6380/2"
    assert config.shared.namespace == "prod.eu"
    assert config.shared.probe_grace == 2.5
    assert Config.from_toml_text(TOML.split("[shared]", maxsplit=1)[0]).shared is None


def test_the_password_never_shows_in_a_repr() -> None:
    shared = SharedConfig(url=f"redis://:{PASSWORD}@localhost:6379/0")
    config = make_config(shared=shared)
    assert PASSWORD not in repr(shared)
    assert PASSWORD not in repr(config)
    assert "redis://:***@localhost:6379/0" in repr(shared)


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"url": "http://localhost:6379"}, "shared.url", "redis://"),
        ({"url": "redis://"}, "shared.url", "redis://"),
        ({"url": f"redis://:{PASSWORD}@h:99999"}, "shared.url", "port"),
        ({"url": f"redis://:{PASSWORD}@h:6379/db"}, "shared.url", "database number"),
        ({"url": 6379}, "shared.url", "string"),
        ({"url": "redis://h", "namespace": "a b"}, "shared.namespace", "letters"),
        ({"url": "redis://h", "timeout": 0}, "shared.timeout", "positive"),
        ({"url": "redis://h", "reconnect_min": 2.0}, "shared.reconnect_max", "below"),
        ({"url": "redis://h", "probe_grace": -1}, "shared.probe_grace", "non-negative"),
    ],
)
def test_bad_values_name_the_field_and_never_the_password(
    fields: dict[str, object], field: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        SharedConfig(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert says in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_unknown_keys_in_the_shared_table_are_named() -> None:
    with pytest.raises(ConfigError, match=r"shared\.urll"):
        Config.from_toml_text(TOML.replace("\nurl =", "\nurll ="), env={"REDIS_PASSWORD": "x"})


def test_a_missing_env_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="REDIS_PASSWORD"):
        Config.from_toml_text(TOML, env={})


def test_shared_must_be_a_shared_config() -> None:
    with pytest.raises(ConfigError, match="SharedConfig"):
        make_config(shared="redis://localhost")
