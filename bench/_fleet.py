"""The fake provider fleet: one loopback FakeServer per provider, in a child process.

The fleet runs in its own process so that its work does not share the interpreter lock
with the system being measured (real providers are other machines). The main process
sends commands over a pipe: start a scenario's servers, arm its fault schedule at a
moment ``t0``, stop and hand back every call the fleet answered.

Each call is decided by a rule (:meth:`runtime.testing.FakeServer.rule`): a call over a
quota of its key and model (a rolling window of admitted calls) gets the provider's real
429, with Retry-After the time until the oldest call in the window leaves it; else the
first fault of the schedule that is active for the call's (provider, model, key) at that
moment and whose dice fire answers it; else a prompt longer than the model's context window gets the
provider's real context error; else the provider's normal streamed reply.
"""

from __future__ import annotations

import bisect
import contextlib
import multiprocessing
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import attrs
from switchover.testing import (
    Cut,
    Fail,
    FakeServer,
    Hang,
    Refuse,
    Reply,
    ServerRequest,
    StreamError,
)

from ._scenario import QUOTA, Fault, FleetProvider, Quota, Scenario, Traffic

_REQUEST_ID = re.compile(r"\[req (\d+)\]")
#: Seconds the main process waits for the fleet to answer a command.
COMMAND_TIMEOUT = 30.0


@attrs.frozen
class FleetCall:
    """One call the fleet answered. ``at`` is on the shared monotonic clock; ``kind`` is
    ``ok``, ``quota`` (over a quota: a 429), ``context`` (prompt too long) or the fault
    kind that answered it."""

    at: float
    provider: str
    model: str
    profile: str
    request_id: int | None
    kind: str


def key_for(provider: str, profile: str) -> str:
    """The fake API key of a profile (no real key ever reaches the fleet)."""
    return f"sk-bench-{provider}-{profile}-0000"


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """A rough token count of a request's messages: characters / 4."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    chars = 0
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            chars += len(content)
    return chars // 4


def request_id(body: Mapping[str, Any]) -> int | None:
    """The load driver's request number, written into the first message as ``[req N]``."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], Mapping):
        match = _REQUEST_ID.search(str(messages[0].get("content", "")))
        if match:
            return int(match.group(1))
    return None


# --- answers -----------------------------------------------------------------------------------


#: Most chunks a drawn answer is sent in (its tokens are grouped into them).
MAX_CHUNKS = 16


def normal_reply(
    provider: FleetProvider,
    traffic: Traffic,
    speedup: float,
    rng: random.Random,
    delay: float = 0.0,
) -> Reply:
    """A healthy answer, on the compressed clock: the provider's fixed shape where its
    scenario pins one, else drawn from the scenario's traffic (time to first token,
    tokens, tokens per second)."""
    ttft = provider.ttft if provider.ttft is not None else rng.uniform(*traffic.ttft)
    if provider.chunks is not None:
        chunks = provider.chunks
        gap = provider.chunk_gap if provider.chunk_gap is not None else 0.02
    else:
        tokens = rng.randint(*traffic.tokens)
        seconds = tokens / rng.uniform(*traffic.tokens_per_second)
        chunks = min(tokens, MAX_CHUNKS)
        gap = seconds / chunks
    return Reply(
        text=" ".join(f"word{i}" for i in range(chunks)),
        chunks=chunks,
        delay=(ttft + delay) / speedup,
        chunk_delay=gap / speedup,
    )


def _openai_error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _anthropic_error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def rate_limit_answer(
    provider: FleetProvider, model: str, wait: float | None, speedup: float, limit: int = 500
) -> Fail:
    """The provider's real 429 for a rate limit of ``limit`` requests; with ``wait`` (story
    seconds), Retry-After on the compressed clock (OpenAI also sends retry-after-ms,
    Anthropic does not)."""
    headers = {}
    if wait is not None:
        seconds = wait / speedup
        headers = {"retry-after": f"{seconds:.3f}"}
        if provider.api == "openai":
            headers["retry-after-ms"] = f"{seconds * 1000:.0f}"
    body = (
        _openai_error(
            f"Rate limit reached for {model} in organization org-bench on requests per min "
            f"(RPM): Limit {limit}, Used {limit}, Requested 1.",
            "requests",
            "rate_limit_exceeded",
        )
        if provider.api == "openai"
        else _anthropic_error(
            "rate_limit_error",
            f"This request would exceed your organization's rate limit of {limit} requests "
            "per minute.",
        )
    )
    return Fail(429, body, headers)


