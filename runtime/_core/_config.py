"""Configuration: validated frozen values, built in code or loaded from TOML."""

from __future__ import annotations

import functools
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._errors import ConfigError, RequestRejected
from ._redact import REDACTED, Redactor, fingerprint
from ._types import MAX_SECONDS, Request
from ._vocab import ErrorKind

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
Api = Literal["openai", "anthropic"]
APIS: tuple[str, ...] = ("openai", "anthropic")
HEALTH_KINDS = ("rate_limit", "transient", "auth", "balance", "model_missing")


def _positive(field: str, value: object, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(
            field,
            f"must be a {'non-negative' if allow_zero else 'positive'} "
            f"finite number, got {value!r}",
        )
    if value > MAX_SECONDS:
        raise ConfigError(field, f"must be at most {MAX_SECONDS:g} seconds, got {value!r}")


def _number_field(*, allow_zero: bool = False) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _positive(
            f"{type(instance).__name__.removesuffix('Config').lower() or 'config'}."
            f"{attribute.name}",
            value,
            allow_zero=allow_zero,
        )

    return check


@attrs.frozen
class RetryConfig:
    """In-place retries of a transient or unknown error on the same key.

    ``attempts`` counts every try; between tries the chain sleeps full-jitter
    ``uniform(0, min(max_delay, min_delay * 2**i))``.
    """

    attempts: int = 3
    min_delay: float = attrs.field(default=0.5, validator=_number_field(allow_zero=True))
    max_delay: float = attrs.field(default=8.0, validator=_number_field(allow_zero=True))

    def __attrs_post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigError(
                "retry.attempts", f"must be an int, not {type(self.attempts).__name__}"
            )
        if not 1 <= self.attempts <= 20:
            raise ConfigError("retry.attempts", f"must be 1..20, got {self.attempts}")
        if self.max_delay < self.min_delay:
            raise ConfigError("retry.max_delay", "must not be below retry.min_delay")


def _default_model_base() -> Mapping[str, float]:
    return {
        "rate_limit": 30.0,
        "transient": 10.0,
        "auth": 60.0,
        "balance": 60.0,
        "model_missing": 60.0,
    }


def _model_base(value: object) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigError("cooldown.model_base", f"must be a table, not {type(value).__name__}")
    merged = dict(_default_model_base())
    for kind, seconds in value.items():
        if kind not in HEALTH_KINDS:
            raise ConfigError(
                f"cooldown.model_base.{kind}",
                f"unknown kind; expected one of {', '.join(HEALTH_KINDS)}",
            )
        _positive(f"cooldown.model_base.{kind}", seconds)
        merged[kind] = float(seconds)
    return merged


@attrs.frozen
class CooldownConfig:
    """Key and model cooldown tuning (seconds). Operators tune them; tests shrink them."""

    profile_min: float = attrs.field(default=5.0, validator=_number_field())
    profile_max: float = attrs.field(default=300.0, validator=_number_field())
    model_base: Mapping[str, float] = attrs.field(
        factory=_default_model_base, converter=_model_base
    )
    model_max: float = attrs.field(default=3600.0, validator=_number_field())
    disable_after: int = 3
    disabled_probe_interval: float = attrs.field(default=3600.0, validator=_number_field())

    def __attrs_post_init__(self) -> None:
        if self.profile_max < self.profile_min:
            raise ConfigError("cooldown.profile_max", "must not be below cooldown.profile_min")
        if (
            isinstance(self.disable_after, bool)
            or not isinstance(self.disable_after, int)
            or (self.disable_after < 1)
        ):
            raise ConfigError("cooldown.disable_after", "must be a positive int")


def _profiles(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError("profiles", f"must be a table of name = key, not {type(value).__name__}")
    return dict(value)


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _strings(field: str, value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(field, "must be a table of strings")
    return dict(value)


def _headers(value: object) -> Mapping[str, str]:
    return _strings("headers", value)


def _query(value: object) -> Mapping[str, str]:
    return _strings("query", value)


@attrs.frozen(repr=False)
class ProviderConfig:
    """One provider: its API flavour, base URL, key profiles (tried in order) and timeouts.

    ``headers`` and ``query`` are sent with every call (a gateway's token, Azure OpenAI's
    ``api-version``); ``key_header`` sends the key, as it is, in that header instead of the
    API's own (Azure OpenAI: ``"api-key"``). Header and query values count as secrets:
    never shown in a repr, redacted from messages.
    """

    name: str
    api: Api
    base_url: str
    profiles: Mapping[str, str] = attrs.field(converter=_profiles)
    connect_timeout: float = attrs.field(default=5.0, validator=_number_field())
    first_token_timeout: float = attrs.field(default=60.0, validator=_number_field())
    idle_timeout: float = attrs.field(default=60.0, validator=_number_field())
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers)
    query: Mapping[str, str] = attrs.field(factory=dict, converter=_query)
    key_header: str | None = None

    def __attrs_post_init__(self) -> None:
        where = f"providers[{self.name!r}]"
        for name, value in self.headers.items():
            if not _HEADER_NAME.match(name):
                raise ConfigError(f"{where}.headers", f"{name!r} is not a valid header name")
            if any(c in value for c in "\r\n\0"):
                raise ConfigError(
                    f"{where}.headers.{name}", "a header value cannot hold CR, LF or NUL"
                )
        if self.key_header is not None and (
            not isinstance(self.key_header, str) or not _HEADER_NAME.match(self.key_header)
        ):
            raise ConfigError(f"{where}.key_header", f"{self.key_header!r} is not a header name")
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                "providers.name", f"{self.name!r} must be letters, digits, '_', '.', '-'"
            )
        if self.api not in APIS:
            raise ConfigError(f"{where}.api", f"must be one of {', '.join(APIS)}, got {self.api!r}")
        if not isinstance(self.base_url, str) or not self.base_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(f"{where}.base_url", "must be an http:// or https:// URL")
        if not self.profiles:
            raise ConfigError(f"{where}.profiles", "needs at least one key profile")
        for profile, key in self.profiles.items():
            if not isinstance(profile, str) or not _NAME.match(profile):
                raise ConfigError(f"{where}.profiles", f"bad profile name {profile!r}")
            if not isinstance(key, str) or not key.strip():
                raise ConfigError(
                    f"{where}.profiles.{profile}", "the key must be a non-empty string"
                )
            if any(c.isspace() or not c.isprintable() for c in key.strip()):
                # A line break in a header value is a header injection, and it is echoed
                # in the transport's errors where no redaction can find the key whole.
                raise ConfigError(
                    f"{where}.profiles.{profile}",
                    "the key contains whitespace or a control character",
                )

    def __repr__(self) -> str:
        keys = ", ".join(f"{name}={fingerprint(key)}" for name, key in self.profiles.items())
        extra = ""
        if self.headers:
            extra += f", headers={sorted(self.headers)}"
        if self.query:
            extra += f", query={sorted(self.query)}"
        if self.key_header:
            extra += f", key_header={self.key_header!r}"
        text = (
            f"ProviderConfig(name={self.name!r}, api={self.api!r}, "
            f"base_url={public_url(self.base_url)!r}, profiles={{{keys}}}{extra})"
        )
        return _redactor(tuple(self.profiles.values())).known(text)


def public_url(url: str) -> str:
    """``url`` as it may be shown: a password and query values replaced (keys go there)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:{REDACTED}@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}={REDACTED}" if sep else name
        for name, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _providers(value: object) -> tuple[ProviderConfig, ...]:
    if isinstance(value, Mapping) or not isinstance(value, (list, tuple)):
        raise ConfigError("providers", "must be a list of ProviderConfig")
    for item in value:
        if not isinstance(item, ProviderConfig):
            raise ConfigError(
                "providers", f"entries must be ProviderConfig, not {type(item).__name__}"
            )
    return tuple(value)


def _fallbacks(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError("fallbacks", "must be a list of model strings")
    return tuple(value)


def _aliases(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError("aliases", 'must be a table of alias = "provider/model"')
    return dict(value)


@attrs.frozen(repr=False)
class Config:
    """Everything a :class:`Runtime` needs.

    Example:
        >>> Config(providers=[ProviderConfig(name="openai", api="openai",
        ...        base_url="https://api.openai.com/v1", profiles={"main": "sk-..."})])
    """

    providers: tuple[ProviderConfig, ...] = attrs.field(converter=_providers)
    fallbacks: tuple[str, ...] = attrs.field(default=(), converter=_fallbacks)
    aliases: Mapping[str, str] = attrs.field(factory=dict, converter=_aliases)
    retry: RetryConfig = attrs.field(factory=RetryConfig)
    cooldown: CooldownConfig = attrs.field(factory=CooldownConfig)
    chain_workers: int = 16
    request_timeout: float = attrs.field(default=120.0, validator=_number_field())

    def __attrs_post_init__(self) -> None:
        if not self.providers:
            raise ConfigError("providers", "configure at least one provider")
        names = [p.name for p in self.providers]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError("providers.name", f"{name!r} is configured twice")
        if not isinstance(self.retry, RetryConfig):
            raise ConfigError("retry", "must be a RetryConfig")
        if not isinstance(self.cooldown, CooldownConfig):
            raise ConfigError("cooldown", "must be a CooldownConfig")
        if (
            isinstance(self.chain_workers, bool)
            or not isinstance(self.chain_workers, int)
            or (not 1 <= self.chain_workers <= 1024)
        ):
            raise ConfigError(
                "chain_workers", f"must be an int in 1..1024, got {self.chain_workers!r}"
            )
        # A chain entry that names no configured provider would reject every request.
        entries = [(f"aliases.{a}", a) for a in self.aliases]
        entries += [(f"fallbacks[{i}]", f) for i, f in enumerate(self.fallbacks)]
        for field, name in entries:
            try:
                resolve_model(self, name)
            except RequestRejected as error:
                raise ConfigError(field, str(error)) from None

    def __repr__(self) -> str:
        fields = ", ".join(f"{a.name}={getattr(self, a.name)!r}" for a in attrs.fields(Config))
        return _redactor(self.secrets()).known(f"Config({fields})")

    def provider(self, name: str) -> ProviderConfig | None:
        """The provider called ``name``, or None."""
        return next((p for p in self.providers if p.name == name), None)

    def secrets(self) -> tuple[str, ...]:
        """Every configured API key, header and query value (for redaction)."""
        return tuple(
            secret
            for p in self.providers
            for secret in (*p.profiles.values(), *p.headers.values(), *p.query.values())
        )

    @classmethod
    def from_toml(
        cls, path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
    ) -> Config:
        """Load a TOML file; ``${VAR}`` in any string is replaced from ``env`` (os.environ)."""
        shown = repr(os.fspath(path))
        try:
            raw = Path(path).read_bytes()
        except OSError as error:
            raise ConfigError("path", f"cannot read {shown}: {error.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(
                "toml", f"{shown} is not UTF-8 text (byte {error.start}: {error.reason})"
            ) from None
        return _load(text, env, shown)

    @classmethod
    def from_toml_text(cls, text: str, *, env: Mapping[str, str] | None = None) -> Config:
        """Like :meth:`from_toml`, from a string."""
        return _load(text, env, "the TOML text")


def _load(text: str, env: Mapping[str, str] | None, source: str) -> Config:
    try:
        data = _expand(tomllib.loads(text), os.environ if env is None else env, "")
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("toml", f"{source}: {error}") from None
    except RecursionError:
        raise ConfigError("toml", f"{source}: nested too deeply") from None
    return _build(data)


def _expand(value: object, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(where or "config", f"environment variable ${{{name}}} is not set")
            return env[name]

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


T = TypeVar("T", bound=attrs.AttrsInstance)


def _table(cls: type[T], data: object, where: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(where, f"must be a table, not {type(data).__name__}")
    known = {a.name for a in attrs.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{where}.{key}" if where else key,
                f"unknown key; expected one of {', '.join(sorted(known))}",
            )
    try:
        return cls(**data)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(where or "config", str(error)) from None


def _build(data: dict[str, Any]) -> Config:
    providers = data.get("providers", [])
    if not isinstance(providers, list):
        raise ConfigError("providers", "must be an array of tables ([[providers]])")
    built = dict(data)
    built["providers"] = [
        _table(ProviderConfig, p, f"providers[{i}]") for i, p in enumerate(providers)
    ]
    if "retry" in data:
        built["retry"] = _table(RetryConfig, data["retry"], "retry")
    if "cooldown" in data:
        built["cooldown"] = _table(CooldownConfig, data["cooldown"], "cooldown")
    return _table(Config, built, "")


# --- model resolution: a request's chain, before any call is made ---------------------------


@attrs.frozen
class ChainEntry:
    """A resolved chain entry: ``key`` is ``provider/model``, the health table's key."""

    key: str
    provider: str
    model: str


def resolve_model(config: Config, name: str) -> ChainEntry:
    """Resolve a model string or alias to its provider and model id.

    The provider is everything before the first ``/``; the model id is the rest, so
    ``openrouter/anthropic/claude-x`` is provider ``openrouter``, model ``anthropic/claude-x``.
    A model string holding a configured API key (a paste gone wrong) is rejected: model
    names travel into health rows, attempts, snapshots and logs.
    """
    redact = _redactor(config.secrets())
    shown = repr(redact(name))  # never echo a key back in the error
    target = config.aliases.get(name.strip(), name.strip())
    if redact.known(target) != target:
        raise RequestRejected(
            f"model {shown} contains a configured API key", kind=ErrorKind.BAD_REQUEST
        )
    provider, slash, model = target.partition("/")
    if not slash or not model:
        raise RequestRejected(
            f"model {shown} is not 'provider/model' and no alias has that name",
            kind=ErrorKind.BAD_REQUEST,
        )
    if config.provider(provider) is None:
        known = ", ".join(p.name for p in config.providers)
        raise RequestRejected(
            f"model {shown} names provider {provider!r}, which is not configured "
            f"(configured: {known})",
            kind=ErrorKind.BAD_REQUEST,
        )
    return ChainEntry(key=f"{provider}/{model}", provider=provider, model=model)


@functools.lru_cache(maxsize=8)
def _redactor(secrets: tuple[str, ...]) -> Redactor:
    # resolve_model runs for every chain entry of every request; build each redactor once.
    return Redactor(secrets)


def configured_models(config: Config) -> frozenset[str]:
    """The health keys the configuration names (fallbacks, alias targets): always listed
    by ``health()``, never expired from the health table."""
    return frozenset(
        resolve_model(config, m).key for m in (*config.fallbacks, *config.aliases.values())
    )


def build_chain(config: Config, request: Request) -> tuple[ChainEntry, ...]:
    """``[model, *fallback_models, *config.fallbacks]``, resolved, first occurrence kept."""
    chain: dict[str, ChainEntry] = {}
    for name in (request.model, *request.fallback_models, *config.fallbacks):
        entry = resolve_model(config, name)
        chain.setdefault(entry.key, entry)
    return tuple(chain.values())
