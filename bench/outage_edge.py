"""Calls into an outage while long streams are in flight: the loopback measurement of
issue 11, rerunnable.

``callers`` threads each stream answers of ``stream`` seconds from a primary model (with a
fallback behind it) on a FakeServer on 127.0.0.1. After ``warmup`` seconds the primary
answers 503 for ``outage`` seconds. The figure is the number of calls to the primary that
began inside the outage. Streams that began before the outage keep succeeding during it;
if their successes heal the model (old news), the next requests call it again.

Run::

    python bench/outage_edge.py                       # 16 callers, 0.5 s streams, 6 s outage
    python bench/outage_edge.py --callers 4 --stream 0.05

Bound (issue 11): the revealing request's own tries (``retry.attempts``) plus one per
concurrent caller that had already passed the gate (at most ``callers``).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchover import (
    Config,
    Observer,
    ProviderConfig,
    Request,
    RetryConfig,
    Runtime,
    SwitchoverError,
    SystemClock,
)
from switchover.testing import Fail, FakeServer, Reply

KEY = "sk-outage-0123456789abcdef"


def measure(
    *,
    callers: int,
    stream: float,
    outage: float,
    warmup: float = 1.0,
    cooldown: float = 0.5,
    observers: Sequence[Observer] = (),
) -> tuple[dict[str, int], Config]:
    """Run one outage; the counts of calls to the primary before, inside and after it, and
    the config it ran (for a history checker among ``observers``)."""
    clock = SystemClock()
    chunks = 5
    answer = Reply("x " * chunks, chunks=chunks, chunk_delay=stream / chunks)
    window: dict[str, float] = {}
    server = FakeServer(default=answer, clock=clock)

    def rule(request: object) -> object:
        now = clock.now()
        inside = window and window["start"] <= now < window["end"]
        if getattr(request, "model", None) == "primary" and inside:
            return Fail(503, {"error": {"message": "overloaded", "type": "server_error"}})
        return None

    server.rule(rule)
    with server:
        config = Config(
            providers=[
                ProviderConfig(
                    name="p", api="openai", base_url=server.openai_url, profiles={"main": KEY}
                )
            ],
            retry=RetryConfig(attempts=3, min_delay=0.05, max_delay=0.2),
            chain_workers=callers * 2,
            request_timeout=30.0,
        )
        stop = threading.Event()

        def caller() -> None:
            request = Request(
                model="p/primary",
                fallback_models=("p/fallback",),
                messages=[{"role": "user", "content": "hi"}],
            )
            while not stop.is_set():
                try:
                    with rt.stream(request) as live:
                        for _event in live:
                            pass
                except SwitchoverError:
                    pass

        with Runtime(config, observers=observers) as rt:
            threads = [threading.Thread(target=caller) for _ in range(callers)]
            for thread in threads:
                thread.start()
            stop.wait(warmup)
            start = clock.now()
            window.update(start=start, end=start + outage)
            stop.wait(outage + cooldown)
            stop.set()
            for thread in threads:
                thread.join(30)
        calls = server.calls_to("primary")
    counts = {"before": 0, "inside": 0, "after": 0}
    for call in calls:
        at = call.request.at
        where = "before" if at < window["start"] else "inside" if at < window["end"] else "after"
        counts[where] += 1
    return counts, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--stream", type=float, default=0.5, help="seconds per answer")
    parser.add_argument("--outage", type=float, default=6.0, help="seconds of 503")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bound = 3 + args.callers
    for run in range(args.runs):
        counts, _ = measure(callers=args.callers, stream=args.stream, outage=args.outage)
        print(
            f"run {run + 1}: {counts['inside']} calls into the outage "
            f"(bound {bound}; {counts['before']} before it)"
        )


if __name__ == "__main__":
    main()
