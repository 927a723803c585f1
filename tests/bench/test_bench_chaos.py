"""One small chaos run end to end: the fleet process, every system, the report."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import attrs
import pytest
from rich.console import Console
from switchover import AttemptRecord, RequestClosed, RequestOpened
from switchover._cli import main
from switchover.bench import _suite as suite_module
from switchover.bench import _systems
from switchover.bench import cli as chaos_cli
from switchover.bench._report import print_table, report_dict, table, targets, write_json
from switchover.bench._scenario import parse_scenario
from switchover.bench._suite import Run, run_suite
from switchover.testing import History

# A revoked primary key: switchover must rotate to the backup key at once, the seed
# re-sends the revoked key, the oracle goes straight to the backup.
SMALL = """
name = "small"
description = "the primary key is revoked"
seed_defect = "re-sends the revoked key"
duration = 30
speedup = 40
seed = 3
chain = ["openai/gpt-4o", "claude/claude-sonnet-4-5"]

[load]
rate = 3

# Shorter answers than production's: a model cooled by a timeout on a loaded machine is
# held by its single probe for a whole stream (docs/evidence.md), which this test of key
# rotation is not about.
[traffic]
tokens = [20, 100]

[[faults]]
target = "openai@main"
kind = "auth"
start = 5
"""


@pytest.fixture(scope="module")
def results() -> list:
    # The oracle runs apart, as LiteLLM does when installed: in its own process, at once.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(suite_module, "APART", {"oracle": "httpx"})
        return run_suite([parse_scenario(SMALL)], ("switchover", "seed", "oracle"))


def test_every_system_ran_on_the_same_requests(results: list) -> None:
    (result,) = results
    runs = {run.system: run for run in result.runs}
    assert set(runs) == {"switchover", "seed", "oracle"}
    counts = {len(run.records) for run in runs.values()}
    assert len(counts) == 1
    assert counts.pop() > 40
    for run in runs.values():
        assert run.metrics is not None
        assert run.calls  # the fleet recorded what it answered


def test_switchover_rotates_keys_and_the_seed_resends_the_revoked_one(results: list) -> None:
    (result,) = results
    mine = result.run("switchover")
    seed = result.run("seed")
    oracle = result.run("oracle")
    assert oracle.metrics.success == 100.0
    assert oracle.metrics.wasted == 0
    # The seed "rotates" to the backup profile with the revoked key, and never uses backup.
    assert seed.metrics.wasted >= 1
    assert any(c.profile == "main" and c.kind == "auth" for c in seed.calls)
    assert not any(c.profile == "backup" for c in seed.calls)
    # switchover moves to the backup key. Exact waste counts depend on timing, which a
    # loaded machine stretches; the metric itself is tested on hand-made histories.
    served = [c.profile for c in mine.calls if c.kind == "ok" and c.at > 10]
    assert served.count("backup") > len(served) / 2
    assert mine.metrics.wasted <= 2
    assert mine.samples  # switchover's health was sampled while it ran
    assert any(s.keys.get("openai@main") == "cooling" for s in mine.samples)
    assert set(targets(result)) == {"success", "wasted", "onset", "p99", "vs_seed", "history"}


@pytest.mark.parametrize(
    ("mine", "theirs", "mark"), [(0, 3, True), (3, 3, False), (2, 0, False), (0, 0, None)]
)
def test_fewer_wasted_calls_than_the_seed_applies_where_either_wasted_one(
    results: list, mine: int, theirs: int, mark: bool | None
) -> None:
    (result,) = results

    def wasting(run: Run, wasted: int) -> Run:
        assert run.metrics is not None
        return attrs.evolve(run, metrics=attrs.evolve(run.metrics, wasted=wasted))

    runs = tuple(
        wasting(run, {"switchover": mine, "seed": theirs}.get(run.system, 0)) for run in result.runs
    )
    assert targets(attrs.evolve(result, runs=runs))["vs_seed"] is mark


@pytest.mark.parametrize("within", [True, False, None])
def test_the_onset_target_is_whether_every_episode_stayed_within_its_bound(
    results: list, within: bool | None
) -> None:
    (result,) = results
    runs = tuple(
        attrs.evolve(run, metrics=attrs.evolve(run.metrics, onset_within=within))
        if run.system == "switchover"
        else run
        for run in result.runs
    )
    assert targets(attrs.evolve(result, runs=runs))["onset"] is within


def test_report_and_plots(results: list, tmp_path: Path) -> None:
    path = write_json(results, tmp_path)
    data = json.loads(path.read_text())
    assert data["scenarios"][0]["systems"]["switchover"]["requests"] > 40
    assert report_dict(results)["scenarios"][0]["seed_defect"] == "re-sends the revoked key"
    assert table(results).row_count == 3
    pytest.importorskip("matplotlib")
    from switchover.bench._plots import plot_all

    pngs = plot_all(results, tmp_path)
    assert [p.name for p in pngs] == ["small.png", "summary.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)


def test_the_table_is_printed_whole_to_a_pipe(results: list) -> None:
    (result,) = results
    name = "a-scenario-with-a-name-much-longer-than-any-built-in-one"
    renamed = attrs.evolve(result, scenario=attrs.evolve(result.scenario, name=name))
    out = Console(width=80, record=True, markup=False)
    print_table(out, [renamed])
    text = out.export_text()
    assert f"│ {name} │ switchover │" in text
    assert "…" not in text


def cells(text: str, system: str) -> list[str]:
    """The cells of the table row of ``system`` in a printed table."""
    (line,) = [line for line in text.splitlines() if f"│ {system} " in line]
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_switchover_breaks_no_history_rule(results: list) -> None:
    (result,) = results
    mine = result.run("switchover")
    assert mine.violations == 0, mine.first_violations
    assert mine.first_violations == ()
    assert targets(result)["history"] is True
    # Only switchover keeps a history: the others show "-" and null.
    assert result.run("seed").violations is None
    entry = report_dict(results)["scenarios"][0]
    assert entry["systems"]["switchover"]["violations"] == 0
    assert entry["systems"]["seed"]["violations"] is None
    assert entry["targets"]["history"] is True
    out = Console(width=200, record=True, markup=False)
    out.print(table(results))
    text = out.export_text()
    assert cells(text, "switchover")[-2] == "0"
    assert cells(text, "seed")[-2] == cells(text, "oracle")[-2] == "-"


#: A call to a model outside its request's chain, by a request the runtime never made
#: (its ids start at 1); the model's name is markup to rich.
ALIEN = "openai/[bold]m[/x]"
SEEDED = (
    RequestOpened(-1, ("openai/gpt-4o",), 1e9, at=0.0),
    AttemptRecord(-1, ALIEN, "openai", "main", "ok", None, False, 0.0, 0.0, 0.0),
    RequestClosed(-1, "served", at=0.0),
)
BROKEN = f"[chain_order] request -1: {ALIEN} is not in its chain"


def test_a_violation_reaches_the_run_the_json_and_the_console_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # switchover's history starts with a known violation; the run adds its own records.
    monkeypatch.setattr(_systems, "History", lambda: History(SEEDED))
    runs: list = []

    def spy(*args: object, **kwargs: object) -> list:
        got = run_suite(*args, **kwargs)  # type: ignore[arg-type]
        runs.extend(got)
        return got

    monkeypatch.setattr(chaos_cli, "run_suite", spy)
    scenario = tmp_path / "small.toml"
    scenario.write_text(SMALL.replace("duration = 30", "duration = 8"))
    argv = ["chaos", "--scenario", str(scenario), "--systems", "switchover,oracle"]

    logger = logging.getLogger("switchover")
    monkeypatch.setattr(logger, "level", logging.INFO)
    assert main([*argv, "--out", str(tmp_path), "--no-plots"]) == 0
    # The run's warnings were kept quiet, for the run only.
    assert logger.level == logging.INFO

    (result,) = runs
    mine = result.run("switchover")
    assert mine.violations >= 1
    assert BROKEN in mine.first_violations
    assert targets(result)["history"] is False
    data = json.loads((tmp_path / "report.json").read_text())
    entry = data["scenarios"][0]
    assert entry["systems"]["switchover"]["violations"] == mine.violations
    assert BROKEN in entry["systems"]["switchover"]["first_violations"]
    assert entry["targets"]["history"] is False
    out = capsys.readouterr().out
    row = cells(out, "switchover")
    assert row[-2] == str(mine.violations)
    assert row[-1].endswith("✗")
    assert cells(out, "oracle")[-2] == "-"
    # After the table, verbatim: rich read no markup in it.
    lines = out.splitlines()
    assert f"small: {mine.violations} history violations" in lines
    assert f"  {BROKEN}" in lines


def test_chaos_list_and_bad_scenario(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["chaos", "--list"]) == 0
    assert "rate-limit-storm" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nduration = 10\nchain = ["nowhere/model"]\n')
    assert main(["chaos", "--scenario", str(bad)]) == 2
    assert "chain[0]" in capsys.readouterr().err
