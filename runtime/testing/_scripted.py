"""A scripted in-process provider, a fake clock, and a random fleet of faults for tests."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterator, Sequence

import attrs

from .._core._classify import Failure, classify, transport_failure
from .._core._config import HEALTH_KINDS, Config, CooldownConfig, ProviderConfig, RetryConfig
from .._core._redact import Redactor
from .._core._types import Done, Event, ReasoningDelta, TextDelta
from .._core._vocab import ErrorKind
from ..providers._seam import ProviderCall, ProviderFailure
from ._script import Cut, Fail, Hang, Refuse, Reply, Script, Step, StreamError


class FakeClock:
    """A clock that only moves when told to, or when someone waits on it.

    ``wait`` returns at once: it moves time forward by the timeout unless the event is
    already set. Thread-safe, and it never goes backwards.
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now})"

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a FakeClock never goes backwards")
        with self._lock:
            self._now += seconds

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        self.advance(max(0.0, timeout))
        return event.is_set()


Rule = Callable[[ProviderCall], Step | None]


@attrs.frozen
class Call:
    """One call the scripted provider received. ``key`` is kept for tests only."""

    model: str
    key: str = attrs.field(repr=False)
    max_tokens: int | None
    at: float


class ScriptedProvider:
    """An in-process provider that plays scripted steps per (model, key).

    ``script(model, *steps, key=None)`` queues steps for calls matching the model (and key,
    if given); the last step repeats. ``rule(fn)`` decides every call with a function.
    Unmatched calls get ``default``. Every call is recorded in ``calls``.
    """

    def __init__(self, default: Step | None = None, *, secrets: tuple[str, ...] = ()) -> None:
        self.calls: list[Call] = []
        self._script: Script[Step, ProviderCall] = Script(default or Reply())
        self._redact = Redactor(secrets)

    def __repr__(self) -> str:
        return f"ScriptedProvider({len(self.calls)} calls)"

    @property
    def default(self) -> Step:
        """The step for calls that no script or rule decides."""
        return self._script.default

    @default.setter
    def default(self, step: Step) -> None:
        self._script.default = step

    def script(self, model: str | None, *steps: Step, key: str | None = None) -> None:
        """Queue ``steps`` for calls to ``model`` (None: any model) with ``key`` (None: any)."""
        self._script.script(model, *steps, key=key)

    def rule(self, fn: Rule | None) -> None:
        """Decide each call with ``fn(call) -> Step`` (after any matching script)."""
        self._script.rule(fn)

    def calls_to(self, model: str) -> list[Call]:
        return [c for c in self.calls if c.model == model]

    def open(self, call: ProviderCall) -> Iterator[Event]:
        self.calls.append(
            Call(
                model=call.model, key=call.api_key, max_tokens=call.max_tokens, at=call.clock.now()
            )
        )
        step = self._script.next(call.model, call.api_key, call)
        # Failures before any event are raised here, as an HTTP adapter raises on the status.
        if isinstance(step, Refuse):
            raise ProviderFailure(transport_failure("connection refused", timeout=False))
        if isinstance(step, Fail):
            self._pause(call, step.delay, call.first_token_timeout, "no response")
            raise ProviderFailure(
                classify(
                    status=step.status,
                    body=step.body,
                    headers=step.headers,
                    wall=call.clock.wall,
                    redact=self._redact,
                )
            )
        if isinstance(step, StreamError):
            raise ProviderFailure(classify(status=None, body=step.body, redact=self._redact))
        if isinstance(step, Hang):
            self._pause(call, float("inf"), call.first_token_timeout, "no first token")
        return self._events(call, step)

    def _pause(self, call: ProviderCall, delay: float, timeout: float | None, what: str) -> None:
        """Wait ``delay``, failing as a timeout if it is longer than ``timeout`` allows."""
        if delay <= 0:
            return
        allowed = call.cut(timeout)
        if call.clock.wait(call.cancel, min(delay, allowed)):
            raise ProviderFailure(
                transport_failure("cancelled: the runtime is stopping", timeout=False)
            )
        if delay > allowed:
            raise ProviderFailure(transport_failure(f"{what} within {allowed:.3g}s", timeout=True))

    def _events(self, call: ProviderCall, step: Step) -> Iterator[Event]:
        if isinstance(step, Cut):
            for _ in range(step.after):
                yield TextDelta(step.text)
            raise ProviderFailure(transport_failure("connection reset by peer", timeout=False))
        assert isinstance(step, Reply)
        self._pause(call, step.delay, call.first_token_timeout, "no first token")
        pieces = step.pieces()
        first = True
        if step.reasoning:
            yield ReasoningDelta(step.reasoning)
            first = False
        for piece in pieces:
            if not first:
                self._pause(call, step.chunk_delay, call.idle_timeout, "idle gap: no chunk")
            first = False
            yield TextDelta(piece)
        yield from step.tool_calls
        yield Done(finish_reason=step.finish_reason, usage=step.usage)


