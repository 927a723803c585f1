"""Text from outside is printed as it is, on every output path of the ``switchover`` command.

Provider messages, model names, paths, URLs, scenario names and descriptions all carry
square brackets that rich would read as markup: ``[/x]`` (a closing tag with nothing open:
a MarkupError), ``[bold]`` (eaten as a style), ``[[providers]]`` (a TOML table header), and
``[redacted]`` (what the runtime writes where a key was). Each must come out verbatim, and
nothing may crash.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import support
from conftest import KEYS
from switchover import Request, Runtime
from switchover._cli import build_parser, main
from switchover._cli._inspect import TOKEN_ENV, run_inspect, run_serve_debug
from switchover._debug import DebugServer
from switchover.bench import cli as chaos_cli
from switchover.bench._scenario import parse_scenario
from switchover.bench._suite import run_suite
from switchover.bench.baselines import litellm_router
from switchover.testing import Fail, ScriptedProvider

HOSTILE = "[/x] [bold] [[providers]]"
#: A model name rich would read as a style and a closing tag.
MODEL = "openai/[bold]m[/x]"
HI = ({"role": "user", "content": "hi"},)
#: What the profile and model rows show for the failed call: the key became "[redacted]".
SHOWN = f"HTTP 500: {HOSTILE} [redacted]"

#: A scenario description: markup, and "$" that matplotlib would read as (broken) mathtext.
DESCRIPTION = f"{HOSTILE} [/docs/errors] $\\frac{{$"
SCENARIO = f"""
name = "markup"
description = '{DESCRIPTION}'
duration = 20
speedup = 40
seed = 3
chain = ["openai/gpt-4o"]

