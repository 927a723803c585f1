"""Scenario files: a fleet, a chain, a fault schedule and a load, as data.

A scenario is one small TOML file (see ``bench/scenarios/`` and ``docs/chaos.md``,
"Scenario files"). Every time in it is on the *story clock*: seconds of the world the
scenario describes. The run is ``speedup`` times faster: a 120 s story with speedup 80
takes 1.5 s, and every system's timeouts and cooldowns are divided by the same factor.

Example:
    >>> scenario = load_scenario("rate-limit-storm")
    >>> scenario.duration, scenario.chain
    (120.0, ('openai/gpt-4o', 'claude/claude-sonnet-4-5'))
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

SCENARIO_DIR = Path(__file__).parent / "scenarios"
#: Fault kinds and whether the fault fails every call it answers (a "hard" fault) when
#: its ``share`` is 1. A latency spike (``slow``) never fails a call.
FAULT_KINDS = (
    "rate_limit",
    "auth",
    "balance",
    "model_missing",
    "server_error",
    "refuse",
    "hang",
    "cut",
    "stream_error",
    "slow",
)
#: The kind of a call a quota refused (the fleet's record and the metrics name it so).
QUOTA = "quota"
#: The longest quota window, story seconds (a day).
MAX_WINDOW = 86_400.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TARGET = re.compile(
    r"^(?P<provider>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:/(?P<model>[^@]+))?(?:@(?P<profile>[A-Za-z0-9_.-]+))?$"
)


class ScenarioError(Exception):
    """A scenario file that cannot be used; names the file and the field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(f"{source}: {field}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


@attrs.frozen
class FleetProvider:
    """One fake provider: its wire format, key profiles, models and normal speed."""

    name: str
    api: str
    profiles: tuple[str, ...]
    models: tuple[str, ...]
    #: Which key a request tries first (switchover's ``ProviderConfig.key_order``).
    key_order: str = "priority"
    #: A fixed answer shape (story seconds to the first token, between chunks, and how many
    #: chunks); None: drawn per call from the scenario's ``[traffic]``.
    ttft: float | None = None
    chunk_gap: float | None = None
    chunks: int | None = None
    #: Context window in tokens (prompt characters / 4); longer prompts are rejected.
    context: int = 8192


@attrs.frozen
class Target:
    """Which calls a fault hits: a provider, optionally one model and/or one key."""

    provider: str
    model: str | None = None
    profile: str | None = None

    def __str__(self) -> str:
        text = self.provider
        if self.model is not None:
            text += f"/{self.model}"
        if self.profile is not None:
            text += f"@{self.profile}"
        return text

    def matches(self, provider: str, model: str, profile: str) -> bool:
        return (
            provider == self.provider
            and (self.model is None or model == self.model)
            and (self.profile is None or profile == self.profile)
        )


@attrs.frozen
class Fault:
    """A fault on ``target`` while active: from ``start`` to ``end`` (story seconds), and,
    with a ``period``, only during the first ``down`` seconds of each period."""

    target: Target
    kind: str
    start: float
    end: float
    share: float = 1.0
    retry_after: float | None = None
    delay: float = 0.0
    after: int = 2
    period: float | None = None
    down: float | None = None

    @property
    def hard(self) -> bool:
        """Whether every call the fault is active for fails."""
        return self.share >= 1.0 and self.kind != "slow"

    def active(self, t: float) -> bool:
        """Whether the fault is on at story time ``t``."""
        if not self.start <= t < self.end:
            return False
        if self.period is None or self.down is None:
            return True
        return (t - self.start) % self.period < self.down

    def episodes(self, duration: float) -> list[tuple[float, float]]:
        """The (start, end) story intervals during which the fault is on."""
        end = min(self.end, duration)
        if self.period is None or self.down is None:
            return [(self.start, end)] if self.start < end else []
        out = []
        t = self.start
        while t < end:
            out.append((t, min(t + self.down, end)))
            t += self.period
        return out


@attrs.frozen
class Quota:
    """A provider's rate limit on one key: at most ``requests`` calls admitted in any
    rolling ``window`` story seconds, counted per model (as OpenAI and Anthropic count
    them): a target without a model gives each model of the key its own quota."""

    target: Target
    requests: int
    window: float


@attrs.frozen
class Traffic:
    """What a healthy answer looks like, drawn per call (story seconds): the time to the
    first token, the answer's length in tokens and the rate it streams at. The defaults
    are production-like: answers stream for seconds, so calls are in flight at every
    fault edge."""

    ttft: tuple[float, float] = (0.3, 2.0)
    tokens: tuple[int, int] = (50, 800)
    tokens_per_second: tuple[float, float] = (30.0, 120.0)


LoadMode = Literal["open", "closed"]


@attrs.frozen
class Load:
    """Open loop (``mode = "open"``): requests arrive as a Poisson process of ``rate`` per
    story second, whatever the system does. Closed loop (``"closed"``): ``clients``
    callers each send their next request as soon as the last one ended.

    ``long_share`` of the requests sent between ``long_from`` and ``long_until`` carry a
    prompt of ``long_tokens`` tokens (a context-window storm).
    """

    mode: LoadMode = "open"
    clients: int = 32
    rate: float = 1.5
    long_share: float = 0.0
    long_from: float = 0.0
    long_until: float = math.inf
    long_tokens: int = 12000
    max_tokens: int | None = 256


@attrs.frozen
class Operator:
    """What an operator sets, in story seconds; every system gets the same values
    (divided by the speedup). Cooldowns and retries keep DESIGN's defaults."""

    connect_timeout: float = 2.0
    first_token_timeout: float = 10.0
    idle_timeout: float = 10.0
    request_timeout: float = 60.0
    retry_attempts: int = 3
    retry_min_delay: float = 0.5
    retry_max_delay: float = 8.0
    profile_min: float = 5.0
    profile_max: float = 300.0
    model_max: float = 3600.0
    disabled_probe_interval: float = 3600.0


@attrs.frozen
class Scenario:
    """One chaos scenario (see the module docstring)."""

    name: str
    description: str
    seed_defect: str
    duration: float
    speedup: float
    seed: int
    providers: tuple[FleetProvider, ...]
    chain: tuple[str, ...]
    faults: tuple[Fault, ...]
    load: Load
    operator: Operator
    traffic: Traffic = Traffic()
    quotas: tuple[Quota, ...] = ()
    source: str = ""

    def provider(self, name: str) -> FleetProvider:
        return next(p for p in self.providers if p.name == name)

    def targets(self) -> list[tuple[str, str, str]]:
        """Every (provider, model, profile) the chain can reach, in chain order."""
        out = []
        for entry in self.chain:
            provider, model = entry.split("/", 1)
            out += [(provider, model, profile) for profile in self.provider(provider).profiles]
        return out

    def run_seconds(self, story: float) -> float:
        """Story seconds as seconds of the compressed run."""
        return story / self.speedup


DEFAULT_PROVIDERS = (
    FleetProvider(
        name="openai", api="openai", profiles=("main", "backup"), models=("gpt-4o", "gpt-4o-mini")
    ),
    FleetProvider(
        name="claude",
        api="anthropic",
        profiles=("default",),
        models=("claude-sonnet-4-5", "claude-3-haiku-20240307"),
    ),
)


def key_order_pairs(scenarios: Sequence[Scenario]) -> list[tuple[Scenario, Scenario]]:
    """The pairs of scenarios that are the same but for their names, descriptions and the
    ``key_order`` of their providers, each as (the "priority" one, the "round_robin" one)."""

    def rest(scenario: Scenario) -> Scenario:
        return attrs.evolve(
            scenario,
            name="",
            description="",
            seed_defect="",
            source="",
            providers=tuple(attrs.evolve(p, key_order="priority") for p in scenario.providers),
        )

    rests = [rest(scenario) for scenario in scenarios]
    pairs = []
    for first, first_rest in zip(scenarios, rests, strict=True):
        for second, second_rest in zip(scenarios, rests, strict=True):
            if first is second or first_rest != second_rest:
                continue
            flipped = {
                (a.key_order, b.key_order)
                for a, b in zip(first.providers, second.providers, strict=True)
                if a.key_order != b.key_order
            }
            if flipped == {("priority", "round_robin")}:
                pairs.append((first, second))
    return pairs


# --- loading ---------------------------------------------------------------------------------


def scenario_names() -> list[str]:
    """The built-in scenarios, in suite order (file names sort by their number prefix)."""
    return [_bare(p) for p in sorted(SCENARIO_DIR.glob("*.toml"))]


def _bare(path: Path) -> str:
    return re.sub(r"^\d+-", "", path.stem)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a scenario file by path.

    Raises:
        ScenarioError: no such scenario, unreadable TOML, or a bad field (named).
    """
    path = Path(name_or_path)
    if not path.suffix:
        found = [p for p in SCENARIO_DIR.glob("*.toml") if _bare(p) == str(name_or_path)]
        if not found:
            raise ScenarioError(
                str(name_or_path),
                "name",
                f"no built-in scenario of that name; known: {', '.join(scenario_names())}",
            )
        path = found[0]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(str(path), "file", f"cannot read it: {error.strerror}") from None
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse and validate scenario TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(source, "toml", str(error)) from None
    return _Reader(source).scenario(data)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, problem: str) -> ScenarioError:
        return ScenarioError(self.source, field, problem)

    def keys(self, data: Mapping[str, Any], where: str, known: set[str]) -> None:
        for key in data:
            if key not in known:
                field = f"{where}.{key}" if where else key
                raise self.fail(field, f"unknown key; expected one of {', '.join(sorted(known))}")

    def table(self, data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(_join(where, key), f"must be a table, not {type(value).__name__}")
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        default: float | None,
        *,
        low: float = 0.0,
        high: float = math.inf,
        strict_low: bool = False,
    ) -> float:
        field = _join(where, key)
        value = data.get(key, default)
        if value is None:
            raise self.fail(field, "is required")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(field, f"must be a number, not {type(value).__name__}")
        if not math.isfinite(value) and value != high:
            raise self.fail(field, f"must be finite, got {value!r}")
        too_low = value <= low if strict_low else value < low
        if too_low or value > high:
            bound = f"{'>' if strict_low else '>='} {low:g}" + (
                f" and <= {high:g}" if math.isfinite(high) else ""
            )
            raise self.fail(field, f"must be {bound}, got {value!r}")
        return float(value)

    def integer(
        self, data: Mapping[str, Any], key: str, where: str, default: int, *, low: int = 0
    ) -> int:
        field = _join(where, key)
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"must be an integer, not {type(value).__name__}")
        if value < low:
            raise self.fail(field, f"must be >= {low}, got {value}")
        return value

    def string(self, data: Mapping[str, Any], key: str, where: str, default: str | None) -> str:
        field = _join(where, key)
        value = data.get(key, default)
        if value is None:
            raise self.fail(field, "is required")
        if not isinstance(value, str):
            raise self.fail(field, f"must be a string, not {type(value).__name__}")
        return value

    def names(self, data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        field = _join(where, key)
        value = data.get(key)
        if value is None:
            raise self.fail(field, "is required")
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(field, "must be a non-empty list of strings")
        if len(set(value)) != len(value):
            raise self.fail(field, "names a value twice")
        return tuple(value)

    # -- the parts ---------------------------------------------------------------------------

    def scenario(self, data: Mapping[str, Any]) -> Scenario:
        self.keys(
            data,
            "",
            {
                "name",
                "description",
                "seed_defect",
                "duration",
                "speedup",
                "seed",
                "chain",
                "providers",
                "faults",
                "quotas",
                "load",
                "operator",
                "traffic",
            },
        )
        name = self.string(data, "name", "", None)
        if not _NAME.match(name):
            raise self.fail("name", f"{name!r} must be letters, digits, '_', '.', '-'")
        duration = self.number(data, "duration", "", None, strict_low=True, high=3600.0)
        speedup = self.number(data, "speedup", "", 80.0, low=1.0, high=10_000.0)
        providers = self.providers(data)
        chain = self.chain(data, providers)
        faults = tuple(
            self.fault(item, f"faults[{i}]", providers, duration)
            for i, item in enumerate(self.array(data, "faults"))
        )
        quotas = tuple(
            self.quota(item, f"quotas[{i}]", providers)
            for i, item in enumerate(self.array(data, "quotas"))
        )
        return Scenario(
            name=name,
            description=self.string(data, "description", "", ""),
            seed_defect=self.string(data, "seed_defect", "", ""),
            duration=duration,
            speedup=speedup,
            seed=self.integer(data, "seed", "", 1),
            providers=providers,
            chain=chain,
            faults=faults,
            load=self.load(self.table(data, "load", ""), duration),
            operator=self.operator(self.table(data, "operator", "")),
            traffic=self.traffic(self.table(data, "traffic", "")),
            quotas=quotas,
            source=self.source,
        )

    def array(self, data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.fail(key, f"must be an array of tables ([[{key}]])")
        return value

    def providers(self, data: Mapping[str, Any]) -> tuple[FleetProvider, ...]:
        items = self.array(data, "providers")
        if not items:
            return DEFAULT_PROVIDERS
        providers = []
        for index, item in enumerate(items):
            where = f"providers[{index}]"
            self.keys(
                item,
                where,
                {
                    "name",
                    "api",
                    "profiles",
                    "models",
                    "key_order",
                    "ttft",
                    "chunk_gap",
                    "chunks",
                    "context",
                },
            )
            name = self.string(item, "name", where, None)
            if not _NAME.match(name):
                raise self.fail(f"{where}.name", f"{name!r} must be letters, digits, '_', '.', '-'")
            if any(p.name == name for p in providers):
                raise self.fail(f"{where}.name", f"provider {name!r} is defined twice")
            api = self.string(item, "api", where, None)
            if api not in ("openai", "anthropic"):
                raise self.fail(f"{where}.api", f"must be 'openai' or 'anthropic', got {api!r}")
            key_order = self.string(item, "key_order", where, "priority")
            if key_order not in ("priority", "round_robin"):
                raise self.fail(
                    f"{where}.key_order", f"must be 'priority' or 'round_robin', got {key_order!r}"
                )
            providers.append(
                FleetProvider(
                    name=name,
                    api=api,
                    profiles=self.names(item, "profiles", where),
                    models=self.names(item, "models", where),
                    key_order=key_order,
                    ttft=None if "ttft" not in item else self.number(item, "ttft", where, None),
                    chunk_gap=(
                        None
                        if "chunk_gap" not in item
                        else self.number(item, "chunk_gap", where, None)
                    ),
                    chunks=(
                        None
                        if "chunks" not in item
                        else self.integer(item, "chunks", where, 1, low=1)
                    ),
                    context=self.integer(item, "context", where, 8192, low=1),
                )
            )
        return tuple(providers)

    def chain(
        self, data: Mapping[str, Any], providers: tuple[FleetProvider, ...]
    ) -> tuple[str, ...]:
        chain = self.names(data, "chain", "")
        for index, entry in enumerate(chain):
            provider, _, model = entry.partition("/")
            known = next((p for p in providers if p.name == provider), None)
            if known is None or model not in known.models:
                raise self.fail(
                    f"chain[{index}]",
                    f"{entry!r} is not 'provider/model' of the fleet "
                    f"({', '.join(f'{p.name}/{m}' for p in providers for m in p.models)})",
                )
        return chain

    def target(self, text: str, field: str, providers: tuple[FleetProvider, ...]) -> Target:
        match = _TARGET.match(text)
        if match is None:
            raise self.fail(field, f"{text!r} is not 'provider[/model][@profile]'")
        provider = next((p for p in providers if p.name == match["provider"]), None)
        if provider is None:
            raise self.fail(field, f"no provider {match['provider']!r} in the fleet")
        if match["model"] is not None and match["model"] not in provider.models:
            raise self.fail(field, f"provider {provider.name!r} has no model {match['model']!r}")
        if match["profile"] is not None and match["profile"] not in provider.profiles:
            raise self.fail(
                field, f"provider {provider.name!r} has no key profile {match['profile']!r}"
            )
        return Target(provider.name, match["model"], match["profile"])

    def fault(
        self,
        item: Mapping[str, Any],
        where: str,
        providers: tuple[FleetProvider, ...],
        duration: float,
    ) -> Fault:
        self.keys(
            item,
            where,
            {
                "target",
                "kind",
                "start",
                "end",
                "share",
                "retry_after",
                "delay",
                "after",
                "period",
                "down",
            },
        )
        target = self.target(self.string(item, "target", where, None), f"{where}.target", providers)
        kind = self.string(item, "kind", where, None)
        if kind not in FAULT_KINDS:
            raise self.fail(f"{where}.kind", f"{kind!r} is not one of {', '.join(FAULT_KINDS)}")
        start = self.number(item, "start", where, 0.0, high=duration)
        end = self.number(item, "end", where, duration, high=duration)
        if end <= start:
            raise self.fail(f"{where}.end", f"must be after start ({start:g}), got {end:g}")
        period = item.get("period")
        down = item.get("down")
        if (period is None) != (down is None):
            raise self.fail(
                f"{where}.{'down' if down is None else 'period'}", "period and down go together"
            )
        fault = Fault(
            target=target,
            kind=kind,
            start=start,
            end=end,
            share=self.number(item, "share", where, 1.0, high=1.0, strict_low=True),
            retry_after=(
                None
                if item.get("retry_after") is None
                else self.number(item, "retry_after", where, None)
            ),
            delay=self.number(item, "delay", where, 0.0),
            after=self.integer(item, "after", where, 2),
            period=None
            if period is None
            else self.number(item, "period", where, None, strict_low=True),
            down=None if down is None else self.number(item, "down", where, None, strict_low=True),
        )
        if fault.kind == "slow" and fault.delay <= 0:
            raise self.fail(f"{where}.delay", "a 'slow' fault needs a positive delay")
        if fault.retry_after is not None and fault.kind != "rate_limit":
            raise self.fail(f"{where}.retry_after", "only a 'rate_limit' fault sends Retry-After")
        if fault.period is not None and fault.down is not None and fault.down >= fault.period:
            raise self.fail(f"{where}.down", "must be shorter than period")
        return fault

    def quota(
        self, item: Mapping[str, Any], where: str, providers: tuple[FleetProvider, ...]
    ) -> Quota:
        self.keys(item, where, {"target", "requests", "window"})
        field = f"{where}.target"
        target = self.target(self.string(item, "target", where, None), field, providers)
        if target.profile is None:
            raise self.fail(field, f"must name one key ('provider[/model]@profile'), got {target}")
        requests = item.get("requests")
        if requests is None:
            raise self.fail(f"{where}.requests", "is required")
        if isinstance(requests, bool) or not isinstance(requests, int) or requests <= 0:
            raise self.fail(f"{where}.requests", f"must be a positive integer, got {requests!r}")
        window = self.number(item, "window", where, None, strict_low=True, high=MAX_WINDOW)
        return Quota(target=target, requests=requests, window=window)

    def load(self, data: Mapping[str, Any], duration: float) -> Load:
        self.keys(
            data,
            "load",
            {
                "mode",
                "clients",
                "rate",
                "long_share",
                "long_from",
                "long_until",
                "long_tokens",
                "max_tokens",
            },
        )
        max_tokens = data.get("max_tokens", 256)
        if max_tokens is not None:
            max_tokens = self.integer(data, "max_tokens", "load", 256, low=1)
        mode = self.string(data, "mode", "load", "open")
        if mode not in ("open", "closed"):
            raise self.fail("load.mode", f"must be 'open' or 'closed', got {mode!r}")
        clients = self.integer(data, "clients", "load", 32, low=1)
        if clients > 64:  # the load driver's threads and switchover's chain workers
            raise self.fail("load.clients", f"must be <= 64, got {clients}")
        return Load(
            mode=mode,  # type: ignore[arg-type]
            clients=clients,
            rate=self.number(data, "rate", "load", 1.5, strict_low=True, high=1000.0),
            long_share=self.number(data, "long_share", "load", 0.0, high=1.0),
            long_from=self.number(data, "long_from", "load", 0.0, high=duration),
            long_until=self.number(data, "long_until", "load", duration, high=duration),
            long_tokens=self.integer(data, "long_tokens", "load", 12000, low=1),
            max_tokens=max_tokens,
        )

    def span(
        self, data: Mapping[str, Any], key: str, default: tuple[float, float], *, positive: bool
    ) -> tuple[float, float]:
        field = _join("traffic", key)
        value = data.get(key, list(default))
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise self.fail(field, "must be a [low, high] pair of numbers")
        low, high = float(value[0]), float(value[1])
        if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or (positive and low <= 0):
            raise self.fail(field, f"must be finite and {'> 0' if positive else '>= 0'}")
        if high < low:
            raise self.fail(field, f"high ({high:g}) must not be below low ({low:g})")
        return low, high

    def traffic(self, data: Mapping[str, Any]) -> Traffic:
        self.keys(data, "traffic", {"ttft", "tokens", "tokens_per_second"})
        default = Traffic()
        tokens = self.span(data, "tokens", default.tokens, positive=True)
        return Traffic(
            ttft=self.span(data, "ttft", default.ttft, positive=False),
            tokens=(max(1, round(tokens[0])), max(1, round(tokens[1]))),
            tokens_per_second=self.span(
                data, "tokens_per_second", default.tokens_per_second, positive=True
            ),
        )

    def operator(self, data: Mapping[str, Any]) -> Operator:
        fields = {a.name: a.default for a in attrs.fields(Operator)}
        self.keys(data, "operator", set(fields))
        values: dict[str, Any] = {}
        for key, default in fields.items():
            if key == "retry_attempts":
                values[key] = self.integer(data, key, "operator", default, low=1)
            else:
                values[key] = self.number(data, key, "operator", default, strict_low=True)
        return Operator(**values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
