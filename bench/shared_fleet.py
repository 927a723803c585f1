"""Several processes, one fake fleet: what sharing state through Redis saves (docs/shared.md).

N processes x T threads stream requests through their own Runtime against one FakeServer
(in this, the parent process) while faults start on a schedule:

* ``faults`` (run without and with ``Config.shared``): a key revoked (401 for every call
  with it), a model removed (404), a per-organisation rate limit (429 on a second key), then
  a flapping key (429 with short cooldowns) whose cooldowns measure propagation.
  Reported: calls to each failing target after its onset (the fleet-wide waste), and the
  time from a cooldown recorded in one process to another process applying it.
* ``outage`` (run without and with ``shared``): redis-server is killed for ``--outage``
  seconds in the middle of the run and a key is revoked while it is down. Reported: failed
  requests and latency against the run without Redis, and how long after Redis returned the
  other processes had the revoked key cooling.

Needs ``redis-server`` on PATH (Debian: ``apt-get install redis-server``). Run::

    python -m switchover.bench.shared_fleet --processes 4 --threads 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from switchover import (
    Config,
    CooldownConfig,
    KeyChange,
    ModelChange,
    Observer,
    ProviderConfig,
    Request,
    RetryConfig,
    Runtime,
    SharedConfig,
)
from switchover.testing import Fail, FakeServer, Reply

KEYS = {
    "revoked": "sk-bench-revoked-0000000000000000",
    "org": "sk-bench-orglimit-111111111111111",
    "flap": "sk-bench-flapping-22222222222222",
    "good": "sk-bench-goodkey-3333333333333333",
}
MESSAGES = ({"role": "user", "content": "hi"},)
#: Shortest key cooldown of the runs; a fault's onset burst is counted within 90 % of it.
PROFILE_MIN = 0.2
ONSET_WINDOW = 0.9 * PROFILE_MIN
BAD_KEY = {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}
MISSING = {"error": {"message": "The model does not exist", "code": "model_not_found"}}
LIMIT = {"error": {"message": "Rate limit reached for organization", "code": "rate_limit_exceeded"}}


# --- one process ----------------------------------------------------------------------------


class Changes(Observer):
    """Every key and model change with its wall time, origin and deadline (as wall time)."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, str, str | None, float | None]] = []

    def key_changed(self, event: KeyChange) -> None:
        self._add(f"key:{event.profile}", event.origin, event.cooldown_until)

    def model_changed(self, event: ModelChange) -> None:
        self._add(f"model:{event.model}", event.origin, event.until)

    def _add(self, target: str, origin: str | None, until: float | None) -> None:
        now, wall = time.monotonic(), time.time()
        deadline = None if until is None else wall + (until - now)
        self.rows.append((wall, target, origin, deadline))


def _config(base_url: str, redis_url: str | None, profiles: tuple[str, ...]) -> Config:
    return Config(
        providers=[
            ProviderConfig(
                name="p",
                api="openai",
                base_url=base_url,
                profiles={name: KEYS[name] for name in profiles},
            )
        ],
        retry=RetryConfig(attempts=1),
        cooldown=CooldownConfig(profile_min=PROFILE_MIN, profile_max=30.0),
        chain_workers=16,
        request_timeout=10.0,
        shared=None if redis_url is None else SharedConfig(url=redis_url, namespace="bench"),
    )


