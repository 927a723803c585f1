"""SEED BASELINE: a faithful Python port of the reference FailoverManager (rsclaw, dfe4a3d).

This is *not* switchover. It reproduces ``shared/seed/failover.rs`` and the behaviour
documented in ``shared/reference/rsclaw-behaviour.md``, defects included, so that the
chaos benchmark measures switchover against where the project started:

- one manager behind one lock (``call(&mut self)``): every call is serialised, across
  sleeps, retries and the wait for response headers;
- substring classification of error strings formatted as the Rust providers format them
  (``"Anthropic API error 529 <unknown status code> at <url> (model=<model>): <body>"``),
  so "403" inside ``claude-3-haiku-20240307`` makes every error of that model ``Auth``;
  the profile pre-checks read only the outer message, ``classify_error`` the whole chain;
- success recorded when the response headers arrive: errors later in the stream never
  reach health (the caller just gets a broken stream);
- profile failure counts deleted when a cooldown expires, so the profile backoff never
  grows past 5 s; Retry-After is never read;
- fake key rotation: each provider holds one baked-in credential (its first profile's),
  so "rotating" to the next profile re-sends the same key;
- model health: a cooling row is callable again the moment it expires (no single probe),
  ``consecutive_failures`` is shared across kinds, ``Disabled`` is never entered;
- ``max_tokens`` dropped for the whole rest of the chain after one output-limit error.

Time: every constant is in story seconds and divided by the scenario's speedup, exactly
as switchover's configuration is. Two harness-only departures, neither of which changes a
decision during a run: the Anthropic URL in error messages is the production one (a
loopback port such as 34291 would otherwise put a random "429" into every message), and a
stopped baseline fails its queued calls at once so they cannot leak into the next run.
"""

from __future__ import annotations

import enum
import http
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import httpx

from .._client import HttpStatusError, SSECall, StreamEventError, StreamTruncated
from .._fleet import key_for
from .._load import CLIENT_THREADS, Outcome, Planned
from .._scenario import Scenario

# --- constants (failover.rs, health.rs, lib.rs at dfe4a3d), story seconds -------------------

MIN_COOLDOWN = 5.0
MAX_COOLDOWN = 300.0
TRANSIENT_RETRY_MAX = 2
TRANSIENT_RETRY_BACKOFFS = (0.5, 2.0)
HEALTH_MAX_COOLDOWN = 3600.0
AUTH_DISABLE_AFTER = 3
RETRY_MIN_DELAY_MS = 400.0
RETRY_MAX_DELAY_MS = 30_000.0
RETRY_JITTER = 0.1
TRUNCATE = 200
CONNECT_TIMEOUT = 20.0
TRANSPORT_RETRY_DELAY = 0.2
HEADERS_TIMEOUT = {"openai": 300.0, "anthropic": 120.0}
IDLE_TIMEOUT = {"openai": None, "anthropic": 180.0}
PRODUCTION_URL = {
    "openai": "https://api.openai.com/v1/chat/completions",
    "anthropic": "https://api.anthropic.com/v1/messages",
}


class ErrorKind(enum.Enum):
    RATE_LIMIT = "RateLimit"
    AUTH = "Auth"
    BALANCE = "Balance"
    MODEL_MISSING = "ModelMissing"
    TRANSIENT = "Transient"
    UNKNOWN = "Unknown"
    BAD_REQUEST = "BadRequest"
    CONTEXT_EXCEEDED = "ContextExceeded"


COOLING_BASE = {
    ErrorKind.RATE_LIMIT: 30.0,
    ErrorKind.TRANSIENT: 10.0,
    ErrorKind.UNKNOWN: 10.0,
    ErrorKind.AUTH: 60.0,
    ErrorKind.BALANCE: 60.0,
    ErrorKind.MODEL_MISSING: 60.0,
    ErrorKind.BAD_REQUEST: 5.0,
    ErrorKind.CONTEXT_EXCEEDED: 5.0,
}
DISABLING = frozenset({ErrorKind.AUTH, ErrorKind.BALANCE, ErrorKind.MODEL_MISSING})


class SeedError(Exception):
    """An ``anyhow::Error``: the outer message plus its context chain.

    ``str(e)`` is Rust's ``e.to_string()`` (the outer message only); :meth:`alt` is
    ``format!("{e:#}")`` (the whole chain joined by ": ").
    """

    def __init__(self, message: str, *causes: str) -> None:
        super().__init__(message)
        self.chain = (message, *causes)

    def alt(self) -> str:
        return ": ".join(self.chain)