def fault_answer(
    fault: Fault, provider: FleetProvider, model: str, speedup: float, healthy: Reply
) -> Any:
    """The answer a provider of ``provider.api`` really gives for ``fault.kind``."""
    openai = provider.api == "openai"
    kind = fault.kind
    if kind == "rate_limit":
        return rate_limit_answer(provider, model, fault.retry_after, speedup)
    if kind == "auth":
        if openai:
            return Fail(
                401,
                _openai_error(
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
            )
        return Fail(401, _anthropic_error("authentication_error", "invalid x-api-key"))
    if kind == "balance":
        if openai:
            return Fail(
                429,
                _openai_error(
                    "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota",
                    "insufficient_quota",
                ),
            )
        return Fail(
            400,
            _anthropic_error(
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to "
                "Plans & Billing to upgrade or purchase credits.",
            ),
        )
    if kind == "model_missing":
        if openai:
            return Fail(
                404,
                _openai_error(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    "model_not_found",
                ),
            )
        return Fail(404, _anthropic_error("not_found_error", f"model: {model}"))
    if kind == "server_error":
        if openai:
            return Fail(
                503,
                _openai_error("The server is overloaded or not ready yet.", "server_error", None),
            )
        return Fail(529, _anthropic_error("overloaded_error", "Overloaded"))
    if kind == "refuse":
        return Refuse()
    if kind == "hang":
        return Hang()
    if kind == "cut":
        return Cut(after=fault.after, text="word ")
    if kind == "stream_error":
        if openai:
            return StreamError(
                {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
        return StreamError(_anthropic_error("overloaded_error", "Overloaded"))
    assert kind == "slow"
    return attrs.evolve(healthy, delay=healthy.delay + fault.delay / speedup)


def context_answer(provider: FleetProvider, model: str, tokens: int) -> Fail:
    """The provider's error for a prompt longer than the context window."""
    if provider.api == "openai":
        return Fail(
            400,
            {
                "error": {
                    "message": f"This model's maximum context length is {provider.context} "
                    f"tokens. However, your messages resulted in {tokens} tokens. Please "
                    "reduce the length of the messages.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
        )
    return Fail(
        400,
        _anthropic_error(
            "invalid_request_error",
            f"prompt is too long: {tokens} tokens > {provider.context} maximum",
        ),
    )


class QuotaBook:
    """The calls each quota admitted, per key and model, on the story clock; thread-safe.

    ``slack`` story seconds are added to every window: the oracle, whose calls reach the
    fleet a moment after it counts them, keeps a little further from each limit.
    """

    def __init__(self, quotas: Sequence[Quota], slack: float = 0.0) -> None:
        self.quotas = tuple(quotas)
        self.slack = slack
        #: Story times of the calls each quota admitted, per key and model, sorted (the
        #: server's threads may hand calls over slightly out of order).
        self._admitted: dict[tuple[int, str, str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _check(
        self, provider: str, model: str, profile: str, story: float
    ) -> tuple[list[list[float]], list[tuple[Quota, float]]]:
        """The windows a call at ``story`` counts in (expired calls dropped), and each quota
        it is over with the story seconds until the oldest call leaves that window."""
        windows, over = [], []
        for index, quota in enumerate(self.quotas):
            if not quota.target.matches(provider, model, profile):
                continue
            window = quota.window + self.slack
            admitted = self._admitted.setdefault((index, provider, model, profile), [])
            del admitted[: bisect.bisect_right(admitted, story - window)]
            windows.append(admitted)
            if len(admitted) >= quota.requests:
                over.append((quota, admitted[0] + window - story))
        return windows, over

    def has_room(self, provider: str, model: str, profile: str, story: float) -> bool:
        """Whether a call at ``story`` would be admitted (nothing is counted)."""
        with self._lock:
            return not self._check(provider, model, profile, story)[1]

    def take(
        self, provider: str, model: str, profile: str, story: float
    ) -> tuple[Quota, float] | None:
        """Admit and count a call at ``story`` (None), or refuse it: the quota it is over and
        the story seconds until the oldest call in that window leaves it (the longest wait
        when it is over several)."""
        with self._lock:
            windows, over = self._check(provider, model, profile, story)
            if over:
                return max(over, key=lambda refused: refused[1])
            for admitted in windows:
                bisect.insort(admitted, story)
            return None


class Schedule:
    """Decides every call of one provider's server from the scenario's quotas and fault
    schedule."""

    def __init__(
        self,
        scenario: Scenario,
        provider: FleetProvider,
        rng: random.Random,
        record: Callable[[FleetCall], None],
    ) -> None:
        self.scenario = scenario
        self.provider = provider
        self.rng = rng
        self.record = record
        self.t0 = time.monotonic()
        self.profiles = {key_for(provider.name, p): p for p in provider.profiles}
        self.faults = [f for f in scenario.faults if f.target.provider == provider.name]
        self.quotas = QuotaBook([q for q in scenario.quotas if q.target.provider == provider.name])
        self.reply = normal_reply(provider, scenario.traffic, scenario.speedup, rng)

    def arm(self, t0: float) -> None:
        """Story time 0 is the monotonic moment ``t0``; every quota starts empty."""
        self.t0 = t0
        self.quotas = QuotaBook(self.quotas.quotas)

    def fault(self, model: str, profile: str, story: float) -> Fault | None:
        """The first fault active for the call at ``story`` whose dice fire."""
        for fault in self.faults:
            if (
                fault.target.matches(self.provider.name, model, profile)
                and fault.active(story)
                and (fault.share >= 1.0 or self.rng.random() < fault.share)
            ):
                return fault
        return None

    def __call__(self, request: ServerRequest) -> Any:
        story = (request.at - self.t0) * self.scenario.speedup
        profile = self.profiles.get(request.key, "?")
        healthy = normal_reply(
            self.provider, self.scenario.traffic, self.scenario.speedup, self.rng
        )
        answer: Any = healthy
        kind = "ok"
        refused = self.quotas.take(self.provider.name, request.model, profile, story)
        if refused is not None:
            quota, wait = refused
            answer = rate_limit_answer(
                self.provider, request.model, wait, self.scenario.speedup, limit=quota.requests
            )
            kind = QUOTA
        else:
            fault = self.fault(request.model, profile, story)
            if fault is not None:
                answer = fault_answer(
                    fault, self.provider, request.model, self.scenario.speedup, healthy
                )
                kind = fault.kind
        if kind == "ok":
            tokens = prompt_tokens(request.body)
            if tokens > self.provider.context:
                answer, kind = context_answer(self.provider, request.model, tokens), "context"
        self.record(
            FleetCall(
                at=request.at,
                provider=self.provider.name,
                model=request.model,
                profile=profile,
                request_id=request_id(request.body),
                kind=kind,
            )
        )
        return answer


# --- the child process -------------------------------------------------------------------------


class _Servers:
    """The child's side: the servers of the current scenario and their records."""

    def __init__(self) -> None:
        self.servers: list[FakeServer] = []
        self.schedules: list[Schedule] = []
        self.calls: list[FleetCall] = []
        self.lock = threading.Lock()

    def record(self, call: FleetCall) -> None:
        with self.lock:
            self.calls.append(call)

    def start(self, scenario: Scenario, seed: int) -> dict[str, str]:
        self.stop()
        rng = random.Random(seed)
        urls = {}
        for provider in scenario.providers:
            schedule = Schedule(scenario, provider, random.Random(rng.random()), self.record)
            server = FakeServer(default=schedule.reply).start()
            server.rule(schedule)
            self.servers.append(server)
            self.schedules.append(schedule)
            urls[provider.name] = server.base_url(provider.api)
        return urls

    def arm(self, t0: float) -> None:
        for schedule in self.schedules:
            schedule.arm(t0)
        with self.lock:
            self.calls.clear()

    def stop(self) -> list[FleetCall]:
        for server in self.servers:
            server.close()
        self.servers.clear()
        self.schedules.clear()
        with self.lock:
            calls, self.calls = self.calls, []
        return calls


def _serve(conn: Connection) -> None:
    servers = _Servers()
    try:
        while True:
            command, argument = conn.recv()
            if command == "start":
                conn.send(servers.start(*argument))
            elif command == "arm":
                servers.arm(argument)
                conn.send(None)
            elif command == "stop":
                conn.send(servers.stop())
            else:
                conn.send(None)
                return
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        servers.stop()


class Fleet:
    """The main process's handle on the fleet process. Use it as a context manager."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child,), name="chaos-fleet", daemon=True
        )
        self._process.start()
        child.close()

    @property
    def pid(self) -> int | None:
        """The fleet process's id."""
        return self._process.pid

    def _ask(self, command: str, argument: object = None) -> Any:
        self._conn.send((command, argument))
        if not self._conn.poll(COMMAND_TIMEOUT):
            raise RuntimeError(f"the fleet process did not answer {command!r}")
        return self._conn.recv()

    def start(self, scenario: Scenario, seed: int) -> dict[str, str]:
        """Start fresh servers for ``scenario``; returns each provider's base URL."""
        urls: dict[str, str] = self._ask("start", (scenario, seed))
        return urls

    def arm(self, t0: float) -> None:
        """Story time 0 is the monotonic moment ``t0``; forget earlier calls."""
        self._ask("arm", t0)

    def stop(self) -> list[FleetCall]:
        """Close the servers (dropping every open connection); return the calls."""
        calls: list[FleetCall] = self._ask("stop")
        return calls

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, BrokenPipeError):
            self._ask("quit")
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