def failure(kind: ErrorKind, message: str = "") -> Failure:
    """A bare Failure of ``kind`` (for policy tests)."""
    return Failure(kind=kind, message=message)


# --- a mixed-fault fleet (stress tests, the soak script, chaos runs) ----------------------

#: A mix of every fault a provider fleet shows, by weight (mostly successes).
MIXED_FAULTS: tuple[tuple[Step, float], ...] = (
    (Reply("hello there", chunks=3), 70.0),
    (Fail(429, {"error": {"type": "rate_limit_error", "message": "slow down"}}), 8.0),
    (Fail(500, {"error": {"type": "server_error", "message": "boom"}}), 5.0),
    (Fail(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}), 3.0),
    (Fail(401, {"error": {"code": "invalid_api_key", "message": "bad key"}}), 2.0),
    (Fail(402, {"error": {"code": "insufficient_quota", "message": "no credit"}}), 1.0),
    (Fail(404, {"error": {"code": "model_not_found", "message": "no such model"}}), 1.0),
    (Fail(400, {"error": {"message": "nope"}}), 1.0),
    (StreamError({"type": "error", "error": {"type": "overloaded_error"}}), 2.0),
    (Cut(after=1), 3.0),
    (Refuse(), 2.0),
    (Hang(), 1.0),
    (Reply("late", delay=10.0), 1.0),
)
#: Models to draw requests from in a fleet made by :func:`fleet_config`.
FLEET_MODELS = ("a/m1", "a/m2", "b/m3", "fast")


def random_faults(
    rng: random.Random, mix: Sequence[tuple[Step, float]] = MIXED_FAULTS
) -> Callable[[object], Step]:
    """A rule for :meth:`ScriptedProvider.rule` or :meth:`FakeServer.rule` drawing each
    call's step from ``mix`` by weight, with ``rng`` (deterministic for a seeded one, when
    called from one thread)."""
    steps = [step for step, _ in mix]
    weights = list(itertools.accumulate(weight for _, weight in mix))

    def rule(call: object) -> Step:
        return rng.choices(steps, cum_weights=weights)[0]

    return rule


def fleet_config(*, workers: int = 16, base_url: str = "http://fleet.invalid") -> Config:
    """Three providers (``a`` with 3 keys, ``b`` with 2, ``c`` with 1), the global fallback
    ``c/last`` and the alias ``fast``, tuned for real time: millisecond cooldowns, 20 ms
    first-token and idle timeouts and a 2 s request timeout, so every mechanism (key and
    model cooldowns, probes, disabling, in-place retries, timeouts) fires within seconds."""

    def provider(name: str, keys: int) -> ProviderConfig:
        profiles = {f"p{i}": f"sk-{name}-{i}-0123456789abcdef" for i in range(keys)}
        return ProviderConfig(
            name=name,
            api="openai",
            base_url=base_url,
            profiles=profiles,
            connect_timeout=0.05,
            first_token_timeout=0.02,
            idle_timeout=0.02,
        )

    return Config(
        providers=[provider("a", 3), provider("b", 2), provider("c", 1)],
        fallbacks=("c/last",),
        aliases={"fast": "b/fast"},
        retry=RetryConfig(attempts=3, min_delay=0.0005, max_delay=0.002),
        cooldown=CooldownConfig(
            profile_min=0.002,
            profile_max=0.05,
            model_base=dict.fromkeys(HEALTH_KINDS, 0.005),
            model_max=0.05,
            disabled_probe_interval=0.05,
        ),
        chain_workers=workers,
        request_timeout=2.0,
    )
