"""``switchover bench overhead``: time switchover adds over a direct httpx stream.

Against the same loopback fake (a fleet process serving instant, 8-chunk replies), each
of N requests is timed to its first token (TTFT) and its last (TTLT) through: a direct
httpx stream (``bench._client``, the baseline), switchover's ``rt.stream``, and LiteLLM's
Router when installed, at 1, 16 and 64 caller threads. With the openai SDK installed, four
more rows: the SDK straight to the fake and the SDK through ``rt.transport()``, sync and
async (``AsyncOpenAI`` on one event loop per system); their "added" is over the SDK's own
direct row, and "transport" says what the transport adds on top of switchover's own API
(``rt.stream``; ``rt.astream``, a row of its own, for the async SDK).

The systems alternate in rounds so that drift in the machine's load hits them alike.
"Added" is a system's median minus the direct stream's median in the same run; the ratio
is switchover's added time over LiteLLM's. On a machine with two or more cores the
measuring process is pinned to core 0 and the fake provider to core 1 (like ``taskset
-c``), so the provider's work does not compete with the client's. The rows with metrics and
tracing, and the in-process table of what they cost per request, come from
``bench/_observed.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import httpx
from rich.table import Table
from rich.text import Text
from switchover import Request, Runtime

from ._client import stream_text
from ._fleet import Fleet, key_for
from ._metrics import percentile
from ._observed import observed_runtimes, observer_costs
from ._report import console as plain_console
from ._report import row
from ._scenario import FleetProvider, Load, Operator, Scenario
from ._systems import switchover_config

ROUNDS = 3
#: switchover's targets: at most this much added at the median with one thread, and at
#: most this fraction of what LiteLLM's Router adds.
TARGET_MS = 0.3
TARGET_FRACTION = 0.1

Timing = tuple[float, float]  # (ttft, ttlt) in seconds
Send = Callable[[list[dict[str, Any]]], Timing]


def _scenario() -> Scenario:
    provider = FleetProvider(
        name="openai",
        api="openai",
        profiles=("main",),
        models=("gpt-4o",),
        ttft=0.0,
        chunk_gap=0.0,
        chunks=8,
    )
    return Scenario(
        name="overhead",
        description="no faults, instant replies",
        seed_defect="",
        duration=1.0,
        speedup=1.0,
        seed=1,
        providers=(provider,),
        chain=("openai/gpt-4o",),
        faults=(),
        load=Load(max_tokens=256),
        operator=Operator(),
    )


def _timed(call: Callable[[Callable[[], None]], None]) -> Timing:
    first: list[float] = []
    start = time.perf_counter()
    call(lambda: first.append(time.perf_counter()) if not first else None)
    end = time.perf_counter()
    return (first[0] if first else end) - start, end - start


def _direct(client: httpx.Client, url: str) -> Send:
    def send(messages: list[dict[str, Any]]) -> Timing:
        def call(on_first: Callable[[], None]) -> None:
            stream_text(
                client,
                api="openai",
                base_url=url,
                key=key_for("openai", "main"),
                model="gpt-4o",
                messages=messages,
                max_tokens=256,
                timeout=30.0,
                on_first=on_first,
            )

        return _timed(call)

    return send


def _switchover(rt: Runtime) -> Send:
    def send(messages: list[dict[str, Any]]) -> Timing:
        def call(on_first: Callable[[], None]) -> None:
            with rt.stream(
                Request(model="openai/gpt-4o", messages=messages, max_tokens=256)
            ) as stream:
                for _ in stream:
                    on_first()

        return _timed(call)

    return send


def _litellm(router: Any) -> Send:
    def send(messages: list[dict[str, Any]]) -> Timing:
        def call(on_first: Callable[[], None]) -> None:
            for chunk in router.completion(
                model="openai/gpt-4o", messages=messages, stream=True, max_tokens=256
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    on_first()

        return _timed(call)

    return send


#: The SDK rows and the row each is measured against.
SDK_BASELINES = {
    "openai SDK → switchover": "openai SDK direct",
    "async SDK → switchover": "async SDK direct",
}
#: The SDK rows and switchover's own API they go through (sync, asyncio).
SDK_OWN_API = {
    "openai SDK → switchover": "switchover",
    "async SDK → switchover": "switchover astream",
}


def _sdk(client: Any, model: str) -> Send:
    def send(messages: list[dict[str, Any]]) -> Timing:
        def call(on_first: Callable[[], None]) -> None:
            for chunk in client.chat.completions.create(
                model=model, messages=messages, stream=True, max_tokens=256
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    on_first()

        return _timed(call)

    return send


class _Loop:
    """An event loop on its own thread; callers' threads hand it coroutines to run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def _async_sdk(loop: _Loop, make_client: Callable[[], Any], model: str) -> Send:
    client = loop.run(_made(make_client))

    async def timed(messages: list[dict[str, Any]]) -> Timing:
        # Timed inside the loop: the hop from the caller's thread is not the SDK's cost.
        start = time.perf_counter()
        first = None
        stream = await client.chat.completions.create(
            model=model, messages=messages, stream=True, max_tokens=256
        )
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
        end = time.perf_counter()
        return (first or end) - start, end - start

    def send(messages: list[dict[str, Any]]) -> Timing:
        result: Timing = loop.run(timed(messages))
        return result

    return send


