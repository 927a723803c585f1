"""The systems compared on each scenario: switchover itself and the oracle.

The baselines (the seed port and LiteLLM's Router) live in :mod:`bench.baselines`.
Every system gets the same operator settings, divided by the scenario's speedup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import httpx
from switchover import (
    ChainExhausted,
    Config,
    CooldownConfig,
    DeadlineExceeded,
    ProviderConfig,
    Request,
    RequestRejected,
    RetryConfig,
    Runtime,
    StreamInterrupted,
    SwitchoverError,
    TextDelta,
)
from switchover.testing import History, Violation

from ._client import HttpStatusError, StreamEventError, StreamTruncated, stream_text
from ._fleet import QuotaBook, key_for
from ._load import CLIENT_THREADS, Clock, Outcome, Planned
from ._scenario import Scenario

#: How often (story-independent, wall seconds) switchover's health and keys are sampled.
SAMPLE_EVERY = 0.02


def target_label(provider: str, model: str, profile: str) -> str:
    return f"{provider}/{model}@{profile}"


@attrs.frozen
class Sample:
    """switchover's view at one moment: each model's health state, each key's state."""

    at: float
    models: Mapping[str, str]
    keys: Mapping[str, str]


def switchover_config(scenario: Scenario, urls: Mapping[str, str]) -> Config:
    """A runtime config for the fleet, with the operator's settings on the run's clock."""
    op = scenario.operator
    s = scenario.speedup
    base = CooldownConfig()
    return Config(
        providers=[
            ProviderConfig(
                name=p.name,
                api="openai" if p.api == "openai" else "anthropic",
                base_url=urls[p.name],
                profiles={profile: key_for(p.name, profile) for profile in p.profiles},
                key_order="round_robin" if p.key_order == "round_robin" else "priority",
                connect_timeout=op.connect_timeout / s,
                first_token_timeout=op.first_token_timeout / s,
                idle_timeout=op.idle_timeout / s,
            )
            for p in scenario.providers
        ],
        retry=RetryConfig(
            attempts=op.retry_attempts,
            min_delay=op.retry_min_delay / s,
            max_delay=op.retry_max_delay / s,
        ),
        cooldown=CooldownConfig(
            profile_min=op.profile_min / s,
            profile_max=op.profile_max / s,
            model_base={kind: seconds / s for kind, seconds in base.model_base.items()},
            model_max=op.model_max / s,
            disabled_probe_interval=op.disabled_probe_interval / s,
        ),
        chain_workers=CLIENT_THREADS,
        request_timeout=op.request_timeout / s,
    )