def process_main(spec: dict[str, Any], ready: Any, start: Any, t0: Any, results: Any) -> None:
    """One worker process: say when it is ready, then run the load from ``t0`` (Unix time)
    for ``spec["length"]`` seconds."""
    changes = Changes()
    config = _config(spec["base_url"], spec["redis_url"], tuple(spec["profiles"]))
    latencies: list[tuple[float, float]] = []
    errors: list[str] = []
    with Runtime(config, observers=[changes]) as rt:
        for _ in range(1000):  # a bounded wait for the link, so every run starts linked
            if spec["redis_url"] is None or rt.inspect(ask=False).actors[-1].state.get("up"):
                break
            time.sleep(0.01)
        ready.put(True)
        start.wait()
        stop_at = t0.value + spec["length"]

        def caller(index: int) -> None:
            n = index
            while time.time() < stop_at:
                n += 1
                model = "p/gone" if n % 2 else "p/ok"
                if spec["solo"] and n % 4 == 0:
                    model = "p/solo"  # a model only this process asks for
                began = time.time()
                try:
                    rt.complete(Request(model=model, messages=MESSAGES, fallback_models=("p/ok",)))
                except Exception as error:
                    errors.append(type(error).__name__)
                else:
                    latencies.append((began, time.time() - began))

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(spec["threads"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        origin = rt.inspect(ask=False).actors[-1].state.get("origin")
    results.put(
        {
            "origin": origin,
            "solo": spec["solo"],
            "changes": changes.rows,
            "latencies": latencies,
            "errors": errors,
        }
    )


# --- the parent -----------------------------------------------------------------------------


class WallClock:
    """Unix time as the fake server's clock: its calls line up with every process's."""

    def now(self) -> float:
        return time.time()

    def wall(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


class RedisServer:
    """redis-server on a free loopback port, startable again on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not on PATH (Debian: apt-get install redis-server)")
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="switchover-bench-redis-")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:  # the log says when it accepts connections
            if b"Ready to accept connections" in line:
                return
        sys.exit("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def run(
    *,
    shared: bool,
    outage: float | None,
    processes: int,
    threads: int,
    call_ms: float,
    redis: RedisServer,
) -> dict[str, Any]:
    """One run of the schedule; returns the fault counts, propagation and latencies."""
    # Calls stamped in Unix time; each answer takes ``call_ms`` like a (very fast) LLM.
    server = FakeServer(clock=WallClock(), default=Reply(delay=call_ms / 1000)).start()
    onsets: dict[str, float] = {}

    def fault(request: Any) -> Any:
        at = request.at
        if request.key == KEYS["revoked"] and at >= onsets.get("revoked", float("inf")):
            return Fail(401, BAD_KEY)
        if request.model == "gone" and at >= onsets.get("gone", float("inf")):
            return Fail(404, MISSING)
        if request.key == KEYS["org"] and at >= onsets.get("org", float("inf")):
            return Fail(429, LIMIT, headers={"retry-after": "30"})
        if request.key == KEYS["flap"] and at >= onsets.get("flap", float("inf")):
            return Fail(429, LIMIT, headers={"retry-after": "0"})
        if request.model == "solo" and at >= onsets.get("solo", float("inf")):
            return Fail(404, MISSING)
        # Answers take call_ms +-50 %, so the callers do not march in step.
        return Reply(delay=rng.uniform(0.5, 1.5) * call_ms / 1000)

    server.rule(fault)
    warmup = 0.5  # the load runs a moment before the first fault
    rng = random.Random(1)
    if outage is None:
        schedule = {"revoked": 1.0, "gone": 2.0, "org": 3.0, "flap": 4.0}
        length = 7.0
        profiles = ("revoked", "org", "flap", "good")
    else:
        schedule = {"revoked": 2.0, "solo": 1.0 + outage / 2}
        length = 4.0 + outage
        profiles = ("revoked", "good")
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Queue(), context.Event(), context.Queue()
    begin = context.Value("d", 0.0)
    spec = {
        "base_url": server.openai_url,
        "redis_url": redis.url if shared else None,
        "threads": threads,
        "profiles": profiles,
        "length": length,
    }
    children = [
        context.Process(
            target=process_main, args=({**spec, "solo": i == 0}, ready, start, begin, results)
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=120)
    t0 = begin.value = time.time() + warmup
    onsets.update({name: t0 + at for name, at in schedule.items()})
    start.set()
    time.sleep(max(0.0, t0 - time.time()))  # a benchmark's schedule: real time is the point
    killed = returned = None
    if outage is not None:
        time.sleep(1.0)
        killed = time.time()
        redis.kill()
        time.sleep(outage)
        redis.start()
        returned = time.time()
    collected = []
    for _ in children:
        try:
            collected.append(results.get(timeout=length + 60))
        except queue.Empty:
            break
    for child in children:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    calls = server.calls
    server.close()
    failing = {
        "revoked": [c for c in calls if c.key == KEYS["revoked"] and c.status == 401],
        "gone": [c for c in calls if c.model == "gone" and c.status == 404],
        "org": [c for c in calls if c.key == KEYS["org"] and c.status == 429],
    }
    # The onset burst: failed calls before the first cooldown anywhere could have ended
    # (so before any probe); "total" adds the probes made after cooldowns ended.
    burst = ONSET_WINDOW
    waste = {
        name: {
            "onset": sum(1 for c in found if c.request.at < onsets[name] + burst),
            "total": len(found),
            "first_ms": [round(1000 * (c.request.at - onsets[name]), 1) for c in found[:6]],
        }
        for name, found in failing.items()
        if name in onsets
    }
    latencies = [lat for r in collected for _, lat in r["latencies"]]
    report: dict[str, Any] = {
        "shared": shared,
        "requests": len(latencies),
        "errors": sum(len(r["errors"]) for r in collected),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 2) if latencies else None,
        "latency_p99_ms": round(1000 * _pct(latencies, 0.99), 2) if latencies else None,
    }
    if outage is None:
        report["failing_calls"] = waste
        report["flap_cooldowns"] = sum(
            1
            for r in collected
            for _, target, origin, until in r["changes"]
            if target == "key:flap" and origin is None and until is not None
        )
        report["propagation_ms"] = _propagation(collected) if shared else None
    else:
        report["failing_calls"] = waste
        report["outage_s"] = outage
        # Requests that began while Redis was down (the same window in the run without it).
        down_from, down_to = t0 + 1.0, t0 + 1.0 + outage
        during = [
            lat for r in collected for began, lat in r["latencies"] if down_from <= began < down_to
        ]
        report["during_outage"] = {
            "requests": len(during),
            "p50_ms": round(1000 * statistics.median(during), 2) if during else None,
            "p99_ms": round(1000 * _pct(during, 0.99), 2) if during else None,
        }
        report["redis_killed_at_s"] = round(killed - t0, 3) if killed else None
        report["converged_after_return_ms"] = (
            _converged(collected, returned) if shared and returned else None
        )
    return report


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _propagation(collected: list[dict[str, Any]]) -> dict[str, Any]:
    """Each cooldown one process recorded, to each other process applying it (same deadline)."""
    local = [
        (wall, r["origin"], target, until)
        for r in collected
        for wall, target, origin, until in r["changes"]
        if origin is None and until is not None
    ]
    delays = []
    for r in collected:
        for wall, target, origin, until in r["changes"]:
            if origin is None or until is None:
                continue
            sources = [
                w
                for w, o, t, u in local
                if o == origin and t == target and abs(u - until) < 0.005 and w <= wall + 0.005
            ]
            if sources:
                delays.append(max(0.0, wall - max(sources)))
    if not delays:
        return {"samples": 0}
    return {
        "samples": len(delays),
        "p50": round(1000 * statistics.median(delays), 2),
        "p99": round(1000 * _pct(delays, 0.99), 2),
        "max": round(1000 * max(delays), 2),
    }


def _converged(collected: list[dict[str, Any]], returned: float) -> float | None:
    """Milliseconds after Redis returned until every other process had the model that only
    one process asked for (and saw fail while Redis was down) cooling too."""
    latest = 0.0
    for r in (r for r in collected if not r["solo"]):
        times = [
            wall
            for wall, target, origin, until in r["changes"]
            if target == "model:p/solo" and origin is not None and until is not None
        ]
        if not times:
            return None  # never converged
        latest = max(latest, min(times))
    return round(1000 * max(0.0, latest - returned), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds Redis is down")
    parser.add_argument("--call-ms", type=float, default=200.0, help="mean answer delay")
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--only", choices=("faults", "outage"), help="run one scenario")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each pair")
    args = parser.parse_args(argv)
    redis = RedisServer()
    redis.start()
    reports = []
    try:
        scenarios = {"faults": None, "outage": args.outage}
        chosen = [scenarios[args.only]] if args.only else list(scenarios.values())
        for outage in [o for o in chosen for _ in range(args.repeat)]:
            for shared in (False, True):
                if outage is not None and redis.process is None:
                    redis.start()
                report = run(
                    shared=shared,
                    outage=outage,
                    processes=args.processes,
                    threads=args.threads,
                    call_ms=args.call_ms,
                    redis=redis,
                )
                report["scenario"] = "faults" if outage is None else "outage"
                print(json.dumps(report), flush=True)
                reports.append(report)
    finally:
        redis.kill()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(reports, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