[load]
rate = 2
"""


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.fixture
def server(runtime: Runtime, provider: ScriptedProvider, settle: object) -> Iterator[DebugServer]:
    """A runtime whose model ``MODEL`` failed with a hostile message holding a key."""
    failure = Fail(500, {"error": {"message": f"{HOSTILE} {KEYS['openai', 'main']}"}})
    provider.script(MODEL.partition("/")[2], *[failure] * 3)
    runtime.complete(Request(model=MODEL, messages=HI))
    settle("health", "profile:openai/main")  # type: ignore[operator]
    with runtime.serve_debug() as debug:
        yield debug


def rows(out: str, name: str) -> list[str]:
    return [line for line in out.splitlines() if name in line]


def test_inspect_shows_messages_and_names_verbatim(
    server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", server.url]) == 0

    out = capsys.readouterr().out
    (model_row,) = rows(out, MODEL)
    assert SHOWN in model_row
    (profile_row,) = rows(out, "│ openai/main ")
    assert SHOWN in profile_row


def test_inspect_json_keeps_them_verbatim(
    server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", server.url, "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    (row,) = [m for m in document["models"] if m["model"] == MODEL]
    assert row["last_error"] == SHOWN


@pytest.mark.parametrize("on_a_terminal", [False, True], ids=["pipe", "terminal"])
def test_inspect_watch_shows_them_verbatim(
    server: DebugServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    on_a_terminal: bool,
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if on_a_terminal else "0")
    refreshes = []

    def wait(interval: float) -> None:
        refreshes.append(interval)
        if len(refreshes) == 2:
            raise KeyboardInterrupt

    args = build_parser().parse_args(["inspect", server.url, "--watch", "1"])
    assert run_inspect(args, wait=wait) == 0

    out = capsys.readouterr().out
    assert out.count(SHOWN) >= 4  # two rows in each of at least two frames
    assert MODEL in out


def test_reset_prints_the_model_verbatim(
    server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reset", server.url, MODEL]) == 0

    assert capsys.readouterr().out == f"reset {MODEL}\n"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param(
            ["reset", "openai/[bold]nowhere[/x]"], "'openai/[bold]nowhere[/x]'", id="reset"
        ),
        pytest.param(["reset-profile", "openai", "[[providers]]"], "[[providers]]", id="profile"),
    ],
)
def test_errors_from_the_endpoint_are_verbatim(
    server: DebugServer, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main([argv[0], server.url, *argv[1:]]) == 1

    err = capsys.readouterr().err
    assert "HTTP 404" in err
    assert says in err


def test_an_unreachable_url_is_reported_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:1/[bold][/x]"

    assert main(["inspect", url]) == 1

    assert f"cannot reach {url}" in capsys.readouterr().err


def test_serve_debug_names_the_config_file_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "[red]x.toml"

    assert main(["serve-debug", "--config", str(path)]) == 1

    err = capsys.readouterr().err
    assert str(path) in err
    assert "Traceback" not in err


def test_serve_debug_prints_its_config_path_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "[bold]" / "switchover.toml"
    path.parent.mkdir()
    path.write_text(
        '[[providers]]\nname = "openai"\napi = "openai"\n'
        'base_url = "https://api.openai.test/v1"\n'
        'profiles = { main = "sk-proj-TomlKeyForMarkup" }\n'
    )
    args = build_parser().parse_args(["serve-debug", "--config", str(path)])
    stop = threading.Event()
    urls: list[str] = []

    def on_ready(url: str) -> None:
        urls.append(url)
        stop.set()

    assert (
        run_serve_debug(
            args, providers={"openai": ScriptedProvider()}, stop=stop, on_ready=on_ready
        )
        == 0
    )

    assert f"switchover debug endpoint at {urls[0]} for {path} (1 providers" in (
        capsys.readouterr().out
    )


# -- switchover chaos --------------------------------------------------------------------------


def test_chaos_list_prints_descriptions_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "markup.toml"
    path.write_text(SCENARIO)

    assert main(["chaos", "--list", "--scenario", str(path)]) == 0

    assert capsys.readouterr().out == f"markup: {DESCRIPTION}\n"


def test_chaos_errors_name_the_file_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "[red]x.toml"

    assert main(["chaos", "--scenario", str(path)]) == 2

    assert f"switchover chaos: {path}" in capsys.readouterr().err


def test_chaos_progress_table_and_paths_are_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scenario files only allow plain names; a name is still printed as data everywhere.
    name = "[bold]storm[/x]"
    scenario = attrs.evolve(parse_scenario(SCENARIO), name=name)
    monkeypatch.setattr(chaos_cli, "load_scenario", lambda _: scenario)

    def not_installed() -> None:
        raise ImportError("litellm")

    monkeypatch.setattr(litellm_router, "import_litellm", not_installed)
    out_dir = tmp_path / "[[providers]]"
    argv = ["chaos", "--scenario", "x", "--systems", "switchover,oracle,litellm"]

    assert main([*argv, "--out", str(out_dir), "--no-plots"]) == 0

    out = capsys.readouterr().out
    assert f"{name} (success/wasted) switchover " in out  # the line after each scenario
    (switchover_row,) = rows(out, "│ switchover ")
    assert switchover_row.startswith(f"│ {name} ")
    assert f"litellm skipped: {litellm_router.NOT_INSTALLED}" in out  # "[bench]" kept
    assert f"report: {out_dir / 'report.json'}" in out


def test_chaos_plots_take_the_description_as_text(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from switchover.bench._plots import plot_all

    results = run_suite([parse_scenario(SCENARIO)], ("switchover", "oracle"))

    pngs = plot_all(results, tmp_path)

    assert [p.name for p in pngs] == ["markup.png", "summary.png"]


@pytest.mark.parametrize("scale", [{"value": "log"}, {"value": "symlog", "linthresh": 1}])
def test_log_axes_label_their_ticks_as_numbers_without_mathtext(scale: dict) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    from switchover.bench._plots import plain_ticks

    with matplotlib.rc_context({"text.parse_math": False}):  # as plot_all draws
        fig, ax = matplotlib.pyplot.subplots()
        ax.bar([0, 1], [0.5, 40.0])
        ax.set_yscale(**scale)
        plain_ticks(ax)
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_yticklabels(minor=False)]
        matplotlib.pyplot.close(fig)
    assert labels
    assert not [label for label in labels if "$" in label or "mathdefault" in label], labels
    assert "10" in labels


def test_the_plain_install_hints_are_verbatim() -> None:
    done = support.run_switchover(
        "bench", "overhead", "--threads", "1", "--requests", "6", without=("litellm",)
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.count("LiteLLM is not installed (pip install 'switchover[bench]')") == 1
    assert "direct httpx" in done.stdout
