"""Turning a request into its model chain, before any call is made."""

from __future__ import annotations

import functools

import attrs

from ._config import Config
from ._errors import ErrorKind, RequestRejected
from ._redact import Redactor
from ._types import Request


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


def build_chain(config: Config, request: Request) -> tuple[ChainEntry, ...]:
    """``[model, *fallback_models, *config.fallbacks]``, resolved, first occurrence kept."""
    chain: dict[str, ChainEntry] = {}
    for name in (request.model, *request.fallback_models, *config.fallbacks):
        entry = resolve_model(config, name)
        chain.setdefault(entry.key, entry)
    return tuple(chain.values())
