"""OpenTelemetry spans (the ``otel`` extra): a span per request, a child span per attempt.

Attributes follow OpenTelemetry's GenAI semantic conventions (``gen_ai.operation.name``,
``gen_ai.system``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` / ``output_tokens``, ``error.type``) plus ``switchover.*``
ones (chain position, provider, profile, probe, in-place retry, skip scope, outcome).

The request span starts on the caller's thread, so it is a child of the caller's current
span. With no tracer provider configured, OpenTelemetry hands out non-recording spans:
the observer then keeps nothing for the request, and every later hook is one dict miss.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._core._clock import SystemClock
from ._core._config import Config
from ._core._errors import ConfigError
from ._core._observe import (
    AttemptRecord,
    Observer,
    RequestClosed,
    RequestOpened,
)
from ._core._redact import Redactor
from ._core._walks import Walks

INSTALL = "tracing needs opentelemetry-api: pip install 'switchover[otel]'"
SCOPE = "switchover"
_WALL = SystemClock()


def _trace() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigError("tracing", INSTALL) from None
    return trace


def installed() -> bool:
    """Whether opentelemetry-api can be imported."""
    try:
        _trace()
    except ConfigError:
        return False
    return True


@attrs.define
class _Open:
    span: Any
    context: Any
    opened_at: float  # on the runtime's clock
    wall_ns: int  # the same moment, in Unix nanoseconds

    def ns(self, at: float) -> int:
        return self.wall_ns + int((at - self.opened_at) * 1e9)


class Tracing(Observer):
    """Spans for requests and their attempts, from the given or the global tracer provider.

    Args:
        config: the runtime's configuration (each provider's API is ``gen_ai.system``).
        redact: removes configured keys from names a caller chose (model strings).
        tracer_provider: an OpenTelemetry ``TracerProvider`` (default: the global one,
            looked up at each request, so one set after the runtime starts is used).
    """

    def __init__(self, config: Config, redact: Redactor, tracer_provider: Any = None) -> None:
        trace = _trace()
        self._trace = trace
        self._tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self._known = redact.known
        self._apis = {p.name: p.api for p in config.providers}
        self._open: dict[int, _Open] = {}
        self._walks = Walks()

    def _model_id(self, key: str) -> str:
        return self._known(key.split("/", 1)[1] if "/" in key else key)

    def request_opened(self, event: RequestOpened) -> None:
        wall_ns = int(_WALL.wall() * 1e9)
        span = self._tracer.start_span("chat", start_time=wall_ns)
        if not span.is_recording():
            return  # no tracer provider: keep nothing, build nothing
        chain = [self._known(entry) for entry in event.chain]
        first = chain[0] if chain else ""
        span.update_name(f"chat {first}")
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": self._model_id(first),
                "switchover.chain": chain,
                "switchover.request_id": event.request_id,
                **({} if event.retry_of is None else {"switchover.retry_of": event.retry_of}),
            }
        )
        context = self._trace.set_span_in_context(span)
        self._open[event.request_id] = _Open(span, context, event.at, wall_ns)
        self._walks.opened(event)

    def attempt_ended(self, event: AttemptRecord) -> None:
        opened = self._open.get(event.request_id)
        if opened is None:
            return
        step = self._walks.ended(event)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": self._apis.get(event.provider, event.provider),
            "gen_ai.request.model": self._model_id(event.model),
            "switchover.model": self._known(event.model),
            "switchover.provider": event.provider,
            "switchover.chain.position": self._walks.position(event.request_id, event.model),
            "switchover.probe": event.probe,
            "switchover.outcome": event.outcome,
        }
        if event.profile is not None:
            attributes["switchover.profile"] = event.profile
        if event.outcome == "skipped":
            attributes["switchover.skip"] = "model" if event.profile is None else "key"
        if event.kind is not None:
            attributes["error.type"] = str(event.kind)
        if event.outcome == "ok":
            attributes["gen_ai.response.model"] = self._model_id(event.model)
        if event.input_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = event.input_tokens
        if event.output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = event.output_tokens
        if step is not None:
            attributes["switchover.retry"] = step.retry
            if step.failover_from is not None:
                attributes["switchover.failover_from"] = self._known(step.failover_from)
        span = self._tracer.start_span(
            f"chat {self._known(event.model)}",
            context=opened.context,
            kind=self._trace.SpanKind.CLIENT,
            start_time=opened.ns(event.start),
            attributes=attributes,
        )
        if event.outcome == "error":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(event.kind)))
        if event.first_at is not None:
            span.add_event("first token", timestamp=opened.ns(event.first_at))
        span.end(end_time=opened.ns(event.end))

    def request_closed(self, event: RequestClosed) -> None:
        opened = self._open.pop(event.request_id, None)
        walk = self._walks.closed(event)
        if opened is None:
            return
        span = opened.span
        span.set_attribute("switchover.outcome", event.outcome)
        if walk is not None:
            span.set_attribute("switchover.calls", walk.calls)
            span.set_attribute("switchover.skips", walk.skips)
            span.set_attribute("switchover.failovers", walk.failovers)
            if walk.served is not None:
                provider = walk.served.split("/", 1)[0]
                span.set_attribute("gen_ai.response.model", self._model_id(walk.served))
                span.set_attribute("gen_ai.system", self._apis.get(provider, provider))
        if event.outcome not in ("served", "released"):
            span.set_attribute("error.type", event.outcome)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.outcome))
        span.end(end_time=opened.ns(event.at))
