"""LiteLLM's Router on the fleet: the same deployments, keys and fallbacks as switchover.

Each (model, key) pair is one deployment of the model group named after the chain entry,
ordered like the key profiles (``order``: the first key first); the groups fall back in
chain order. Everything else is LiteLLM's own default, with its times scaled like every
other system's: ``cooldown_time`` = the operator's ``profile_min`` (LiteLLM's default is
5 s too), ``stream_timeout`` = ``first_token_timeout``, ``timeout`` = ``request_timeout``,
``num_retries`` = ``retry_attempts`` - 1. LiteLLM's failure-counting window for
``allowed_fails`` is one wall-clock minute and cannot be scaled, so in a compressed run it
spans the whole scenario.

Installed with the ``bench`` extra (``pip install 'switchover[bench]'``); without it the
benchmark shows the row as not installed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._fleet import key_for
from .._load import Outcome, Planned
from .._scenario import Scenario

NOT_INSTALLED = "LiteLLM is not installed (pip install 'switchover[bench]')"


def import_litellm() -> Any:
    """Import LiteLLM offline and quiet, or raise ImportError."""
    # Its model price map is fetched from the network at import unless told otherwise.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return litellm


def make() -> LiteLLM | str:
    """The system, or why it cannot run."""
    try:
        import_litellm()
    except ImportError:
        return NOT_INSTALLED
    return LiteLLM()


def model_list(scenario: Scenario, urls: Mapping[str, str]) -> list[dict[str, Any]]:
    """One deployment per (chain entry, key profile)."""
    deployments = []
    for entry in scenario.chain:
        provider_name, model = entry.split("/", 1)
        provider = scenario.provider(provider_name)
        prefix = "openai" if provider.api == "openai" else "anthropic"
        for order, profile in enumerate(provider.profiles, start=1):
            deployments.append(
                {
                    "model_name": entry,
                    "litellm_params": {
                        "model": f"{prefix}/{model}",
                        "api_key": key_for(provider_name, profile),
                        "api_base": urls[provider_name],
                        "order": order,
                    },
                }
            )
    return deployments


def make_router(scenario: Scenario, urls: Mapping[str, str]) -> Any:
    litellm = import_litellm()
    op = scenario.operator
    s = scenario.speedup
    chain = list(scenario.chain)
    return litellm.Router(
        model_list=model_list(scenario, urls),
        fallbacks=[{chain[0]: chain[1:]}] if len(chain) > 1 else [],
        num_retries=op.retry_attempts - 1,
        cooldown_time=op.profile_min / s,
        timeout=op.request_timeout / s,
        stream_timeout=op.first_token_timeout / s,
    )


class LiteLLM:
    """LiteLLM's Router as a benchmark system (synchronous streaming calls)."""

    name = "litellm"
    #: LiteLLM spends about 13 ms of CPU per streamed request on this machine (switchover
    #: about 1 ms); at the suite's compression that alone would saturate a core, so its
    #: runs are compressed this many times less: the same story, load and seed, slower.
    slowdown = 4

    def __init__(self) -> None:
        self._router: Any = None
        self._scenario: Scenario | None = None

    def start(self, scenario: Scenario, urls: Mapping[str, str]) -> None:
        self._scenario = scenario
        self._router = make_router(scenario, urls)

    def send(
        self, planned: Planned, messages: Sequence[Mapping[str, Any]], first: Callable[[], None]
    ) -> Outcome:
        assert self._router is not None
        assert self._scenario is not None
        try:
            response = self._router.completion(
                model=self._scenario.chain[0],
                messages=list(messages),
                stream=True,
                max_tokens=self._scenario.load.max_tokens,
            )
            for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    first()
        except Exception as error:  # LiteLLM raises its own tree; any failure is a failure
            return Outcome(error=type(error).__name__)
        return Outcome(served="litellm")

    def stop(self) -> None:
        self._router = None
