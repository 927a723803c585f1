"""What clients hammering the debug endpoint cost the requests: throughput with and
without pollers looping on ``GET /debug/actors``, in the same run.

Run (not pinned: the pollers are processes of their own, as an attacker's would be)::

    python bench/debug_load.py
    python bench/debug_load.py --pollers 8 --seconds 3 --models 1000

The runtime serves a zero-latency scripted provider from ``--callers`` threads. ``--models``
unconfigured models are made to fail first, so the health table (and each snapshot) is
big. Each phase runs ``--seconds``; quiet and loaded phases alternate ``--rounds`` times,
so drift hits both alike. The figure is loaded throughput / quiet throughput (1.0: no cost).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchover import (
    ChainExhausted,
    Config,
    ProviderConfig,
    Request,
    RetryConfig,
    Runtime,
    SystemClock,
)
from switchover.testing import Fail, Reply, ScriptedProvider

MESSAGES = ({"role": "user", "content": "hi"},)
POLLER = """
import sys, httpx
with httpx.Client(timeout=30) as client:
    while True:
        client.get(sys.argv[1]).read()
"""


def _phase(
    rt: Runtime, callers: int, pollers: list[subprocess.Popen[bytes]], seconds: float
) -> float:
    """Requests a second from ``callers`` threads while ``pollers`` run (resumed, then
    stopped again: they start once, so their start-up is not measured)."""
    clock = SystemClock()
    stop = threading.Event()
    served = [0] * callers

    def call(index: int) -> None:
        request = Request(model="p/good", messages=MESSAGES)
        while not stop.is_set():
            rt.complete(request)
            served[index] += 1

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for process in pollers:
        process.send_signal(signal.SIGCONT)
    began = clock.now()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = clock.now() - began
    for process in pollers:
        process.send_signal(signal.SIGSTOP)
    return sum(served) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", type=int, default=1000)
    args = parser.parse_args()
    provider = ScriptedProvider(Reply("ok"))
    provider.script(None, Fail(500))
    provider.script("good", Reply("ok"))
    config = Config(
        providers=[
            ProviderConfig(
                name="p",
                api="openai",
                base_url="http://x.test",
                profiles={"a": "sk-bench-0123456789"},
            )
        ],
        retry=RetryConfig(attempts=1),
        chain_workers=8,
    )
    with Runtime(config, providers={"p": provider}) as rt, rt.serve_debug() as server:
        for index in range(args.models):
            with contextlib.suppress(ChainExhausted):
                rt.complete(Request(model=f"p/failing-{index}", messages=MESSAGES))
        # The pollers are processes of their own, as an attacker's would be: their own
        # decoding does not count against the runtime. Started once, stopped between phases.
        pollers = [
            subprocess.Popen([sys.executable, "-c", POLLER, server.url + "/debug/actors"])
            for _ in range(args.pollers)
        ]
        ratios = []
        try:
            _phase(rt, args.callers, pollers, 1.0)  # warm-up: the pollers are importing
            for _ in range(args.rounds):
                quiet = _phase(rt, args.callers, [], args.seconds)
                loaded = _phase(rt, args.callers, pollers, args.seconds)
                ratios.append(loaded / quiet)
                print(f"quiet {quiet:8.0f} req/s   {args.pollers} pollers {loaded:8.0f} req/s")
        finally:
            for process in pollers:
                process.kill()
                process.wait()
        print(
            f"loaded / quiet throughput, median of {args.rounds}: {statistics.median(ratios):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
