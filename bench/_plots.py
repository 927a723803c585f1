"""PNG plots of a chaos run (matplotlib, from the ``chaos`` extra).

Per scenario, one panel per system on the story clock: every request is a dot in the lane
of the target that served it (a red cross in the bottom lane when it failed), the fault
windows are shaded across the lanes they hit, and switchover's panel carries its own view
as it ran: above each lane the model's health (from ``rt.health()``), below it the key's
state (from ``rt.inspect()``). One summary chart puts every system beside the oracle.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from ._metrics import served_by, wasted_calls
from ._scenario import Fault, Scenario
from ._suite import Run, ScenarioResult
from ._systems import Sample

FAILED = "#d62728"
HARD = "#ff9896"
SOFT = "#ffd8a8"
MODEL_COLORS = {"cooling": "#ff7f0e", "probing": "#bcbd22", "disabled": "#7f0000"}
KEY_COLOR = "#9467bd"
TARGET_COLORS = ["#1f77b4", "#2ca02c", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#9edae5"]


def _lanes(scenario: Scenario) -> list[str]:
    return [f"{p}/{m}@{k}" for p, m, k in scenario.targets()]


def _segments(
    samples: Sequence[Sample], state_of: object, end: float
) -> list[tuple[float, float, str]]:
    """(start, width, state) runs of a sampled state, healthy/ready runs left out."""
    out: list[tuple[float, float, str]] = []
    current: str | None = None
    since = 0.0
    for sample in samples:
        state = state_of(sample)  # type: ignore[operator]
        if state != current:
            if current not in (None, "healthy", "ready"):
                out.append((since, sample.at - since, current))  # type: ignore[arg-type]
            current, since = state, sample.at
    if current not in (None, "healthy", "ready"):
        out.append((since, end - since, current))  # type: ignore[arg-type]
    return out


def _panel(ax: plt.Axes, result: ScenarioResult, run: Run, lanes: list[str]) -> None:
    scenario = result.scenario
    n = len(lanes)
    y_of = {lane: n - i for i, lane in enumerate(lanes)}
    colors = {lane: TARGET_COLORS[i % len(TARGET_COLORS)] for i, lane in enumerate(lanes)}
    for fault in scenario.faults:
        hit = [lane for lane in lanes if fault.target.matches(*_split(lane))]
        if hit:
            label = _fault_label(fault)
            ax.text(
                fault.start + 0.5,
                y_of[hit[-1]] - 0.42,
                label,
                fontsize=7,
                color="#8b0000",
                va="bottom",
                zorder=5,
            )
        for start, end in fault.episodes(scenario.duration):
            for lane in hit:
                ax.axhspan(
                    y_of[lane] - 0.45,
                    y_of[lane] + 0.45,
                    xmin=start / scenario.duration,
                    xmax=end / scenario.duration,
                    color=HARD if fault.hard else SOFT,
                    zorder=0,
                    lw=0,
                )
    if run.samples:
        for lane in lanes:
            provider, model, profile = _split(lane)
            model_key, key_key = f"{provider}/{model}", f"{provider}@{profile}"
            for start, width, state in _segments(
                run.samples, lambda s, k=model_key: s.models.get(k, "healthy"), scenario.duration
            ):
                ax.broken_barh(
                    [(start, width)], (y_of[lane] + 0.3, 0.12), color=MODEL_COLORS[state], zorder=2
                )
            for start, width, _ in _segments(
                run.samples, lambda s, k=key_key: s.keys.get(k, "ready"), scenario.duration
            ):
                ax.broken_barh(
                    [(start, width)], (y_of[lane] - 0.42, 0.12), color=KEY_COLOR, zorder=2
                )
    serving = served_by(run.calls)
    wasted = {id(c) for c in wasted_calls(scenario, run.calls)}
    for lane in lanes:
        for mark, color, pick in (
            ("|", "#444444", lambda c: id(c) not in wasted),
            ("|", FAILED, lambda c: id(c) in wasted),
        ):
            xs = [
                c.at
                for c in run.calls
                if c.target == lane and c.kind not in ("ok", "slow") and pick(c)
            ]
            ax.scatter(xs, [y_of[lane] + 0.15] * len(xs), s=30, marker=mark, color=color, zorder=4)
    for lane in lanes:
        xs = [
            r.at for r in run.records if r.ok and r.id in serving and serving[r.id].target == lane
        ]
        ax.scatter(xs, [y_of[lane]] * len(xs), s=14, color=colors[lane], zorder=3, lw=0)
    failed = [r.at for r in run.records if not r.ok]
    ax.scatter(failed, [0] * len(failed), s=22, marker="x", color=FAILED, zorder=3, lw=1.2)
    ax.set_yticks([0, *[y_of[lane] for lane in lanes]], ["failed", *lanes], fontsize=8)
    ax.set_ylim(-0.7, n + 0.7)
    ax.set_xlim(0, scenario.duration)
    ax.grid(axis="x", color="#dddddd", lw=0.5)
    m = run.metrics
    summary = (
        run.skipped
        if m is None
        else f"success {m.success:.1f} %   p99 {_fmt(m.p99)} s   calls/req {m.attempts:.2f}   "
        f"wasted {m.wasted}"
    )
    ax.set_title(f"{run.system}   ·   {summary}", loc="left", fontsize=9, fontweight="bold")


def _fault_label(fault: Fault) -> str:
    text = f"{fault.kind.replace('_', ' ')} on {fault.target}"
    if fault.share < 1.0:
        text += f" ({fault.share:.0%} of calls)"
    if fault.retry_after is not None:
        text += f", Retry-After {fault.retry_after:g} s"
    if fault.kind == "slow":
        text += f" +{fault.delay:g} s"
    if fault.period is not None:
        text += f", down {fault.down:g} s of every {fault.period:g} s"
    return text


def _split(lane: str) -> tuple[str, str, str]:
    provider, rest = lane.split("/", 1)
    model, profile = rest.rsplit("@", 1)
    return provider, model, profile


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def plot_scenario(result: ScenarioResult, out: Path) -> Path:
    """The timeline of one scenario, one panel per system."""
    scenario = result.scenario
    lanes = _lanes(scenario)
    runs = [r for r in result.runs if r.metrics is not None]
    height = 0.55 * (len(lanes) + 1) + 0.9
    fig, axes = plt.subplots(
        len(runs), 1, figsize=(11, height * len(runs) + 1.6), sharex=True, squeeze=False
    )
    for ax, run in zip(axes[:, 0], runs, strict=True):
        _panel(ax, result, run, lanes)
    axes[-1, 0].set_xlabel("story time (s)")
    title = f"{scenario.name}: {scenario.description}"
    fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=11, x=0.01, ha="left")
    legend = [
        Line2D(
            [], [], marker="o", ls="", color=TARGET_COLORS[0], label="request served (lane = key)"
        ),
        Line2D([], [], marker="x", ls="", color=FAILED, label="request failed"),
        Line2D([], [], marker="|", ls="", color="#444444", ms=9, label="failed call (probe)"),
        Line2D([], [], marker="|", ls="", color=FAILED, ms=9, label="wasted call"),
        Patch(color=HARD, label="fault on (every call fails)"),
        Patch(color=SOFT, label="fault on (some calls fail or slow)"),
        Patch(color=MODEL_COLORS["cooling"], label="switchover: model cooling"),
        Patch(color=MODEL_COLORS["probing"], label="model probing"),
        Patch(color=MODEL_COLORS["disabled"], label="model disabled"),
        Patch(color=KEY_COLOR, label="switchover: key cooling"),
    ]
    fig.legend(handles=legend, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    path = out / f"{scenario.name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plain_ticks(ax: Axes) -> None:
    """Label a log axis's ticks as plain numbers: the plots read no mathtext (see
    :func:`plot_all`), so the log scale's own ``$10^{0}$`` labels would show as source."""
    plain = FuncFormatter(lambda value, _position: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)