# --- classification (health.rs classify_str, dfe4a3d order) ---------------------------------


def _any(text: str, *needles: str) -> bool:
    return any(n in text for n in needles)


def classify_str(raw: str) -> ErrorKind:
    """The reference's substring classifier; first match wins."""
    s = raw.lower()
    if _any(s, "session_ctx_exceeded", "exceed_context_size_error", "max-session-ctx"):
        return ErrorKind.CONTEXT_EXCEEDED
    if (
        _any(
            s,
            "insufficient_quota",
            "insufficient quota",
            "credit_balance_too_low",
            "accountoverdue",
            "balance_not_enough",
            "balance not enough",
        )
        or ("credit balance" in s and "too low" in s)
        or _any(raw, "余额不足", "额度不足", "欠费")
        or ("402" in s and ("payment" in s or "balance" in s))
    ):
        return ErrorKind.BALANCE
    if _any(
        s,
        "model_not_found",
        "model not found",
        "does not exist or you do not have access",
        "modelnotopen",
        "endpointisnotenabled",
        "invalid model",
    ) or ("not_found_error" in s and "model" in s):
        return ErrorKind.MODEL_MISSING
    if _any(
        s,
        "401",
        "403",
        "invalid_api_key",
        "invalid api key",
        "authentication_error",
        "unauthorized",
        "permission_denied",
        "authentication fails",
    ):
        return ErrorKind.AUTH
    if _any(s, "429", "rate_limit", "rate limit", "too many requests", "ratelimit"):
        return ErrorKind.RATE_LIMIT
    if "max_tokens" in s and ("400" in s or "exceed" in s):
        return ErrorKind.BAD_REQUEST
    if _any(
        s,
        "500",
        "502",
        "503",
        "504",
        "overloaded",
        "server_error",
        "internal server error",
        "gateway timeout",
        "connection failed",
        "connect error",
        "timeout",
        "timed out",
    ):
        return ErrorKind.TRANSIENT
    return ErrorKind.UNKNOWN


def classify_error(error: SeedError) -> ErrorKind:
    """``classify_error(&e)`` reads ``{e:#}``: the whole context chain."""
    return classify_str(error.alt())


def is_max_tokens_error(error: SeedError) -> bool:
    msg = str(error).lower()
    return _any(
        msg,
        "max_tokens",
        "context_length_exceeded",
        "maximum context length",
        "context length exceeded",
    )


def is_rate_limit(error: SeedError) -> bool:
    if is_max_tokens_error(error):
        return False
    msg = str(error).lower()
    return _any(msg, "429", "rate limit", "too many requests")


def is_auth_error(error: SeedError) -> bool:
    msg = str(error).lower()
    return _any(msg, "401", "unauthorized", "invalid api key")


def backoff_delay_ms(attempt: int) -> float:
    """``backoff_delay(attempt, &RetryConfig::default())`` in milliseconds."""
    base = RETRY_MIN_DELAY_MS * 2.0**attempt
    clamped = min(base, RETRY_MAX_DELAY_MS)
    jitter = clamped * RETRY_JITTER * ((attempt * 0.31) % 1.0)
    return float(int(clamped + jitter))


def cooling_backoff(n: int, kind: ErrorKind) -> float:
    """Model cooling (story s) after the ``n``-th consecutive failure."""
    return min(COOLING_BASE[kind] * 2.0 ** min(n - 1, 16), HEALTH_MAX_COOLDOWN)


