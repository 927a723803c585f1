"""How the latency of a failing request grows with the health table: failing requests
against ``--sizes`` unconfigured models already failed (each leaves a row).

Run (pinned to one core)::

    taskset -c 0 python bench/health_rows.py
    taskset -c 0 python bench/health_rows.py --sizes 10 200 1000 --samples 50

Each figure is the mean time of ``--samples`` failing requests (a 500, one try, no
fallback) once the table holds that many rows; the ratio is against the smallest size.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
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
from switchover.testing import Fail, ScriptedProvider

MESSAGES = ({"role": "user", "content": "hi"},)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 200, 1000])
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
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
    )
    clock = SystemClock()
    made = 0
    baseline = None
    with Runtime(config, providers={"p": ScriptedProvider(Fail(500))}) as rt:
        for size in sorted(args.sizes):
            while made < size:
                with contextlib.suppress(ChainExhausted):
                    rt.complete(Request(model=f"p/row-{made}", messages=MESSAGES))
                made += 1
            began = clock.now()
            for index in range(args.samples):
                with contextlib.suppress(ChainExhausted):
                    rt.complete(Request(model=f"p/probe-{size}-{index}", messages=MESSAGES))
            mean = (clock.now() - began) / args.samples * 1000
            baseline = baseline or mean
            print(f"{size:6d} rows: {mean:8.2f} ms a failing request ({mean / baseline:5.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
