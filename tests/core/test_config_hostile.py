"""The config loader on arbitrary TOML: it returns a Config or raises ConfigError, nothing
else, whatever the text, the types or the nesting."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchover import Config, ConfigError

HOSTILE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENV = {"KEY": "sk-from-env-0123456789", "EMPTY": ""}


def toml_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or char == "\x7f":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    """A value as TOML (inline tables and arrays, so any nesting is one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(data: dict[str, Any]) -> str:
    return "\n".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in data.items()) + "\n"


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["openai", "anthropic", "http://x", "https://api.example", "${KEY}", "${UNSET_VAR}", "a/b"]
)
SCALAR = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    TEXT,
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


NAME = st.sampled_from(["openai", "claude", "b-2"])
SECONDS = st.one_of(st.floats(min_value=0.001, max_value=1000), st.integers(1, 100))
VALID_PROVIDER = st.fixed_dictionaries(
    {
        "name": NAME,
        "api": st.sampled_from(["openai", "anthropic"]),
        "base_url": st.sampled_from(["https://api.example/v1", "http://127.0.0.1:9"]),
        "profiles": st.dictionaries(NAME, st.just("${KEY}") | TEXT, min_size=1, max_size=3),
    },
    optional={"connect_timeout": SECONDS, "first_token_timeout": SECONDS, "idle_timeout": SECONDS},
)
MODEL = st.sampled_from(["openai/gpt-4o", "claude/x", "nowhere/x", "fast", "no-slash"])
VALID = st.fixed_dictionaries(
    {"providers": st.lists(VALID_PROVIDER, min_size=1, max_size=3, unique_by=lambda p: p["name"])},
    optional={
        "fallbacks": st.lists(MODEL, max_size=3),
        "aliases": st.dictionaries(st.sampled_from(["fast", "cheap"]), MODEL, max_size=2),
        "retry": st.fixed_dictionaries(
            {},
            optional={
                "attempts": st.integers(1, 20),
                "min_delay": st.floats(0, 1),
                "max_delay": st.floats(1, 10),
            },
        ),
        "cooldown": st.fixed_dictionaries(
            {},
            optional={
                "profile_min": st.floats(0.1, 5),
                "profile_max": st.floats(5, 500),
                "model_base": st.dictionaries(
                    st.sampled_from(["rate_limit", "auth", "transient"]), SECONDS, max_size=3
                ),
                "disable_after": st.integers(1, 5),
            },
        ),
        "chain_workers": st.integers(1, 64),
        "request_timeout": SECONDS,
    },
)


@st.composite
def corrupted(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with one value, anywhere in it, replaced by something hostile."""
    document = draw(VALID)
    node: Any = document
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        node[key] = draw(VALUE)
        break
    if draw(st.booleans()):
        document[draw(st.sampled_from(["bogus", "retry", "cooldown", "aliases"]))] = draw(VALUE)
    return document


DOCUMENT = st.one_of(VALID, corrupted())


def load(text: str) -> Config | None:
    """The loaded config, or None after checking the ConfigError names its field."""
    error: ConfigError | None = None
    try:
        return Config.from_toml_text(text, env=ENV)
    except ConfigError as raised:
        error = raised
    assert error.field, "a ConfigError names its field"
    assert str(error).startswith(error.field)
    return None


@HOSTILE
@given(DOCUMENT)
def test_any_config_shaped_toml_loads_or_raises_config_error(data: dict[str, Any]) -> None:
    config = load(toml_document(data))
    if config is not None:
        assert config == Config(
            providers=config.providers,
            fallbacks=config.fallbacks,
            aliases=config.aliases,
            retry=config.retry,
            cooldown=config.cooldown,
            chain_workers=config.chain_workers,
            request_timeout=config.request_timeout,
        ), "what loads passes the same validation as a Config built in code"


@HOSTILE
@given(st.text(max_size=300))
def test_any_text_loads_or_raises_config_error(text: str) -> None:
    load(text)


def test_a_valid_document_round_trips_through_the_writer() -> None:
    text = toml_document(
        {
            "providers": [
                {
                    "name": "openai",
                    "api": "openai",
                    "base_url": "https://api.openai.com/v1",
                    "profiles": {"main": "${KEY}"},
                }
            ],
            "retry": {"attempts": 2},
            "chain_workers": 3,
        }
    )
    config = load(text)
    assert config is not None
    assert config.providers[0].profiles == {"main": ENV["KEY"]}
    assert config.retry.attempts == 2
    assert config.chain_workers == 3