def plot_summary(results: Sequence[ScenarioResult], path: Path) -> Path:
    """Every system against the oracle: success, p99 relative to the oracle, wasted calls."""
    systems = [
        name
        for name in ("switchover", "seed", "litellm", "oracle")
        if any((r.run(name) and r.run(name).metrics) for r in results)  # type: ignore[union-attr]
    ]
    colors = {"switchover": "#1f77b4", "seed": "#ff7f0e", "litellm": "#9467bd", "oracle": "#2ca02c"}
    names = [r.scenario.name for r in results]
    fig, axes = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    width = 0.8 / len(systems)
    for index, system in enumerate(systems):
        xs = [i + (index - (len(systems) - 1) / 2) * width for i in range(len(results))]
        success, ratio, wasted = [], [], []
        for result in results:
            run = result.run(system)
            oracle = result.run("oracle")
            m = run.metrics if run else None
            o = oracle.metrics if oracle else None
            success.append(m.success if m else 0.0)
            ratio.append(m.p99 / o.p99 if m and o and m.p99 and o.p99 else 0.0)
            wasted.append(m.wasted if m else 0)
        kw = {"width": width, "color": colors[system], "label": system}
        axes[0].bar(xs, success, **kw)
        axes[1].bar(xs, ratio, **kw)
        axes[2].bar(xs, wasted, **kw)
    axes[0].set_ylabel("success %")
    axes[0].set_ylim(0, 105)
    axes[1].set_ylabel("p99 latency / oracle's")
    axes[1].set_yscale("log")
    plain_ticks(axes[1])
    axes[1].axhline(1.3, color="#444444", ls="--", lw=0.8)
    axes[1].text(len(results) - 0.5, 1.3, " 1.3x", va="bottom", ha="right", fontsize=8)
    axes[2].set_ylabel("wasted calls")
    axes[2].set_yscale("symlog", linthresh=1)
    plain_ticks(axes[2])
    axes[2].set_xticks(range(len(results)), names, rotation=30, ha="right", fontsize=9)
    axes[0].legend(ncol=len(systems), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=9)
    fig.suptitle(
        "switchover chaos: every system on the same fleet, load and seed, against the oracle",
        fontsize=12,
        y=0.995,
    )
    for ax in axes:
        ax.grid(axis="y", color="#dddddd", lw=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(results: Sequence[ScenarioResult], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    # Descriptions and skip reasons are text from outside: "$" in one is not mathtext.
    with matplotlib.rc_context({"text.parse_math": False}):
        paths = [plot_scenario(result, out) for result in results]
        paths.append(plot_summary(results, out / "summary.png"))
    return paths
