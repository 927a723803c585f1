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

import bisect
import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

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


@attrs.frozen(eq=False)  # hashed by identity: it is part of every sample's dict key
class Family:
    """One counted metric: its name (after ``switchover_``), help text and label names."""

    name: str
    help: str
    labels: tuple[str, ...]
    histogram: bool = False


REQUESTS = Family(
    "requests", "Requests by their first chain entry and how they ended.", ("model", "outcome")
)
ATTEMPTS = Family(
    "attempts",
    "Provider calls by outcome (ok, error, released) and error kind.",
    ("provider", "model", "profile", "outcome", "kind"),
)
SKIPS = Family(
    "skips",
    "Chain entries (scope=model) or keys (scope=key) skipped without a call.",
    ("provider", "model", "scope"),
)
FAILOVERS = Family(
    "failovers",
    "Calls on a new chain entry after an earlier one failed or was skipped.",
    ("from_model", "to_model", "because"),
)
RETRIES = Family(
    "retries",
    "In-place retries: a call on the same entry and key right after it failed.",
    ("provider", "model", "profile"),
)
KEY_COOLDOWNS = Family(
    "key_cooldowns",
    "Times a key was put into cooldown, by error kind.",
    ("provider", "profile", "kind"),
)
MODEL_TRANSITIONS = Family(
    "model_transitions", "Model health state changes, by the state entered.", ("model", "state")
)
TTFT = Family(
    "time_to_first_token_seconds",
    "From the request's start to its first event, by the serving chain entry.",
    ("provider", "model"),
    histogram=True,
)
DURATION = Family(
    "request_duration_seconds",
    "From the request's start to its end, by serving chain entry (none) and outcome.",
    ("model", "outcome"),
    histogram=True,
)
FAMILIES = (
    REQUESTS,
    ATTEMPTS,
    SKIPS,
    FAILOVERS,
    RETRIES,
    KEY_COOLDOWNS,
    MODEL_TRANSITIONS,
    TTFT,
    DURATION,
)


class Metrics(Observer):
    """Counters and histograms fed by the observer hooks.

    They are plain numbers behind one lock, taken once per hook: prometheus-client's own
    metric objects take a lock per number (two per histogram sample), which costs several
    times more per request; its metric families still do the exposition (see
    :class:`MetricsCollector`).

    Args:
        config: the runtime's configuration, which bounds every label.
        redact: removes configured keys from model strings a caller chose.
    """

    def __init__(self, config: Config, redact: Redactor) -> None:
        _prometheus()  # fail now, with the install hint, not at the first scrape
        self.model = ModelLabels(config, redact)
        self._walks = Walks()
        self._lock = threading.Lock()
        self._counts: dict[tuple[Family, tuple[str, ...]], float] = {}
        # per label values: a count per bucket of BUCKETS (and one past the last), then the sum
        self._samples: dict[tuple[Family, tuple[str, ...]], list[float]] = {}

    def _add(self, family: Family, *labels: str) -> None:
        key = (family, labels)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def _observe(self, family: Family, value: float, *labels: str) -> None:
        key = (family, labels)
        with self._lock:
            sample = self._samples.get(key)
            if sample is None:
                sample = self._samples[key] = [0.0] * (len(BUCKETS) + 2)
            sample[bisect.bisect_left(BUCKETS, value)] += 1
            sample[-1] += value

    def count(self, family: Family, *labels: str) -> float:
        """The counter's value (a histogram's sample count) for these label values."""
        with self._lock:
            if family.histogram:
                sample = self._samples.get((family, labels))
                return 0.0 if sample is None else sum(sample[:-1])
            return self._counts.get((family, labels), 0.0)

    def families(self) -> list[Metric]:
        """Every counter and histogram as prometheus-client metric families."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self._lock:
            counts = dict(self._counts)
            samples = {key: list(sample) for key, sample in self._samples.items()}
        out: list[Metric] = []
        for family in FAMILIES:
            name = f"{PREFIX}_{family.name}"
            if family.histogram:
                histogram = HistogramMetricFamily(name, family.help, labels=family.labels)
                for (of, labels), sample in samples.items():
                    if of is family:
                        cumulative = list(itertools.accumulate(sample[:-1]))
                        bounds = [*(f"{b:g}" for b in BUCKETS), "+Inf"]
                        histogram.add_metric(
                            list(labels), list(zip(bounds, cumulative, strict=True)), sample[-1]
                        )
                out.append(histogram)
            else:
                counter = CounterMetricFamily(name, family.help, labels=family.labels)
                for (of, labels), value in counts.items():
                    if of is family:
                        counter.add_metric(list(labels), value)
                out.append(counter)
        return out

    # -- hooks -------------------------------------------------------------------------------

    def request_opened(self, event: RequestOpened) -> None:
        self._walks.opened(event)

    def attempt_began(self, event: AttemptBegan) -> None:
        self._step(self._walks.began(event))

    def attempt_ended(self, event: AttemptRecord) -> None:
        model = self.model(event.model)
        if event.outcome == "skipped":
            self._add(SKIPS, event.provider, model, "model" if event.profile is None else "key")
        else:
            kind = NONE if event.kind is None else str(event.kind)
            self._add(ATTEMPTS, event.provider, model, event.profile or NONE, event.outcome, kind)
        opened = self._walks.opened_at(event.request_id)
        self._step(self._walks.ended(event))
        if event.first_at is not None and opened is not None:
            self._observe(TTFT, max(0.0, event.first_at - opened), event.provider, model)

    def _step(self, step: Step | None) -> None:
        if step is None:
            return
        if step.failover_from is not None:
            self._add(
                FAILOVERS,
                self.model(step.failover_from),
                self.model(step.model),
                step.because or NONE,
            )
        if step.retry:
            self._add(RETRIES, step.provider, self.model(step.model), step.profile or NONE)

    def request_closed(self, event: RequestClosed) -> None:
        walk = self._walks.closed(event)
        if walk is None:
            return
        self._add(REQUESTS, self.model(walk.chain[0] if walk.chain else None), event.outcome)
        self._observe(
            DURATION, max(0.0, event.at - walk.opened_at), self.model(walk.served), event.outcome
        )

    def key_changed(self, event: KeyChange) -> None:
        if event.cause == "failure" and event.cooldown_until is not None and event.kind:
            self._add(KEY_COOLDOWNS, event.provider, event.profile, str(event.kind))

    def model_changed(self, event: ModelChange) -> None:
        self._add(MODEL_TRANSITIONS, self.model(event.model), str(event.state))


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
        yield from self._metrics.families()
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
