"""Turning a request into its model chain, before any call is made."""

from __future__ import annotations

import attrs

from ._config import Config
from ._errors import ErrorKind, RequestRejected
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
    """
    target = config.aliases.get(name.strip(), name.strip())
    provider, slash, model = target.partition("/")
    if not slash or not model:
        raise RequestRejected(
            f"model {name!r} is not 'provider/model' and no alias has that name",
            kind=ErrorKind.BAD_REQUEST,
        )
    if config.provider(provider) is None:
        known = ", ".join(p.name for p in config.providers)
        raise RequestRejected(
            f"model {name!r} names provider {provider!r}, which is not configured "
            f"(configured: {known})",
            kind=ErrorKind.BAD_REQUEST,
        )
    return ChainEntry(key=f"{provider}/{model}", provider=provider, model=model)


def build_chain(config: Config, request: Request) -> tuple[ChainEntry, ...]:
    """``[model, *fallback_models, *config.fallbacks]``, resolved, first occurrence kept."""
    chain: dict[str, ChainEntry] = {}
    for name in (request.model, *request.fallback_models, *config.fallbacks):
        entry = resolve_model(config, name)
        chain.setdefault(entry.key, entry)
    return tuple(chain.values())
