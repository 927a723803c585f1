"""A recorder of everything a runtime did, and a checker of what it must never do.

A :class:`History` is an observer: give it to a runtime and every request, every call or
skip, and every change of a key's cooldown or a model's health is recorded as a frozen value.
After a run, :func:`check` replays the records and returns every broken rule as data;
:meth:`History.assert_valid` raises with them.

Example:
    >>> history = History()
    >>> with Runtime(config, observers=[history]) as rt:
    ...     ...  # any number of threads, any faults
    >>> history.assert_valid(config)

The rules (:data:`RULES`):

``terminal``
    every request opened gets exactly one terminal outcome, and nothing else ends.
``key_cooldown``
    no call is made with a key while the cooldown its profile actor published covers it:
    the whole key's, or the rate limit of the call's model on that key.
``model_gate``
    no call goes to a cooling or disabled model, except by the holder of a granted probe;
    a model on probation takes its probe holder and requests with no later chain entry.
``single_probe``
    at most one request probes a model at a time; a probe ends at its commit (the model's
    ``commit`` change after the probe began) or at its end. (A probe's lease ends 5 s after
    its request's deadline; a probe still uncommitted after that is not expected in a
    checked run.)
``chain_order``
    a request walks its own chain forwards, never back, never outside it.
``attempt_bound``
    a request makes at most ``profiles x retry.attempts + 1`` calls per chain entry
    (the ``+ 1`` is the one ``max_tokens`` drop).
``deadline``
    no call starts after its request's deadline.
``evidence``
    no call begins on a key or model between the change that cooled it (after a failure)
    and the end of that cooldown, except a granted probe; nor on a model on probation
    before its probe holder's verdict, except the holder and requests with no later entry.
    Unlike ``key_cooldown`` and ``model_gate`` this does not trust the published state: a
    cooldown undone early by old news (the success of a call that began before the target
    cooled) still forbids the calls that follow. A heal inside the window is accepted when
    it is an operator reset (``reset`` on the change), or the health table forgetting a row
    it expired (``forgotten``: ``model_max`` past its deadline with no probe in flight, so
    never inside a cooldown), or when a call that may not have seen the cooling (its gates
    read after the change began) succeeded before it, or, for a ``commit`` heal, was a
    probe that committed.

Timing: the actors publish a change, then read the clock (``after``); a chain worker
reads the clock (``gate_at``), then the published state, then the clock again (``start``)
before it calls. So the state a call saw is one of the changes whose ``before`` is earlier
than ``start`` and that no change finished before ``gate_at`` replaced; a call breaks a
rule only if *every* such state forbids it. The checker never guesses at an ordering the
records cannot prove, so it reports no false violations under any interleaving.
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

import attrs

from .._core._config import Config
from .._core._observe import (
    AttemptRecord,
    KeyChange,
    ModelChange,
    Observer,
    RequestClosed,
    RequestOpened,
)
from .._core._vocab import HealthState

RULES = (
    "terminal",
    "key_cooldown",
    "model_gate",
    "single_probe",
    "chain_order",
    "attempt_bound",
    "deadline",
    "evidence",
)

#: What the checker replays.
Record = RequestOpened | RequestClosed | AttemptRecord | KeyChange | ModelChange


@attrs.frozen
class Violation:
    """One broken rule: which (see :data:`RULES`), which request if any, and how."""

    rule: str
    request_id: int | None
    detail: str

    def __str__(self) -> str:
        where = f"request {self.request_id}" if self.request_id is not None else "run"
        return f"[{self.rule}] {where}: {self.detail}"


class History(Observer):
    """An observer that keeps a thread-safe, append-only record of a runtime's run."""

    __slots__ = ("_records",)

    def __init__(self, records: Iterable[Record] = ()) -> None:
        # deque.append is atomic: recorders on many threads need no lock.
        self._records: collections.deque[Record] = collections.deque(records)

    def __repr__(self) -> str:
        return f"History({len(self._records)} records)"

    def __len__(self) -> int:
        return len(self._records)

    def request_opened(self, event: RequestOpened) -> None:
        self._records.append(event)

    def attempt_ended(self, event: AttemptRecord) -> None:
        self._records.append(event)

    def key_changed(self, event: KeyChange) -> None:
        self._records.append(event)

    def model_changed(self, event: ModelChange) -> None:
        self._records.append(event)

    def request_closed(self, event: RequestClosed) -> None:
        self._records.append(event)

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record so far, in the order they were appended."""
        return tuple(self._records)

    def of_type(self, cls: type[Record]) -> list[Record]:
        """The records of one type."""
        return [r for r in tuple(self._records) if isinstance(r, cls)]

    def check(self, config: Config) -> tuple[Violation, ...]:
        """Every rule the recorded run broke (empty when it broke none)."""
        return check(self.records, config)

    def assert_valid(self, config: Config, *, show: int = 20) -> None:
        """Raise AssertionError listing the broken rules (the first ``show``), if any."""
        violations = self.check(config)
        if violations:
            listed = "\n".join(str(v) for v in violations[:show])
            more = len(violations) - show
            tail = f"\n... and {more} more" if more > 0 else ""
            raise AssertionError(f"{len(violations)} history violations:\n{listed}{tail}")


def check(records: Iterable[Record], config: Config) -> tuple[Violation, ...]:
    """Replay ``records`` of a run under ``config`` and return every broken rule."""
    opened: dict[int, RequestOpened] = {}
    closed: dict[int, list[RequestClosed]] = collections.defaultdict(list)
    attempts: dict[int, list[AttemptRecord]] = collections.defaultdict(list)
    keys: dict[tuple[str, str, str | None], list[KeyChange]] = collections.defaultdict(list)
    models: dict[str, list[ModelChange]] = collections.defaultdict(list)
    violations: list[Violation] = []
    flagged: set[int] = set()  # attempts a published gate already forbade
    lasts: set[int] = set()  # attempts on their request's last chain entry
    for record in records:
        if isinstance(record, RequestOpened):
            if record.request_id in opened:
                violations.append(Violation("terminal", record.request_id, "opened twice"))
            opened[record.request_id] = record
        elif isinstance(record, RequestClosed):
            closed[record.request_id].append(record)
        elif isinstance(record, AttemptRecord):
            attempts[record.request_id].append(record)
        elif isinstance(record, KeyChange):
            keys[(record.provider, record.profile, record.model)].append(record)
        else:
            models[record.model].append(record)
    violations.extend(_terminal(opened, closed, attempts))
    key_states = {k: _Timeline(v) for k, v in keys.items()}
    model_states = {m: _Timeline(v) for m, v in models.items()}
    for request_id in sorted(attempts):
        request = opened.get(request_id)
        if request is None:
            continue  # reported by _terminal
        made = sorted(attempts[request_id], key=lambda a: (a.start, a.end))
        violations.extend(_walk(request, made, config))
        for attempt in made:
            if attempt.outcome == "skipped":
                continue
            last = attempt.model == request.chain[-1]
            gated = list(_gates(attempt, key_states, model_states, last=last))
            if gated:
                flagged.add(id(attempt))
            if last:
                lasts.add(id(attempt))
            violations.extend(gated)
    violations.extend(_probes(attempts, models))
    violations.extend(_evidence(attempts, keys, models, flagged, lasts))
    return tuple(violations)


# --- the rules ------------------------------------------------------------------------------


def _terminal(
    opened: Mapping[int, RequestOpened],
    closed: Mapping[int, Sequence[RequestClosed]],
    attempts: Mapping[int, Sequence[AttemptRecord]],
) -> Iterator[Violation]:
    for request_id in sorted(opened):
        ends = closed.get(request_id, ())
        if len(ends) != 1:
            outcomes = ", ".join(e.outcome for e in ends) or "none"
            yield Violation(
                "terminal", request_id, f"{len(ends)} terminal outcomes ({outcomes}), not 1"
            )
    for request_id in sorted(set(closed) - set(opened)):
        yield Violation("terminal", request_id, "closed but never opened")
    for request_id in sorted(set(attempts) - set(opened)):
        yield Violation("terminal", request_id, "attempts for a request never opened")


def _walk(
    request: RequestOpened, made: Sequence[AttemptRecord], config: Config
) -> Iterator[Violation]:
    index = {model: i for i, model in enumerate(request.chain)}
    position = 0
    calls: collections.Counter[str] = collections.Counter()
    for attempt in made:
        where = index.get(attempt.model)
        if where is None:
            yield Violation(
                "chain_order", request.request_id, f"{attempt.model} is not in its chain"
            )
            continue
        if where < position:
            yield Violation(
                "chain_order",
                request.request_id,
                f"went back to {attempt.model} after {request.chain[position]}",
            )
        position = max(position, where)
        if attempt.outcome == "skipped":
            continue
        calls[attempt.model] += 1
        if attempt.start >= request.deadline:
            yield Violation(
                "deadline",
                request.request_id,
                f"a call to {attempt.model} started {attempt.start - request.deadline:.6f}s "
                "after the deadline",
            )
    for model, count in calls.items():
        provider = config.provider(model.split("/", 1)[0])
        profiles = len(provider.profiles) if provider is not None else 1
        bound = profiles * config.retry.attempts + 1
        if count > bound:
            yield Violation(
                "attempt_bound",
                request.request_id,
                f"{count} calls to {model}; the config allows {bound}",
            )


class _Timeline:
    """The published changes of one key or model, ordered, with the interval test above."""

    def __init__(self, changes: Sequence[KeyChange | ModelChange]) -> None:
        # One actor publishes them in order, so ``before`` and ``after`` both ascend.
        self.changes = sorted(changes, key=lambda c: (c.before, c.after))
        self.befores = [c.before for c in self.changes]
        self.afters = [c.after for c in self.changes]

    def seen(self, gate_at: float, start: float) -> list[KeyChange | ModelChange | None]:
        """Every state a reader between ``gate_at`` and ``start`` may have seen (None: the
        initial state, before any change)."""
        # Changes published before gate_at for sure: only the last of them may be seen.
        settled = bisect.bisect_left(self.afters, gate_at)
        # Changes that may have been published before the reader looked (a tie may).
        possible = bisect.bisect_right(self.befores, start)
        first = settled - 1
        states: list[KeyChange | ModelChange | None] = [None] if first < 0 else []
        states.extend(self.changes[max(0, first) : possible])
        return states


def _gates(
    attempt: AttemptRecord,
    keys: Mapping[tuple[str, str, str | None], _Timeline],
    models: Mapping[str, _Timeline],
    *,
    last: bool,
) -> Iterator[Violation]:
    assert attempt.profile is not None
    for scope in (None, attempt.model):  # the whole key, then the model's rate limit on it
        timeline = keys.get((attempt.provider, attempt.profile, scope))
        if timeline is None:
            continue
        seen = timeline.seen(attempt.gate_at, attempt.start)
        if not any(_key_open(state, attempt.gate_at) for state in seen):
            until = max(
                (s.cooldown_until or 0.0 for s in seen if isinstance(s, KeyChange)), default=0.0
            )
            where = "" if scope is None else f" for {scope}"
            yield Violation(
                "key_cooldown",
                attempt.request_id,
                f"called {attempt.provider}/{attempt.profile}{where} at {attempt.gate_at:.6f}, "
                f"inside its cooldown until {until:.6f}",
            )
    timeline = models.get(attempt.model)
    if timeline is not None:
        seen = timeline.seen(attempt.gate_at, attempt.start)
        if not any(_model_open(state, attempt.gate_at, attempt.probe, last) for state in seen):
            states = ", ".join(str(s.state) for s in seen if isinstance(s, ModelChange))
            yield Violation(
                "model_gate",
                attempt.request_id,
                f"called {attempt.model} ({'probe' if attempt.probe else 'no probe'}) "
                f"at {attempt.gate_at:.6f} while it was {states}",
            )


def _key_open(state: KeyChange | ModelChange | None, at: float) -> bool:
    if state is None:
        return True
    assert isinstance(state, KeyChange)
    return state.cooldown_until is None or state.cooldown_until <= at


def _model_open(state: KeyChange | ModelChange | None, at: float, probe: bool, last: bool) -> bool:
    if state is None:
        return True
    assert isinstance(state, ModelChange)
    if state.state is HealthState.HEALTHY:
        return True
    if state.state is HealthState.PROBING and last:
        return True  # on probation, a model stays open to requests with nothing after it
    # A cooling or disabled model takes only the probe granted once its wait is over.
    return probe and state.until is not None and state.until <= at


def _probes(
    attempts: Mapping[int, Sequence[AttemptRecord]], models: Mapping[str, Sequence[ModelChange]]
) -> Iterator[Violation]:
    commits = {
        model: sorted(c.after for c in changes if c.cause == "commit")
        for model, changes in models.items()
    }
    spans: dict[str, list[tuple[float, float, int]]] = collections.defaultdict(list)
    for request_id, made in attempts.items():
        by_model: dict[str, list[AttemptRecord]] = collections.defaultdict(list)
        for attempt in made:
            if attempt.probe and attempt.outcome != "skipped":
                by_model[attempt.model].append(attempt)
        for model, probes in by_model.items():
            start = min(a.gate_at for a in probes)
            end = max(a.end for a in probes)
            if any(a.first_at is not None for a in probes):
                # Committed: the first commit published after it began ended the probe (an
                # earlier one, by another probe, could only hide an overlap, not invent one).
                ends = commits.get(model, [])
                later = bisect.bisect_left(ends, max(a.start for a in probes))
                if later < len(ends):
                    end = min(end, ends[later])
            spans[model].append((start, end, request_id))
    for model, windows in spans.items():
        windows.sort()
        latest_end, latest_id = float("-inf"), -1
        for start, end, request_id in windows:
            if start < latest_end:
                yield Violation(
                    "single_probe",
                    request_id,
                    f"probed {model} at {start:.6f} while request {latest_id} was probing it",
                )
            if end > latest_end:
                latest_end, latest_id = end, request_id


def _evidence(
    attempts: Mapping[int, Sequence[AttemptRecord]],
    keys: Mapping[tuple[str, str, str | None], Sequence[KeyChange]],
    models: Mapping[str, Sequence[ModelChange]],
    flagged: set[int],
    last: set[int],
) -> Iterator[Violation]:
    calls = [a for made in attempts.values() for a in made if a.outcome != "skipped"]
    for model, model_changes in models.items():
        windows = _windows(
            [
                _Change(
                    c.before,
                    c.after,
                    math.inf if c.state is HealthState.PROBING else c.until,
                    c.state is not HealthState.HEALTHY,
                    c.reset or c.cause == "forgotten",
                    c.cause == "commit",
                )
                for c in model_changes
            ],
            [a for a in calls if a.model == model],
        )
        for window in windows:
            for call in window.calls:
                # On probation (an open-ended window) a request with nothing after the
                # model may still call it; a granted probe may always.
                allowed = call.probe or (window.probation and id(call) in last)
                if not allowed and id(call) not in flagged:
                    yield window.violation(call, model)
    for (provider, profile, scope), key_changes in keys.items():
        on_key = [a for a in calls if (a.provider, a.profile) == (provider, profile)]
        on_scope = [a for a in on_key if scope is None or a.model == scope]
        windows = _windows(
            [
                _Change(
                    c.before,
                    c.after,
                    c.cooldown_until,
                    c.cooldown_until is not None,
                    c.reset,
                    c.cause == "commit",
                )
                for c in key_changes
            ],
            on_scope,
        )
        for window in windows:
            where = f"{provider}/{profile}" + ("" if scope is None else f" for {scope}")
            for call in window.calls:
                if id(call) not in flagged:
                    yield window.violation(call, where)


@attrs.frozen
class _Change:
    """A published change as the rule reads it: ``until`` is when the target may be called
    again (infinite for a model on probation: until the probe holder's verdict), ``out``
    whether it takes the target out of service."""

    before: float
    after: float
    until: float | None
    out: bool
    #: Not evidence from a call: an operator reset, or a row the health table forgot.
    reset: bool
    #: A heal at a probe's commit (explained by a committed probe, whatever its end).
    commit: bool


@attrs.frozen
class _Window:
    """The calls that began while a cooldown set after a failure still held."""

    start: float
    end: float
    calls: tuple[AttemptRecord, ...]
    #: A model on probation: open until the probe holder's verdict.
    probation: bool

    def violation(self, call: AttemptRecord, target: str) -> Violation:
        what = "the probation begun" if self.probation else "the cooldown set"
        until = "the probe's verdict" if self.end == math.inf else f"{self.end:.6f}"
        return Violation(
            "evidence",
            call.request_id,
            f"called {target} at {call.gate_at:.6f}, inside {what} at "
            f"{self.start:.6f} until {until}",
        )


def _windows(changes: Sequence[_Change], calls: Sequence[AttemptRecord]) -> Iterator[_Window]:
    """Each out-of-service change's window, from its ``after`` to its deadline. A later
    change ends it early when it takes the target out again (that change's own window
    takes over), or when it heals it and is explained: an operator reset or a forgotten row,
    a success of a call that may not have seen the first change (gates read at or after its
    ``before``), or a committed probe's commit.
    A heal by old news (a success of a call that began earlier) does not end it."""
    ordered = sorted(changes, key=lambda c: (c.before, c.after))
    successes = sorted(a.gate_at for a in calls if a.outcome == "ok")
    committed = sorted(a.gate_at for a in calls if a.probe and a.first_at is not None)
    for rank, change in enumerate(ordered):
        if not change.out or change.until is None or change.until <= change.after:
            continue
        end, healed = change.until, math.inf
        first = bisect.bisect_left(successes, change.before)
        probe = bisect.bisect_left(committed, change.before)
        for later in ordered[rank + 1 :]:
            if later.before >= end:
                break
            if later.out and (later.until or 0.0) >= end:
                continue  # extended
            explained = (first < len(successes) and successes[first] <= later.before) or (
                later.commit and probe < len(committed) and committed[probe] <= later.before
            )
            if later.out or later.reset or explained:
                # A caller that read the state after the change began may have seen it.
                healed = later.before
                break
        # A tie with ``after`` is no proof that the caller saw the change.
        inside = tuple(a for a in calls if change.after < a.gate_at < end and a.start < healed)
        if inside:
            yield _Window(change.after, min(end, healed), inside, change.until == math.inf)
