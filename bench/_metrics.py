"""Metrics of one system on one scenario, from ground truth: the fleet's record of every
call it answered, and the caller's record of every request. Nothing a system says about
itself is trusted, so every system is measured the same way.

Definitions (story seconds; docs/chaos.md repeats them):

- **success**: requests that streamed a whole answer / requests sent.
- **latency** p50/p95/p99: successful requests, from the scheduled send to the last token.
- **attempts**: calls the fleet answered / requests sent.
- **wasted calls**: calls to a target *known to be failing* that are not *allowed probes*.
  A target (key, model or provider) is failing while a *hard* fault (one that fails every
  call: ``share = 1``, not ``slow``) is on for it. It is known to be failing from the
  moment the first failed call of that episode has come back: that call's start plus its
  answer time (0 for an error status, the provider's time to first token for a cut or an
  error event, the operator's ``first_token_timeout`` for a hang), until the episode
  ends; for requests other than the one that got the failure, a reaction allowance of
  20 ms of real time (times the speedup) is added. A call to it in that interval is an
  **allowed probe** when it starts at least
  ``gap`` after the known-failing moment or after the previous allowed probe has come
  back, where ``gap = max(operator profile_min, the fault's Retry-After)`` (5 s by
  default: the shortest cooldown any system is configured with); every other call is
  wasted. So one call at a time, one per gap, is free; a retry in place, a concurrent
  call, a re-send of the same key, or a call before Retry-After has passed is not.
- **detect**: for each fault episode on the target a request would go to first (the
  first chain target no *other* fault is on for), from the episode's start to the first
  request sent in the episode that did not call that target.
- **recover**: for each such episode that ends before the scenario does, from its end to
  the first request sent after it that the target served; "never" if none did.
- **throughput**: successful requests per story second of the scenario.
- **rate limited**: calls the fleet answered with the provider's rate-limit 429: over a
  quota of the key (``[[quotas]]``) or hit by a ``rate_limit`` fault (``balance`` is a
  429 at OpenAI too, but a billing error, not a rate limit). A quota is not a fault: its
  429s are not calls into a fault window, so never onset or wasted calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from ._load import Record
from ._scenario import QUOTA, Fault, Scenario

#: Slack on the probe gap for timing noise of the compressed run.
GAP_SLACK = 0.05
#: Wall seconds a failure is given to travel back to the system and be acted on before
#: the target counts as known to be failing (a loaded 2-core machine needs it).
REACTION = 0.02
_OK_KINDS = ("ok", "slow")
#: Call kinds answered with a rate-limit 429.
RATE_LIMITED_KINDS = (QUOTA, "rate_limit")


@attrs.frozen
class Call:
    """A call the fleet answered, on the story clock."""

    at: float
    provider: str
    model: str
    profile: str
    request: int | None
    kind: str

    @property
    def target(self) -> str:
        return f"{self.provider}/{self.model}@{self.profile}"


@attrs.frozen
class Metrics:
    """One system's numbers on one scenario (times in story seconds)."""

    requests: int
    success: float
    p50: float | None
    p95: float | None
    p99: float | None
    attempts: float
    wasted: int
    #: Calls into a fault window per fault onset (revealing call and concurrent callers
    #: included, allowed probes not), the bound it may reach, and whether every episode
    #: stayed within its bound; None: no hard fault was hit.
    onset: float | None
    onset_bound: float | None
    onset_within: bool | None
    detect: float | None
    recover: float | None
    recover_never: int
    throughput: float
    errors: dict[str, int]
    retry_after_error: float | None = None
    #: Calls answered with a rate-limit 429 (a quota or a ``rate_limit`` fault).
    rate_limited: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in attrs.asdict(self).items()}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), linear between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def answer_time(scenario: Scenario, call: Call) -> float:
    """Story seconds until a failed call's failure reaches the caller."""
    if call.kind == "hang":
        return scenario.operator.first_token_timeout
    if call.kind in ("cut", "stream_error"):
        ttft = scenario.provider(call.provider).ttft
        return ttft if ttft is not None else scenario.traffic.ttft[0]
    return 0.0


def _matches(fault: Fault, call: Call) -> bool:
    return fault.target.matches(call.provider, call.model, call.profile)


@attrs.frozen
class Episode:
    """How a system met one hard fault episode: the calls it made into the window that
    were not allowed probes (``onset``: from the revealing call on, concurrent callers
    included), those of them made once the fault was known (``wasted``), and how many
    onset calls are allowed (``bound``: the revealing request's own tries plus one per
    other request already past the gate)."""

    onset: tuple[Call, ...]
    wasted: tuple[Call, ...]
    bound: int


def wasted_calls(scenario: Scenario, calls: Sequence[Call]) -> list[Call]:
    """Calls to known-failing targets beyond allowed probes (see the module docstring)."""
    return [call for episode in episodes(scenario, calls) for call in episode.wasted]


def onset_calls(
    scenario: Scenario, calls: Sequence[Call]
) -> tuple[float | None, float | None, bool | None]:
    """Calls into a fault window per fault onset, the mean bound on them, and whether every
    episode stayed within its bound (all None: no hard fault was hit)."""
    met = episodes(scenario, calls)
    if not met:
        return None, None, None
    return (
        sum(len(e.onset) for e in met) / len(met),
        sum(e.bound for e in met) / len(met),
        all(len(e.onset) <= e.bound for e in met),
    )


