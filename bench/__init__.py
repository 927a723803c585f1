"""The chaos benchmark and the overhead benchmark (``switchover chaos``, ``switchover bench``).

It uses the public API of ``switchover`` and ``switchover.testing``, nothing private, and
nothing imports it: the ``switchover`` command finds :func:`register` through the
``switchover.commands`` entry point and loads the benchmark code only when one of its
commands runs.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any


def _lazy(function: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module(".cli", __name__)
        status: int = getattr(module, function)(args)
        return status

    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``chaos`` and ``bench`` to the ``switchover`` command."""
    chaos = subparsers.add_parser(
        "chaos",
        help="run the chaos benchmark against a built-in fake provider fleet",
        description=(
            "Start a fleet of fake OpenAI and Anthropic providers on 127.0.0.1, inject "
            "faults on a schedule and drive the same load through switchover and its "
            "baselines. No keys, no network."
        ),
    )
    chaos.add_argument(
        "--scenario",
        action="append",
        metavar="FILE_OR_NAME",
        help="a built-in scenario name or a scenario TOML file (repeatable; default: all)",
    )
    chaos.add_argument(
        "--systems",
        default="switchover,seed,litellm,oracle",
        help="comma-separated systems to run (default: %(default)s)",
    )
    chaos.add_argument(
        "--out", default="chaos-report", help="directory for report.json and the plots"
    )
    chaos.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots")
    chaos.add_argument(
        "--metrics",
        action="store_true",
        help="run switchover with Prometheus metrics on and write its samples next to "
        "report.json (metrics-<scenario>.prom; needs prometheus-client)",
    )
    chaos.add_argument("--list", action="store_true", help="list the scenarios and exit")
    chaos.set_defaults(run=_lazy("run_chaos"))

    bench = subparsers.add_parser("bench", help="micro-benchmarks of the runtime")
    which = bench.add_subparsers(dest="bench", metavar="BENCH", required=True)
    overhead = which.add_parser(
        "overhead",
        help="time added to first and last token over a direct httpx stream",
    )
    overhead.add_argument(
        "--threads", default="1,16,64", help="thread counts (default: %(default)s)"
    )
    overhead.add_argument(
        "--requests", type=int, default=400, help="requests per measurement (default: 400)"
    )
    overhead.add_argument(
        "--no-litellm", action="store_true", help="leave LiteLLM's Router out even if installed"
    )
    overhead.set_defaults(run=_lazy("run_bench"))
