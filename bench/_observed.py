"""What metrics and tracing cost: rows for ``switchover bench overhead``.

Two measurements, each against a baseline in the same run, the variants alternating in
rounds so that drift in the machine's load hits them alike:

- :func:`observed_runtimes`: extra systems for the loopback table (time added to first
  and last token over a direct httpx stream): switchover with ``metrics=True``, and with
  metrics plus spans recorded by the OpenTelemetry SDK (exported to nowhere).
- :func:`observer_costs`: microseconds per request in process (a scripted provider, no
  sockets), where the observers' cost is not lost in the loopback's noise: the process's
  CPU time per request over a round (every thread's, the actors' too; unlike wall time it
  does not grow while other processes hold the cores, so it holds still on a shared
  machine), median over rounds, minus the same for a runtime with tracing off and no
  metrics.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from switchover import Config, ProviderConfig, Request, Runtime
from switchover.testing import Reply, ScriptedProvider

from ._metrics import percentile

ROUNDS = 9
BASELINE = "tracing off, no metrics"
AGAIN = "the same again (noise floor)"
#: The issue's target: metrics add at most this many microseconds per request.
TARGET_US = 20.0


def _sdk_provider() -> Any:
    """An OpenTelemetry SDK tracer provider that records every span and exports to
    nowhere (None without opentelemetry-sdk)."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


def variants() -> dict[str, dict[str, Any]]:
    """Runtime keyword arguments by variant name, the baseline first."""
    out: dict[str, dict[str, Any]] = {
        BASELINE: {"tracing": False},
        "default (tracing not configured)": {},
        "metrics": {"metrics": True, "tracing": False},
    }
    sdk = _sdk_provider()
    if sdk is not None:
        out["metrics + tracing (SDK)"] = {"metrics": True, "tracer_provider": sdk}
    # The baseline's twin: its "added" is the noise floor of the run.
    out[AGAIN] = {"tracing": False}
    return out


def observed_runtimes(config: Config) -> dict[str, Runtime]:
    """Started runtimes with metrics, and with metrics and SDK tracing, for the loopback
    table; the caller stops them."""
    named = {
        "switchover +metrics": {"metrics": True},
        "switchover +metrics +tracing": {"metrics": True, "tracer_provider": _sdk_provider()},
    }
    return {
        name: Runtime(config, **kwargs).start()
        for name, kwargs in named.items()
        if kwargs.get("tracer_provider", True) is not None
    }


def _config(workers: int) -> Config:
    return Config(
        providers=[
            ProviderConfig(
                name="openai",
                api="openai",
                base_url="http://127.0.0.1:9/v1",
                profiles={"main": "sk-bench-observer-cost-0000"},
            )
        ],
        chain_workers=workers,
    )


def _per_request(rt: Runtime, threads: int, requests: int) -> float:
    """CPU seconds of this process per request, for ``requests`` sent from ``threads``
    callers."""
    request = Request(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    each = max(1, requests // threads)

    def loop() -> None:
        for _ in range(each):
            rt.complete(request)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        began = time.process_time()
        for future in [pool.submit(loop) for _ in range(threads)]:
            future.result()
        return (time.process_time() - began) / (each * threads)


def observer_costs(thread_counts: Sequence[int], requests: int) -> Table:
    """The in-process table: µs per request and µs added over the baseline."""
    table = Table(
        title="metrics and tracing in process: CPU µs per request (scripted provider)",
        caption=f"added = variant's median - '{BASELINE}' median in the same run; "
        f"target: metrics add ≤ {TARGET_US:.0f} µs",
    )
    for column in ("threads", "variant", "µs / request", "added µs", "rounds"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    kinds = variants()
    for threads in thread_counts:
        runtimes = {
            name: Runtime(
                _config(threads), providers={"openai": ScriptedProvider(Reply(chunks=8))}, **kw
            ).start()
            for name, kw in kinds.items()
        }
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        try:
            for rt in runtimes.values():
                _per_request(rt, threads, threads * 50)  # warm up
            for _ in range(ROUNDS):
                for name, rt in runtimes.items():
                    times[name].append(_per_request(rt, threads, requests))
        finally:
            for rt in runtimes.values():
                rt.stop()
        base = (percentile(times[BASELINE], 50) or 0.0) * 1e6
        for name, measured in times.items():
            median = (percentile(measured, 50) or 0.0) * 1e6
            table.add_row(
                str(threads),
                name,
                f"{median:.1f}",
                "" if name == BASELINE else f"{median - base:+.1f}",
                str(len(measured)),
                end_section=name == list(times)[-1],
            )
    return table
