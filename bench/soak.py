"""Soak: hours-scale mixed faults through one runtime, watching for leaks.

Callers in a closed loop stream requests through a mixed-fault fleet (every fault of
:data:`runtime.testing.MIXED_FAULTS`), in-process (``--target scripted``) or over loopback
HTTP through the built-in adapters (``--target http``), while actors are crashed at random
now and then.
Every interval it prints the process's RSS, thread count and open descriptors with the
requests finished in that interval; at the end it prints how each moved.

Not part of the test suite. Run it pinned to one core, at low priority::

    nice -n 10 taskset -c 0 python bench/soak.py --minutes 30 --json soak.json

Linux only (it reads /proc/self).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import attrs
from switchover import Request, Runtime, SwitchoverError
from switchover.testing import (
    FLEET_MODELS,
    FakeServer,
    ScriptedProvider,
    fleet_config,
    inject_crash,
    random_faults,
)

MESSAGES = ({"role": "user", "content": "soak"},)
#: Every n-th request's latency is kept (hundreds of thousands finish each minute; the
#: harness must not be what grows).
LATENCY_SAMPLE = 16


def process_figures() -> dict[str, float]:
    """RSS (MiB), OS threads and open file descriptors of this process."""
    figures: dict[str, float] = {"fds": len(os.listdir("/proc/self/fd"))}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name == "VmRSS":
                figures["rss_mib"] = round(int(value.split()[0]) / 1024, 1)
            elif name == "Threads":
                figures["threads"] = int(value)
    return figures


class Load:
    """Closed-loop callers; counts outcomes and latencies per interval."""

    def __init__(self, rt: Runtime, threads: int, seed: int) -> None:
        self.rt = rt
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []
        self.threads = [
            threading.Thread(target=self._caller, args=(seed * 1000 + i,), name=f"soak-{i}")
            for i in range(threads)
        ]

    def _caller(self, seed: int) -> None:
        rng = random.Random(seed)
        done = 0
        while not self.stop.is_set():
            request = Request(
                model=rng.choice(FLEET_MODELS),
                messages=MESSAGES,
                fallback_models=(rng.choice(FLEET_MODELS),),
            )
            started = time.perf_counter()
            try:
                with self.rt.stream(request) as stream:
                    for _event in stream:
                        pass
                outcome = "served"
            except SwitchoverError as error:
                outcome = type(error).__name__
            took = time.perf_counter() - started
            done += 1
            with self.lock:
                self.outcomes[outcome] += 1
                if done % LATENCY_SAMPLE == 0:
                    self.latencies.append(took)

    def take(self) -> tuple[collections.Counter[str], list[float]]:
        """What finished since the last call."""
        with self.lock:
            outcomes, self.outcomes = self.outcomes, collections.Counter()
            latencies, self.latencies = self.latencies, []
        return outcomes, latencies


def crash_now_and_then(rt: Runtime, every: float, stop: threading.Event, seed: int) -> int:
    """Crash a random actor every ``every`` seconds until ``stop``; returns how many."""
    rng = random.Random(seed)
    names = [a.name for a in rt.inspect().actors]
    crashes = 0
    while not stop.wait(every):
        inject_crash(rt, rng.choice(names), wait=False)
        crashes += 1
    return crashes


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ScriptedFleet:
    """The fleet in-process: one ScriptedProvider behind every provider."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.config = fleet_config(workers=args.workers)
        self.rule = random_faults(random.Random(args.seed))
        self.scripted = ScriptedProvider()
        self.scripted.rule(self.rule)
        # It logs every call for tests; here, keep only the latest few.
        self.scripted.calls = collections.deque(maxlen=1000)  # type: ignore[assignment]
        self.providers: dict[str, Any] | None = {
            p.name: self.scripted for p in self.config.providers
        }

    def forget(self) -> None:
        """Drop what the fake remembers (nothing to do: its log is bounded)."""

    def close(self) -> None:
        """Nothing to close."""