async def _made(make: Callable[[], Any]) -> Any:
    return make()


def _switchover_async(rt: Runtime, loop: _Loop) -> Send:
    async def timed(messages: list[dict[str, Any]]) -> Timing:
        start = time.perf_counter()
        first = None
        request = Request(model="openai/gpt-4o", messages=messages, max_tokens=256)
        async with rt.astream(request) as stream:
            async for _ in stream:
                if first is None:
                    first = time.perf_counter()
        end = time.perf_counter()
        return (first or end) - start, end - start

    def send(messages: list[dict[str, Any]]) -> Timing:
        result: Timing = loop.run(timed(messages))
        return result

    return send


def _sdk_systems(rt: Runtime, url: str, loop: _Loop) -> dict[str, Send]:
    """The openai SDK direct and through the transports, or none if it is not installed."""
    try:
        import openai
    except ImportError:
        return {}
    key = key_for("openai", "main")
    through = {"api_key": "unused", "base_url": "http://switchover/v1", "max_retries": 0}
    direct = {"api_key": key, "base_url": url, "max_retries": 0}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=128)
    return {
        "openai SDK direct": _sdk(
            openai.OpenAI(**direct, http_client=httpx.Client(limits=limits)), "gpt-4o"
        ),
        "openai SDK → switchover": _sdk(
            openai.OpenAI(**through, http_client=httpx.Client(transport=rt.transport())),
            "openai/gpt-4o",
        ),
        "async SDK direct": _async_sdk(
            loop,
            lambda: openai.AsyncOpenAI(**direct, http_client=httpx.AsyncClient(limits=limits)),
            "gpt-4o",
        ),
        "async SDK → switchover": _async_sdk(
            loop,
            lambda: openai.AsyncOpenAI(
                **through, http_client=httpx.AsyncClient(transport=rt.async_transport())
            ),
            "openai/gpt-4o",
        ),
    }


def _measure(send: Send, threads: int, requests: int) -> list[Timing]:
    messages = [{"role": "user", "content": "[req 0] Say something short."}]
    per_thread = max(1, requests // threads)

    def loop() -> list[Timing]:
        return [send(messages) for _ in range(per_thread)]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(loop) for _ in range(threads)]
        return [t for f in futures for t in f.result()]


def _pin(fleet_pid: int | None) -> str:
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return "not pinned (one core)"
    os.sched_setaffinity(0, {0})
    if fleet_pid is not None:
        os.sched_setaffinity(fleet_pid, {1})
    return "measuring process on core 0, fake provider on core 1"


