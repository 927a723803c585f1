"""Prometheus metrics (the ``metrics`` extra): an observer that counts, and a collector.

``Runtime(config, metrics=True)`` installs :class:`Metrics` among its observers; the
collector from ``rt.metrics_collector()`` yields its counters and histograms plus gauges
read at scrape time from the runtime's published state (``rt.inspect(ask=False)`` and
``rt.health()``: no message is sent to any actor). ``GET /metrics`` on the debug server
serves the same collector.

Labels are bounded by the configuration: providers, profiles (never keys), chain entries,
error kinds and outcomes. A model string a caller chose that is no configured fallback or
alias target gets its own label only while fewer than :data:`EXTRA_MODELS` such strings
have been seen; later ones are counted under ``other``. No request id, no free text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._core._config import Config, resolve_model
from ._core._errors import ConfigError, SwitchoverError
from ._core._observe import (
    AttemptBegan,
    AttemptRecord,
    KeyChange,
    ModelChange,
    Observer,
    RequestClosed,
    RequestOpened,
)
from ._core._redact import Redactor
from ._core._vocab import HealthState
from ._core._walks import Step, Walks

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ._runtime import Runtime

#: Model strings outside the config that get a label of their own (then: ``other``).
EXTRA_MODELS = 32
OTHER = "other"
#: Label value for "none" (no error kind, no served model).
NONE = "none"
#: Seconds: LLM calls take from tens of milliseconds to minutes.
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
PREFIX = "switchover"
INSTALL = "metrics need prometheus-client: pip install 'switchover[metrics]'"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError("metrics", INSTALL) from None
    return prometheus_client


class ModelLabels:
    """Chain entry keys as bounded label values (see the module docstring)."""

    def __init__(self, config: Config, redact: Redactor) -> None:
        known = {
            resolve_model(config, m).key for m in (*config.fallbacks, *config.aliases.values())
        }
        self._labels = {model: redact.known(model) for model in known}
        self._extra = 0
        self._redact = redact
        self._lock = threading.Lock()

    def __call__(self, model: str | None) -> str:
        if model is None:
            return NONE
        label = self._labels.get(model)
        if label is not None:
            return label
        with self._lock:
            if self._extra < EXTRA_MODELS and model not in self._labels:
                self._extra += 1
                self._labels[model] = self._redact.known(model)
        return self._labels.get(model, OTHER)


class _Cached:
    """A labelled metric whose children are kept by label values: ``labels()`` of
    prometheus-client checks and locks on every call, a dict lookup does not. Bounded,
    as the label values are."""

    __slots__ = ("_children", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:  # a race makes it twice; prometheus-client returns the same child
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics(Observer):
    """Counters and histograms fed by the observer hooks, in a registry of their own.

    Args:
        config: the runtime's configuration, which bounds every label.
        redact: removes configured keys from model strings a caller chose.
    """

    def __init__(self, config: Config, redact: Redactor) -> None:
        prom = _prometheus()
        self.registry = prom.CollectorRegistry(auto_describe=False)
        self.model = ModelLabels(config, redact)
        self._walks = Walks()
        r = self.registry

        def counter(*args: Any, **kwargs: Any) -> _Cached:
            return _Cached(prom.Counter(*args, **kwargs))

        def histogram(*args: Any, **kwargs: Any) -> _Cached:
            return _Cached(prom.Histogram(*args, **kwargs))

        self.requests = counter(
            f"{PREFIX}_requests",
            "Requests by their first chain entry and how they ended.",
            ["model", "outcome"],
            registry=r,
        )
        self.attempts = counter(
            f"{PREFIX}_attempts",
            "Provider calls by outcome (ok, error, released) and error kind.",
            ["provider", "model", "profile", "outcome", "kind"],
            registry=r,
        )
        self.skips = counter(
            f"{PREFIX}_skips",
            "Chain entries (scope=model) or keys (scope=key) skipped without a call.",
            ["provider", "model", "scope"],
            registry=r,
        )
        self.failovers = counter(
            f"{PREFIX}_failovers",
            "Calls on a new chain entry after an earlier one failed or was skipped.",
            ["from_model", "to_model", "because"],
            registry=r,
        )
        self.retries = counter(
            f"{PREFIX}_retries",
            "In-place retries: a call on the same entry and key right after it failed.",
            ["provider", "model", "profile"],
            registry=r,
        )
        self.key_cooldowns = counter(
            f"{PREFIX}_key_cooldowns",
            "Times a key was put into cooldown, by error kind.",
            ["provider", "profile", "kind"],
            registry=r,
        )
        self.model_transitions = counter(
            f"{PREFIX}_model_transitions",
            "Model health state changes, by the state entered.",
            ["model", "state"],
            registry=r,
        )
        self.ttft = histogram(
            f"{PREFIX}_time_to_first_token_seconds",
            "From the request's start to its first event, by the serving chain entry.",
            ["provider", "model"],
            buckets=BUCKETS,
            registry=r,
        )
        self.duration = histogram(
            f"{PREFIX}_request_duration_seconds",
            "From the request's start to its end, by serving chain entry (none) and outcome.",
            ["model", "outcome"],
            buckets=BUCKETS,
            registry=r,
        )

    # -- hooks -------------------------------------------------------------------------------

    def request_opened(self, event: RequestOpened) -> None:
        self._walks.opened(event)

    def attempt_began(self, event: AttemptBegan) -> None:
        self._step(self._walks.began(event))

    def attempt_ended(self, event: AttemptRecord) -> None:
        model = self.model(event.model)
        if event.outcome == "skipped":
            scope = "model" if event.profile is None else "key"
            self.skips.labels(event.provider, model, scope).inc()
        else:
            kind = NONE if event.kind is None else str(event.kind)
            self.attempts.labels(
                event.provider, model, event.profile or NONE, event.outcome, kind
            ).inc()
        opened = self._walks.opened_at(event.request_id)
        self._step(self._walks.ended(event))
        if event.first_at is not None and opened is not None:
            self.ttft.labels(event.provider, model).observe(max(0.0, event.first_at - opened))

    def _step(self, step: Step | None) -> None:
        if step is None:
            return
        if step.failover_from is not None:
            self.failovers.labels(
                self.model(step.failover_from), self.model(step.model), step.because or NONE
            ).inc()
        if step.retry:
            self.retries.labels(step.provider, self.model(step.model), step.profile or NONE).inc()

    def request_closed(self, event: RequestClosed) -> None:
        walk = self._walks.closed(event)
        if walk is None:
            return
        self.requests.labels(self.model(walk.chain[0] if walk.chain else None), event.outcome).inc()
        self.duration.labels(self.model(walk.served), event.outcome).observe(
            max(0.0, event.at - walk.opened_at)
        )

    def key_changed(self, event: KeyChange) -> None:
        if event.cause == "failure" and event.cooldown_until is not None and event.kind:
            self.key_cooldowns.labels(event.provider, event.profile, str(event.kind)).inc()

    def model_changed(self, event: ModelChange) -> None:
        self.model_transitions.labels(self.model(event.model), str(event.state)).inc()


class MetricsCollector:
    """A Prometheus collector for one runtime: register it in any registry.

    Example:
        >>> rt = Runtime(config, metrics=True).start()
        >>> prometheus_client.REGISTRY.register(rt.metrics_collector())
    """

    def __init__(self, runtime: Runtime, metrics: Metrics) -> None:
        self._runtime = runtime
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        # Registering must not need a running runtime: describe nothing up front.
        return ()

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics.registry.collect()
        try:
            yield from self._live()
        except SwitchoverError:
            return  # the runtime is stopped: counters only

    def _live(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        rt, label = self._runtime, self._metrics.model
        snapshot = rt.inspect(ask=False)
        health = rt.health()
        depth = GaugeMetricFamily(
            f"{PREFIX}_actor_mailbox_depth",
            "Messages waiting in each actor's mailbox.",
            labels=["actor", "kind"],
        )
        restarts = CounterMetricFamily(
            f"{PREFIX}_actor_restarts",
            "Times the supervisor restarted each actor.",
            labels=["actor", "kind"],
        )
        key_state = GaugeMetricFamily(
            f"{PREFIX}_key_state",
            "1 for each key profile's current state (ready, cooling).",
            labels=["provider", "profile", "state"],
        )
        key_left = GaugeMetricFamily(
            f"{PREFIX}_key_cooldown_remaining_seconds",
            "Seconds until each key's cooldown ends.",
            labels=["provider", "profile"],
        )
        busy = workers = 0
        for actor in snapshot.actors:
            depth.add_metric([actor.name, actor.kind], actor.mailbox_depth)
            restarts.add_metric([actor.name, actor.kind], actor.restarts)
            if actor.kind == "chain":
                workers += 1
                busy += bool(actor.state.get("busy"))
            elif actor.kind == "profile":
                names = [str(actor.state["provider"]), str(actor.state["profile"])]
                left = float(actor.state.get("cooldown_remaining") or 0.0)
                for state in ("ready", "cooling"):
                    key_state.add_metric([*names, state], float((left > 0) == (state == "cooling")))
                key_left.add_metric(names, left)
        chain = GaugeMetricFamily(
            f"{PREFIX}_chain_workers",
            "Chain workers, and how many are walking a request.",
            labels=["state"],
        )
        chain.add_metric(["busy"], busy)
        chain.add_metric(["idle"], workers - busy)
        model_state = GaugeMetricFamily(
            f"{PREFIX}_model_state",
            "Models in each health state (1 or 0 for a configured one).",
            labels=["model", "state"],
        )
        model_left = GaugeMetricFamily(
            f"{PREFIX}_model_cooldown_remaining_seconds",
            "Seconds until each model's cooldown ends (the longest among those folded).",
            labels=["model"],
        )
        states: dict[tuple[str, HealthState], int] = {}
        longest: dict[str, float] = {}
        for model, row in health.items():
            name = label(model)
            for state in HealthState:
                states[name, state] = states.get((name, state), 0) + (row.state is state)
            longest[name] = max(longest.get(name, 0.0), row.cooldown_remaining or 0.0)
        for (name, state), count in states.items():
            model_state.add_metric([name, str(state)], count)
        for name, left in longest.items():
            model_left.add_metric([name], left)
        yield from (depth, restarts, key_state, key_left, chain, model_state, model_left)


def exposition(collector: MetricsCollector) -> bytes:
    """The collector's samples in the Prometheus text format."""
    prom = _prometheus()
    registry = prom.CollectorRegistry(auto_describe=False)
    registry.register(collector)
    data: bytes = prom.generate_latest(registry)
    return data