def status_display(status: int) -> str:
    """reqwest's ``StatusCode`` Display: ``429 Too Many Requests``."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} <unknown status code>"


# --- per-model health (health.rs) ------------------------------------------------------------


@attrs.define
class HealthRow:
    status: str = "Healthy"  # Healthy | Cooling | Disabled
    until: float = 0.0
    last_error: str | None = None
    consecutive_failures: int = 0

    def is_callable(self, now: float) -> bool:
        if self.status == "Healthy":
            return True
        if self.status == "Cooling":
            return now >= self.until
        return False


class HealthRegistry:
    """``ProviderHealthRegistry``: the shared table behind its own lock."""

    def __init__(self, scale: Callable[[float], float], clock: Callable[[], float]) -> None:
        self._rows: dict[str, HealthRow] = {}
        self._lock = threading.Lock()
        self._scale = scale
        self._clock = clock

    def ensure(self, chain: Sequence[str]) -> None:
        with self._lock:
            for model in chain:
                self._rows.setdefault(model, HealthRow())

    def is_callable(self, model: str) -> bool:
        with self._lock:
            row = self._rows.get(model)
            return row is None or row.is_callable(self._clock())

    def record_success(self, model: str) -> None:
        with self._lock:
            row = self._rows.get(model)
            if row is not None:
                row.status, row.last_error, row.consecutive_failures = "Healthy", None, 0

    def record_failure(self, model: str, kind: ErrorKind, body: str) -> None:
        with self._lock:
            row = self._rows.get(model)
            if row is None:
                return
            row.last_error = body
            row.consecutive_failures += 1
            n = row.consecutive_failures
            backoff = (
                HEALTH_MAX_COOLDOWN
                if kind in DISABLING and n >= AUTH_DISABLE_AFTER
                else cooling_backoff(n, kind)
            )
            row.status = "Cooling"
            row.until = self._clock() + self._scale(backoff)


# --- providers (Rust error formats) ----------------------------------------------------------


@attrs.define
class LlmRequest:
    """The mutable request the manager reuses across chain entries."""

    model: str
    fallback_models: list[str]
    messages: list[Mapping[str, Any]]
    max_tokens: int | None


class SeedProvider:
    """An ``LlmProvider``: ``stream(req)`` returns at response headers or raises."""

    def __init__(
        self,
        name: str,
        *,
        api: str,
        base_url: str,
        key: str,
        client: httpx.Client,
        scale: Callable[[float], float],
        stopped: threading.Event,
    ) -> None:
        self.name = name
        self.api = api
        self.base_url = base_url
        self.key = key  # the one baked-in credential: profiles cannot change it
        self._client = client
        self._scale = scale
        self._stopped = stopped

    def _label(self) -> str:
        return "OpenAI" if self.api == "openai" else "Anthropic"

    def stream(self, req: LlmRequest) -> Iterator[str]:
        """``send_with_transport_retry``: one retry after 200 ms on a connection error."""
        try:
            return self._send(req)
        except SeedError as error:
            if not _is_transport_retryable(error) or self._stopped.is_set():
                raise
        time.sleep(self._scale(TRANSPORT_RETRY_DELAY))
        return self._send(req)

    def _send(self, req: LlmRequest) -> Iterator[str]:
        if self._stopped.is_set():
            raise SeedError(f"{self._label()} request failed", "the benchmark run is over")
        headers_timeout = self._scale(HEADERS_TIMEOUT[self.api])
        idle = IDLE_TIMEOUT[self.api]
        timeout = httpx.Timeout(
            connect=self._scale(CONNECT_TIMEOUT),
            read=headers_timeout if idle is None else max(headers_timeout, self._scale(idle)),
            write=self._scale(CONNECT_TIMEOUT),
            pool=None,
        )
        call = SSECall(
            self._client,
            api=self.api,
            base_url=self.base_url,
            key=self.key,
            model=req.model,
            messages=req.messages,
            max_tokens=req.max_tokens,
            timeout=timeout,
        )
        try:
            call.open()
        except HttpStatusError as error:
            status = status_display(error.status)
            if self.api == "openai":
                raise SeedError(f"OpenAI API error {status}: {error.body}") from None
            raise SeedError(
                f"Anthropic API error {status} at {PRODUCTION_URL['anthropic']} "
                f"(model={req.model}): {error.body}"
            ) from None
        except httpx.TimeoutException:
            call.close()
            raise SeedError(
                f"{self._label()} request timed out after {HEADERS_TIMEOUT[self.api]:.0f}s "
                "waiting for response headers"
            ) from None
        except httpx.HTTPError as error:
            call.close()
            context = (
                "OpenAI request failed"
                if self.api == "openai"
                else f"Anthropic request failed (url={PRODUCTION_URL['anthropic']})"
            )
            raise SeedError(
                context,
                f"error sending request for url ({PRODUCTION_URL[self.api]})",
                _reqwest_cause(error),
            ) from None
        return _events(call)


def _reqwest_cause(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        return "client error (Connect): tcp connect error: Connection refused (os error 111)"
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError)):
        return "connection closed before message completed"
    return str(error) or type(error).__name__


def _is_transport_retryable(error: SeedError) -> bool:
    text = error.alt()
    return any(
        marker in text
        for marker in (
            "tcp connect error",
            "closed before message completed",
            "Connection reset",
            "Connection refused",
            "connection closed",
        )
    )


def _events(call: SSECall) -> Iterator[str]:
    """The ``LlmStream``: text deltas; an SSE error frame or a broken read ends it with an
    error the caller sees (``StreamEvent::Error``); nothing goes back to failover."""
    try:
        yield from call.texts()
    except StreamEventError as error:
        raise SeedStreamError(f"stream error event: {error.data}") from None
    except (StreamTruncated, httpx.HTTPError) as error:
        raise SeedStreamError(f"stream read failed: {type(error).__name__}") from None
    finally:
        call.close()


class SeedStreamError(Exception):
    """An error inside a stream the manager already returned (after success was recorded)."""


# --- the manager (failover.rs) ---------------------------------------------------------------


class _Step:
    pass


@attrs.frozen
class _Success(_Step):
    stream: Iterator[str]
    served: str


@attrs.frozen
class _Propagate(_Step):
    error: SeedError


@attrs.frozen
class _TryNext(_Step):
    error: SeedError


@attrs.frozen
class _AllCooling(_Step):
    pass


class FailoverManager:
    """``FailoverManager``: ``call`` holds the one lock for the whole walk (``&mut self``)."""

    def __init__(
        self,
        *,
        order: Mapping[str, list[str]],
        fallbacks: Sequence[str],
        registry: Mapping[str, SeedProvider],
        health: HealthRegistry,
        scale: Callable[[float], float],
        clock: Callable[[], float],
        stopped: threading.Event,
    ) -> None:
        self.order = dict(order)
        self.fallbacks = list(fallbacks)
        self.registry = dict(registry)
        self.model_health = health
        self.cooldowns: dict[str, float] = {}
        self.failure_counts: dict[str, int] = {}
        self._scale = scale
        self._clock = clock
        self._stopped = stopped
        self._lock = threading.Lock()

    def build_chain(self, req: LlmRequest) -> list[str]:
        out: list[str] = []
        for entry in [req.model, *req.fallback_models, *self.fallbacks]:
            model = entry.strip()
            if model and model not in out:
                out.append(model)
        return out

    def call(self, req: LlmRequest) -> tuple[Iterator[str], str]:
        """Walk the chain; return the stream and ``provider/model@profile`` that served."""
        with self._lock:
            chain = self.build_chain(req)
            if not chain:
                raise SeedError("LLM request has no model resolved")
            self.model_health.ensure(chain)
            last_error: SeedError | None = None
            for model_str in chain:
                if not self.model_health.is_callable(model_str):
                    continue
                provider_name, model_id = model_str.split("/", 1)
                req.model = model_id
                profiles = self.order.get(provider_name) or ["default"]
                step = self._try_model_with_profiles(provider_name, model_id, profiles, req)
                if isinstance(step, _Success):
                    self.model_health.record_success(model_str)
                    return step.stream, step.served
                if isinstance(step, _Propagate):
                    raise step.error
                if isinstance(step, _TryNext):
                    kind = classify_error(step.error)
                    if kind is not ErrorKind.UNKNOWN:
                        self.model_health.record_failure(
                            model_str, kind, step.error.alt()[:TRUNCATE]
                        )
                    last_error = step.error
            if last_error is not None:
                raise SeedError(
                    f"LLM chain exhausted ({len(chain)} models tried). Last error: "
                    f"{last_error.alt()}"
                )
            raise SeedError(
                f"LLM chain exhausted ({len(chain)} models, all cooling). Wait for cooldown, "
                "reset health, or check provider status."
            )

    def _try_model_with_profiles(
        self, provider_name: str, model_id: str, profiles: list[str], req: LlmRequest
    ) -> _Step:
        any_profile_called = False
        last_err: SeedError | None = None
        for profile_id in profiles:
            if self.is_cooling_down(provider_name, profile_id):
                continue
            provider = self.registry.get(provider_name)
            if provider is None:
                return _TryNext(
                    SeedError(
                        f"provider '{provider_name}' not found: "
                        f"provider not registered: {provider_name}"
                    )
                )
            any_profile_called = True
            dropped_max_tokens = False
            transient_attempts = 0
            while True:
                try:
                    stream = provider.stream(
                        LlmRequest(req.model, [], req.messages, req.max_tokens)
                    )
                except SeedError as e:
                    if is_max_tokens_error(e):
                        if req.max_tokens is not None and not dropped_max_tokens:
                            req.max_tokens = None
                            dropped_max_tokens = True
                            continue
                        return _Propagate(
                            SeedError(
                                "LLM request rejected: output token limit exceeded. The "
                                "configured max_tokens is above this model/tier's ceiling and "
                                "retrying without it still failed. Lower max_tokens in your "
                                "config (model.max_tokens / agents.defaults). Underlying "
                                f"error: {e}"
                            )
                        )
                    if is_rate_limit(e) or is_auth_error(e):
                        attempt = self.hit_count(provider_name, profile_id)
                        delay = min(
                            max(backoff_delay_ms(attempt) / 1000.0, MIN_COOLDOWN), MAX_COOLDOWN
                        )
                        self.set_cooldown(provider_name, profile_id, self._scale(delay))
                        last_err = e
                        break  # try next profile
                    kind = classify_error(e)
                    if (
                        kind in (ErrorKind.TRANSIENT, ErrorKind.UNKNOWN)
                        and transient_attempts < TRANSIENT_RETRY_MAX
                        and not self._stopped.is_set()
                    ):
                        delay = TRANSIENT_RETRY_BACKOFFS[transient_attempts]
                        transient_attempts += 1
                        time.sleep(self._scale(delay))
                        continue
                    if kind in (ErrorKind.BAD_REQUEST, ErrorKind.CONTEXT_EXCEEDED):
                        return _Propagate(e)
                    return _TryNext(e)
                self.failure_counts.pop(_key(provider_name, profile_id), None)
                return _Success(stream, f"{provider_name}/{model_id}@{profile_id}")
        if not any_profile_called:
            return _AllCooling()
        return _TryNext(last_err) if last_err is not None else _AllCooling()

    def is_cooling_down(self, provider_name: str, profile_id: str) -> bool:
        self.cleanup_expired_cooldowns()
        until = self.cooldowns.get(_key(provider_name, profile_id))
        return until is not None and self._clock() < until

    def set_cooldown(self, provider_name: str, profile_id: str, delay: float) -> None:
        key = _key(provider_name, profile_id)
        self.cooldowns[key] = self._clock() + delay
        self.failure_counts[key] = self.failure_counts.get(key, 0) + 1

    def hit_count(self, provider_name: str, profile_id: str) -> int:
        return self.failure_counts.get(_key(provider_name, profile_id), 0)

    def cleanup_expired_cooldowns(self) -> None:
        now = self._clock()
        for key in [k for k, until in self.cooldowns.items() if until <= now]:
            del self.cooldowns[key]
            self.failure_counts.pop(key, None)  # the dfe4a3d defect: backoff never grows


def _key(provider_name: str, profile_id: str) -> str:
    return f"{provider_name}/{profile_id}"


# --- the system under test -------------------------------------------------------------------


class Seed:
    """The seed port as a benchmark system: one manager shared by every caller thread."""

    name = "seed"

    def __init__(self) -> None:
        self._manager: FailoverManager | None = None
        self._client: httpx.Client | None = None
        self._scenario: Scenario | None = None
        self._stopped = threading.Event()

    def start(self, scenario: Scenario, urls: Mapping[str, str]) -> None:
        self._scenario = scenario
        self._stopped.clear()

        def scale(story: float) -> float:
            return story / scenario.speedup

        clock = time.monotonic
        self._client = httpx.Client(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=CLIENT_THREADS)
        )
        registry = {
            p.name: SeedProvider(
                p.name,
                api=p.api,
                base_url=urls[p.name],
                key=key_for(p.name, p.profiles[0]),
                client=self._client,
                scale=scale,
                stopped=self._stopped,
            )
            for p in scenario.providers
        }
        self._manager = FailoverManager(
            order={p.name: list(p.profiles) for p in scenario.providers},
            fallbacks=[],
            registry=registry,
            health=HealthRegistry(scale, clock),
            scale=scale,
            clock=clock,
            stopped=self._stopped,
        )

    def send(
        self, planned: Planned, messages: Sequence[Mapping[str, Any]], first: Callable[[], None]
    ) -> Outcome:
        assert self._manager is not None
        assert self._scenario is not None
        chain = self._scenario.chain
        request = LlmRequest(
            model=chain[0],
            fallback_models=list(chain[1:]),
            messages=list(messages),
            max_tokens=self._scenario.load.max_tokens,
        )
        try:
            stream, served = self._manager.call(request)
        except SeedError as error:
            return Outcome(error="chain exhausted" if "exhausted" in str(error) else "rejected")
        try:
            for _ in stream:
                first()
        except SeedStreamError:
            return Outcome(error="broken stream")
        return Outcome(served=served)

    def stop(self) -> None:
        self._stopped.set()
        if self._client is not None:
            self._client.close()