def run_overhead(args: argparse.Namespace) -> int:
    console = plain_console()
    thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
    scenario = _scenario()
    router: Any = None
    with Fleet() as fleet:
        pinning = _pin(fleet.pid)
        urls = fleet.start(scenario, 1)
        systems: dict[str, Send] = {}
        client = httpx.Client(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=128)
        )
        systems["direct httpx"] = _direct(client, urls["openai"])
        config = switchover_config(scenario, urls)
        config = attrs.evolve(config, chain_workers=max(thread_counts))
        rt = Runtime(config).start()
        systems["switchover"] = _switchover(rt)
        loop = _Loop()
        systems["switchover astream"] = _switchover_async(rt, loop)
        systems.update(_sdk_systems(rt, urls["openai"], loop))
        observed = observed_runtimes(config)
        systems.update({name: _switchover(runtime) for name, runtime in observed.items()})
        if not args.no_litellm:
            from .baselines import litellm_router

            try:
                litellm_router.import_litellm()
            except ImportError:
                console.print(litellm_router.NOT_INSTALLED)
            else:
                router = litellm_router.make_router(scenario, urls)
                systems["litellm"] = _litellm(router)
        results: dict[tuple[str, int], list[Timing]] = {}
        try:
            for threads in thread_counts:
                for send in systems.values():  # warm up connections and caches
                    _measure(send, threads, threads * 4)
                for _ in range(ROUNDS):
                    for name, send in systems.items():
                        results.setdefault((name, threads), []).extend(
                            _measure(send, threads, args.requests // ROUNDS)
                        )
        finally:
            loop.close()
            rt.stop()
            for runtime in observed.values():
                runtime.stop()
            client.close()
            fleet.stop()
    console.print(_table(results, thread_counts, list(systems), pinning))
    console.print(observer_costs(thread_counts, args.requests))
    return 0


def _median_ms(timings: list[Timing], index: int) -> float:
    value = percentile([t[index] for t in timings], 50)
    return 0.0 if value is None else value * 1000.0


def _table(
    results: dict[tuple[str, int], list[Timing]],
    thread_counts: list[int],
    systems: list[str],
    pinning: str,
) -> Table:
    caption = pinning
    if "litellm" in systems:
        caption += "; ratio = switchover's added time / LiteLLM Router's"
    if any(name in systems for name in SDK_BASELINES):
        caption += (
            "; SDK rows add over the SDK's direct row; transport = what the SDK transport adds"
            " over rt.stream's (async: rt.astream's) added time"
            f" (target: TTFT within {TARGET_MS} ms at one caller)"
        )
    table = Table(
        title="switchover bench overhead: median time added over a direct httpx stream",
        caption=caption,
    )
    for column in ("threads", "system", "TTFT ms", "added", "TTLT ms", "added", "n"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for threads in thread_counts:
        base = results[("direct httpx", threads)]
        base_first, base_last = _median_ms(base, 0), _median_ms(base, 1)
        added: dict[str, tuple[float, float]] = {}
        for name in systems:
            timings = results[(name, threads)]
            first, last = _median_ms(timings, 0), _median_ms(timings, 1)
            against = SDK_BASELINES.get(name)
            if against is None:
                added[name] = (first - base_first, last - base_last)
            else:
                own = results[(against, threads)]
                added[name] = (first - _median_ms(own, 0), last - _median_ms(own, 1))
            baseline = name == "direct httpx" or name in SDK_BASELINES.values()
            row(
                table,
                str(threads),
                name,
                f"{first:.3f}",
                "" if baseline else f"{added[name][0]:+.3f}",
                f"{last:.3f}",
                "" if baseline else f"{added[name][1]:+.3f}",
                str(len(timings)),
            )
        for name, own_api in SDK_OWN_API.items():
            if name in added:
                extra = [a - b for a, b in zip(added[name], added[own_api], strict=True)]
                row(
                    table,
                    str(threads),
                    f"transport ({name})",
                    "",
                    f"{extra[0]:+.3f}",
                    "",
                    f"{extra[1]:+.3f}",
                    "",
                )
        if "litellm" in added:
            ours, theirs = added["switchover"], added["litellm"]
            ratio = [f"{a / b:.3f}" if b > 0 else "-" for a, b in zip(ours, theirs, strict=True)]
            row(
                table,
                str(threads),
                Text("ratio", "bold"),
                "",
                ratio[0],
                "",
                ratio[1],
                "",
                end_section=True,
            )
    return table