class Switchover:
    """switchover's Runtime on the fleet; samples its health and key states as it runs, and
    records its history (:class:`switchover.testing.History`) for :meth:`violations`.

    With ``metrics``, the runtime counts for Prometheus, and ``prometheus`` holds its
    samples in the text format once it has stopped.
    """

    name = "switchover"

    def __init__(self, *, metrics: bool = False) -> None:
        self.metrics = metrics
        self.prometheus: str | None = None
        self.samples: list[Sample] = []
        self._rt: Runtime | None = None
        self._history = History()
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._clock: Clock | None = None
        self._scenario: Scenario | None = None

    def start(self, scenario: Scenario, urls: Mapping[str, str]) -> None:
        self._scenario = scenario
        self._history = History()
        self._rt = Runtime(
            switchover_config(scenario, urls), observers=[self._history], metrics=self.metrics
        ).start()
        self.samples = []

    def violations(self) -> tuple[Violation, ...]:
        """The rules the run broke, checked against its config; call once its request
        threads have ended (a request still open is one with no terminal outcome)."""
        assert self._rt is not None
        return self._history.check(self._rt.config)

    def watch(self, clock: Clock) -> None:
        """Sample ``rt.health()`` and the key profiles in ``rt.inspect()`` until stopped."""
        self._clock = clock
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample, name="chaos-sampler", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        assert self._rt is not None
        assert self._clock is not None
        while not self._stop.wait(SAMPLE_EVERY):
            try:
                health = self._rt.health()
                snapshot = self._rt.inspect(ask=False)
            except SwitchoverError:
                return
            keys = {}
            for actor in snapshot.actors:
                if actor.kind == "profile":
                    state = actor.state
                    cooling = (state.get("cooldown_remaining") or 0.0) > 0
                    keys[f"{state['provider']}@{state['profile']}"] = (
                        "cooling" if cooling else "ready"
                    )
            self.samples.append(
                Sample(
                    at=self._clock.story(),
                    models={m: str(h.state) for m, h in health.items()},
                    keys=keys,
                )
            )

    def send(
        self, planned: Planned, messages: Sequence[Mapping[str, Any]], first: Callable[[], None]
    ) -> Outcome:
        assert self._rt is not None
        assert self._scenario is not None
        chain = self._scenario.chain
        request = Request(
            model=chain[0],
            fallback_models=chain[1:],
            messages=messages,
            max_tokens=self._scenario.load.max_tokens,
        )
        try:
            with self._rt.stream(request) as stream:
                for event in stream:
                    if isinstance(event, TextDelta):
                        first()
                served = stream.served_by
            provider, model = served.model.split("/", 1)
            return Outcome(served=target_label(provider, model, served.profile))
        except ChainExhausted as error:
            wait = error.retry_after
            return Outcome(
                error="chain exhausted",
                retry_after=None if wait is None else wait * self._scenario.speedup,
            )
        except RequestRejected as error:
            return Outcome(error=f"rejected: {error.kind}")
        except DeadlineExceeded:
            return Outcome(error="deadline")
        except StreamInterrupted as error:
            return Outcome(error=f"interrupted: {error.kind}")

    def stop(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        if self._rt is not None:
            self._rt.stop()
            if self.metrics:
                self.prometheus = prometheus_text(self._rt)


def prometheus_text(rt: Runtime) -> str:
    """The runtime's metrics in the Prometheus text format (after stop: counters only)."""
    import prometheus_client

    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(rt.metrics_collector())
    text: str = prometheus_client.generate_latest(registry).decode()
    return text


#: Story seconds the oracle looks ahead: its call reaches the fleet a moment after it
#: decides, and a fault starting in between must not catch it.
LOOKAHEAD = 1.0


def healthy_target(
    scenario: Scenario, story: float, quotas: QuotaBook | None = None
) -> tuple[str, str, str] | None:
    """The first target in chain order with no fault active from ``story`` to
    ``story + LOOKAHEAD`` and room in its ``quotas``; failing that, the first one with
    room whose faults only fail some calls; None when every one is down or over quota."""
    softest: tuple[str, str, str] | None = None
    for provider, model, profile in scenario.targets():
        active = [
            f
            for f in scenario.faults
            if f.target.matches(provider, model, profile)
            and (f.active(story) or f.active(story + LOOKAHEAD))
        ]
        if any(f.hard for f in active) or (
            quotas is not None and not quotas.has_room(provider, model, profile, story)
        ):
            continue
        if not active:
            return provider, model, profile
        if softest is None:
            softest = (provider, model, profile)
    return softest


class Oracle:
    """Knows the fault schedule and the quotas: sends each request straight to a target
    healthy at that moment with room in its quota, over a direct httpx stream; with none
    it fails at once, calling no one. It counts its own calls against each quota, on a
    window ``LOOKAHEAD`` longer than the fleet's (its calls reach the fleet a moment after
    it counts them)."""

    name = "oracle"

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._scenario: Scenario | None = None
        self._urls: Mapping[str, str] = {}
        self._clock: Clock | None = None
        self._quotas = QuotaBook(())
        self._choosing = threading.Lock()

    def start(self, scenario: Scenario, urls: Mapping[str, str]) -> None:
        self._scenario = scenario
        self._urls = urls
        self._quotas = QuotaBook(scenario.quotas, slack=LOOKAHEAD)
        self._client = httpx.Client(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=CLIENT_THREADS)
        )

    def watch(self, clock: Clock) -> None:
        self._clock = clock

    def send(
        self, planned: Planned, messages: Sequence[Mapping[str, Any]], first: Callable[[], None]
    ) -> Outcome:
        assert self._client is not None
        assert self._scenario is not None
        scenario = self._scenario
        story = self._clock.story() if self._clock is not None else planned.at
        with self._choosing:  # a target and its quota count, before another request's turn
            target = healthy_target(scenario, story, self._quotas)
            if target is not None:
                self._quotas.take(*target, story)
        if target is None:
            return Outcome(error="everything down")
        provider_name, model, profile = target
        provider = scenario.provider(provider_name)
        op = scenario.operator
        try:
            stream_text(
                self._client,
                api=provider.api,
                base_url=self._urls[provider_name],
                key=key_for(provider_name, profile),
                model=model,
                messages=messages,
                max_tokens=scenario.load.max_tokens,
                timeout=httpx.Timeout(op.request_timeout / scenario.speedup),
                on_first=first,
            )
        except HttpStatusError as error:
            return Outcome(error=f"http {error.status}")
        except (StreamEventError, StreamTruncated, httpx.HTTPError) as error:
            return Outcome(error=type(error).__name__)
        return Outcome(served=target_label(provider_name, model, profile))

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
