"""``switchover chaos`` and ``switchover bench overhead``: what the command line runs."""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ._load import plan
from ._report import console as plain_console
from ._scenario import Scenario, ScenarioError, load_scenario, scenario_names
from ._suite import SYSTEMS, ScenarioResult, run_suite


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    names = args.scenario or scenario_names()
    return [load_scenario(name) for name in names]


def _systems(text: str) -> list[str]:
    systems = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise ScenarioError("--systems", "value", f"choose from {', '.join(SYSTEMS)}")
    return systems


#: Columns of the output when it is not a terminal (the results table takes what it needs).
TABLE_WIDTH = 160


@contextlib.contextmanager
def _runtime_warnings_quiet() -> Iterator[None]:
    """A run ends while its last streams may still be finishing; their outcomes then reach
    stopped actors, which the runtime logs as a warning. Expected here: keep it quiet for
    the run, and give the ``switchover`` logger its level back after."""
    logger = logging.getLogger("switchover")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_chaos(args: argparse.Namespace) -> int:
    """Run the suite; print the table; write report.json and the plots."""
    console = plain_console()
    if not console.is_terminal:
        # Piped or logged output has no width to fit; rich's default of 80 columns would
        # cut every cell of the table.
        console = plain_console(width=TABLE_WIDTH)
    try:
        scenarios = _scenarios(args)
        systems = _systems(args.systems)
    except ScenarioError as error:
        plain_console(stderr=True).print(f"switchover chaos: {error}")
        return 2
    if args.list:
        for scenario in scenarios:
            console.print(Text.assemble((scenario.name, "bold"), ": ", scenario.description))
        return 0
    out = Path(args.out)
    began = time.monotonic()
    results: list[ScenarioResult] = []
    with (
        _runtime_warnings_quiet(),
        Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        suite = progress.add_task("chaos suite", total=len(scenarios) * len(systems))
        current = progress.add_task("starting the fake fleet", total=1)

        started = [0]

        def on_run(scenario: Scenario, system: str) -> None:
            progress.update(suite, completed=started[0])
            started[0] += 1
            progress.reset(
                current, total=len(plan(scenario)), description=f"{scenario.name} · {system}"
            )

        def on_request(count: int) -> None:
            progress.advance(current, count)

        def on_result(result: ScenarioResult) -> None:
            results.append(result)
            progress.update(suite, completed=started[0])
            line = "  ".join(
                f"{run.system} {run.metrics.success:.0f}%/{run.metrics.wasted}w"
                if run.metrics
                else f"{run.system} -"
                for run in result.runs
            )
            progress.console.print(
                Text.assemble((result.scenario.name, "bold"), " ", ("(success/wasted)", "dim"), " ")
                + line
            )

        run_suite(
            scenarios,
            systems,
            on_run=on_run,
            on_request=on_request,
            on_result=on_result,
            metrics=args.metrics,
        )
    from ._report import (
        key_order_notes,
        print_table,
        skipped,
        violations,
        write_json,
        write_prometheus,
    )

    print_table(console, results)
    for line in (*key_order_notes(results), *skipped(results), *violations(results)):
        console.print(line)
    path = write_json(results, out)
    console.print(f"report: {path}")
    for samples in write_prometheus(results, out):
        console.print(f"metrics: {samples}")
    if not args.no_plots:
        try:
            from ._plots import plot_all
        except ImportError:
            console.print(
                "plots skipped: matplotlib is not installed (pip install 'switchover[chaos]')"
            )
        else:
            for png in plot_all(results, out):
                console.print(f"plot: {png}")
    console.print(f"done in {time.monotonic() - began:.0f} s")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """``switchover bench overhead``."""
    from ._overhead import run_overhead

    return run_overhead(args)