class HttpFleet:
    """The fleet over loopback HTTP: the built-in adapters against one FakeServer, with
    first-token and idle timeouts a Python server on a busy core can meet."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.server = FakeServer().start()
        config = fleet_config(workers=args.workers, base_url=self.server.openai_url)
        lenient = {"connect_timeout": 1.0, "first_token_timeout": 0.5, "idle_timeout": 0.5}
        self.config = attrs.evolve(
            config, providers=[attrs.evolve(p, **lenient) for p in config.providers]
        )
        self.rule = random_faults(random.Random(args.seed))
        self.server.rule(self.rule)
        self.providers: dict[str, Any] | None = None  # the built-in HTTP adapters

    def forget(self) -> None:
        """The server records every call (tens of thousands a minute, request bodies
        included): clear the log, then put the rule back at once."""
        self.server.reset()
        self.server.rule(self.rule)

    def close(self) -> None:
        self.server.close()


def soak(args: argparse.Namespace) -> dict[str, Any]:
    fleet = HttpFleet(args) if args.target == "http" else ScriptedFleet(args)
    config = fleet.config
    providers = fleet.providers
    baseline = process_figures()
    print(f"baseline before start: {baseline}", flush=True)
    samples: list[dict[str, Any]] = []
    end = time.monotonic() + args.minutes * 60
    with Runtime(config, providers=providers, rng=random.Random(args.seed)) as rt:
        load = Load(rt, args.threads, args.seed)
        for thread in load.threads:
            thread.start()
        crashes: list[int] = []
        crasher = threading.Thread(
            target=lambda: crashes.append(
                crash_now_and_then(rt, args.crash_every, load.stop, args.seed)
            ),
            name="soak-crasher",
        )
        if args.crash_every > 0:
            crasher.start()
        header = "  min  rss_mib  threads  fds  requests  served  p50_ms  p99_ms  failures"
        print(header, flush=True)
        started = time.monotonic()
        while time.monotonic() < end:
            sample_at = min(end, time.monotonic() + args.interval)
            while time.monotonic() < sample_at:
                # Every second, so that what the fake keeps is not what the figures show.
                load.stop.wait(min(1.0, max(0.0, sample_at - time.monotonic())))
                fleet.forget()
            minute = round((time.monotonic() - started) / 60, 2)
            outcomes, latencies = load.take()
            sample = {
                "minute": minute,
                **process_figures(),
                "requests": sum(outcomes.values()),
                "served": outcomes["served"],
                "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else 0.0,
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
                "failures": dict(outcomes - collections.Counter(served=outcomes["served"])),
            }
            samples.append(sample)
            print(
                f"{minute:5.1f}  {sample['rss_mib']:7.1f}  {sample['threads']:7d}  "
                f"{sample['fds']:3d}  {sample['requests']:8d}  {sample['served']:6d}  "
                f"{sample['p50_ms']:6.2f}  {sample['p99_ms']:6.2f}  {sample['failures']}",
                flush=True,
            )
        load.stop.set()
        for thread in load.threads:
            thread.join()
        if crasher.is_alive():
            crasher.join()
        restarts = sum(a.restarts for a in rt.inspect().actors)
    fleet.close()
    after = process_figures()
    first, last = samples[0], samples[-1]
    summary = {
        "target": args.target,
        "minutes": args.minutes,
        "threads_callers": args.threads,
        "chain_workers": args.workers,
        "requests": sum(s["requests"] for s in samples),
        "served": sum(s["served"] for s in samples),
        "crashes_injected": crashes[0] if crashes else 0,
        "restarts_seen": restarts,
        "rss_mib": {
            "first": first["rss_mib"],
            "last": last["rss_mib"],
            "max": max(s["rss_mib"] for s in samples),
        },
        "threads": {
            "first": first["threads"],
            "last": last["threads"],
            "max": max(s["threads"] for s in samples),
        },
        "fds": {"first": first["fds"], "last": last["fds"], "max": max(s["fds"] for s in samples)},
        "baseline": baseline,
        "after_stop": after,
    }
    print(json.dumps(summary, indent=2), flush=True)
    return {"summary": summary, "samples": samples}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--target",
        choices=["scripted", "http"],
        default="scripted",
        help="the fleet in-process, or over loopback HTTP through the built-in adapters",
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--threads", type=int, default=16, help="caller threads")
    parser.add_argument("--workers", type=int, default=16, help="chain workers")
    parser.add_argument(
        "--crash-every",
        type=float,
        default=5.0,
        help="seconds between injected actor crashes (0: none)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the samples and summary here")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # expected failures and crashes, by the million
    result = soak(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
