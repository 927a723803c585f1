"""What the runtime adds to a successful call: routing through the actors vs calling the
same zero-latency scripted provider directly, single thread.

Run (pinned to one core; both paths are measured in the same run, interleaved so drift
hits both alike)::

    taskset -c 0 python bench/routing_overhead.py
    taskset -c 0 python bench/routing_overhead.py --rounds 20000 --chunks 5

Each round reads a whole answer (``chunks`` text deltas and Done): directly from
``ScriptedProvider.open`` on a prepared ``ProviderCall``, then through ``Runtime.stream``
(chain resolution, a chain actor's walk, the committed stream read on the caller's thread,
the outcome told to the key's actor). The figure is the median of the paired differences.
Target: at most 0.3 ms added at the median.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchover import Config, ProviderCall, ProviderConfig, Request, Runtime, SystemClock
from switchover.testing import Reply, ScriptedProvider

KEY = "sk-bench-0123456789abcdef"
MESSAGES = ({"role": "user", "content": "hi"},)


def _direct(provider: ScriptedProvider) -> Callable[[], int]:
    clock = SystemClock()
    call = ProviderCall(
        model="m",
        api_key=KEY,
        messages=MESSAGES,
        max_tokens=None,
        temperature=None,
        tools=(),
        deadline=clock.now() + 1e9,
        connect_timeout=5.0,
        first_token_timeout=60.0,
        idle_timeout=60.0,
        clock=clock,
        cancel=threading.Event(),
    )

    def run() -> int:
        return sum(1 for _ in provider.open(call))

    return run


def _routed(rt: Runtime) -> Callable[[], int]:
    request = Request(model="p/m", messages=MESSAGES)

    def run() -> int:
        with rt.stream(request) as stream:
            return sum(1 for _ in stream)

    return run


def measure(rounds: int, chunks: int) -> dict[str, float]:
    provider = ScriptedProvider(Reply("x" * chunks, chunks=chunks))
    config = Config(
        providers=[
            ProviderConfig(
                name="p", api="openai", base_url="http://127.0.0.1:9", profiles={"k": KEY}
            )
        ],
        chain_workers=1,
    )
    with Runtime(config, providers={"p": provider}, rng=random.Random(0)) as rt:
        direct, routed = _direct(provider), _routed(rt)
        for _ in range(500):  # warm up both paths
            assert direct() == routed() == chunks + 1
        direct_times: list[float] = []
        routed_times: list[float] = []
        added: list[float] = []
        clock = time.perf_counter
        for index in range(rounds):
            if index % 1000 == 0:
                provider.calls.clear()  # its call log would grow for the whole run
            start = clock()
            direct()
            middle = clock()
            routed()
            end = clock()
            direct_times.append(middle - start)
            routed_times.append(end - middle)
            added.append((end - middle) - (middle - start))
    return {
        "direct_p50_ms": statistics.median(direct_times) * 1e3,
        "routed_p50_ms": statistics.median(routed_times) * 1e3,
        "added_p50_ms": statistics.median(added) * 1e3,
        "added_p90_ms": statistics.quantiles(added, n=10)[-1] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--chunks", type=int, default=1, help="text deltas per answer")
    args = parser.parse_args()
    result = measure(args.rounds, args.chunks)
    print(
        f"direct p50 {result['direct_p50_ms']:.4f} ms, routed p50 {result['routed_p50_ms']:.4f} "
        f"ms, added p50 {result['added_p50_ms']:.4f} ms (p90 {result['added_p90_ms']:.4f} ms)  "
        "(target: added p50 <= 0.3 ms)"
    )


if __name__ == "__main__":
    main()