def episodes(scenario: Scenario, calls: Sequence[Call]) -> list[Episode]:
    """Every hard fault episode some call hit, with its onset and wasted calls."""
    out: list[Episode] = []
    ordered = sorted(calls, key=lambda c: c.at)
    reaction = REACTION * scenario.speedup
    for fault in scenario.faults:
        if not fault.hard:
            continue
        gap = max(scenario.operator.profile_min, fault.retry_after or 0.0)
        for start, end in fault.episodes(scenario.duration):
            # A call a quota refused never reached the fault.
            hits = [
                c for c in ordered if c.kind != QUOTA and _matches(fault, c) and start <= c.at < end
            ]
            revealing = next((c for c in hits if c.kind == fault.kind), None)
            if revealing is None:
                continue
            back = revealing.at + answer_time(scenario, revealing)
            ready = back + gap
            onset: list[Call] = [c for c in hits if c.at < revealing.at]  # already past the gate
            wasted: list[Call] = []
            concurrent: set[int | None] = set()
            for call in hits:
                # The request that got the failure knows at once; others a moment later.
                known = back if call.request == revealing.request else back + reaction
                if call is revealing or call.at <= known:
                    if call.request != revealing.request:
                        concurrent.add(call.request)
                    if call.at >= revealing.at:
                        onset.append(call)
                    continue
                if call.at >= ready - GAP_SLACK * gap:
                    ready = call.at + answer_time(scenario, call) + gap
                else:
                    wasted.append(call)
            bound = scenario.operator.retry_attempts + len(concurrent)
            out.append(Episode(onset=(*onset, *wasted), wasted=tuple(wasted), bound=bound))
    return out


def preferred(scenario: Scenario, story: float, ignore: Fault) -> tuple[str, str, str] | None:
    """The first chain target no fault other than ``ignore`` is on for at ``story``."""
    for provider, model, profile in scenario.targets():
        if not any(
            f is not ignore and f.target.matches(provider, model, profile) and f.active(story)
            for f in scenario.faults
        ):
            return provider, model, profile
    return None


def served_by(calls: Sequence[Call]) -> dict[int, Call]:
    """Each request's serving call: its last call that was answered normally."""
    out: dict[int, Call] = {}
    for call in sorted(calls, key=lambda c: c.at):
        if call.request is not None and call.kind in _OK_KINDS:
            out[call.request] = call
    return out


def detect_recover(
    scenario: Scenario, records: Sequence[Record], calls: Sequence[Call]
) -> tuple[float | None, float | None, int]:
    """Mean detection time, mean recovery time and episodes never recovered."""
    by_request: dict[int, list[Call]] = {}
    for call in calls:
        if call.request is not None:
            by_request.setdefault(call.request, []).append(call)
    serving = served_by(calls)
    ordered = sorted(records, key=lambda r: r.at)
    detects: list[float] = []
    recovers: list[float] = []
    never = 0
    for fault in scenario.faults:
        if not fault.hard:
            continue
        for start, end in fault.episodes(scenario.duration):
            first = preferred(scenario, start, fault)
            if first is not None and fault.target.matches(*first):
                avoided = next(
                    (
                        r
                        for r in ordered
                        if start <= r.at < end
                        and not any(_matches(fault, c) for c in by_request.get(r.id, ()))
                    ),
                    None,
                )
                if avoided is not None:
                    detects.append(avoided.at - start)
            if end >= scenario.duration:
                continue
            back = preferred(scenario, end, fault)
            if back is None or not fault.target.matches(*back):
                continue
            recovered = next(
                (
                    r
                    for r in ordered
                    if r.at >= end and r.ok and r.id in serving and _matches(fault, serving[r.id])
                ),
                None,
            )
            if recovered is None:
                never += 1
            else:
                recovers.append(recovered.at - end)

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    return mean(detects), mean(recovers), never


def retry_after_error(records: Sequence[Record]) -> float | None:
    """Median of (wait hint - time until the system next served a request) over failed
    requests that carried a hint: 0 is an honest hint, negative sends callers back too
    early, positive keeps them away longer than needed."""
    served = sorted(r.at for r in records if r.ok)
    errors = []
    for record in records:
        if record.ok or record.retry_after is None or record.end is None:
            continue
        after = next((at for at in served if at >= record.end), None)
        if after is not None:
            errors.append(record.retry_after - (after - record.end))
    return percentile(errors, 50)


def compute(scenario: Scenario, records: Sequence[Record], calls: Sequence[Call]) -> Metrics:
    """Every metric of one run."""
    total = len(records)
    ok = [r for r in records if r.ok]
    latencies = [r.latency for r in ok if r.latency is not None]
    errors: dict[str, int] = {}
    for record in records:
        if not record.ok:
            name = record.error or "unfinished"
            errors[name] = errors.get(name, 0) + 1
    detect, recover, never = detect_recover(scenario, records, calls)
    counted = [c for c in calls if c.request is not None]
    onset, onset_bound, onset_within = onset_calls(scenario, calls)
    return Metrics(
        requests=total,
        success=100.0 * len(ok) / total if total else 0.0,
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        p99=percentile(latencies, 99),
        attempts=len(counted) / total if total else 0.0,
        wasted=len(wasted_calls(scenario, calls)),
        onset=onset,
        onset_bound=onset_bound,
        onset_within=onset_within,
        detect=detect,
        recover=recover,
        recover_never=never,
        throughput=len(ok) / scenario.duration,
        errors=errors,
        retry_after_error=retry_after_error(records),
        rate_limited=sum(c.kind in RATE_LIMITED_KINDS for c in calls),
    )
