"""The debug subcommands: inspect, reset, reset-profile, serve-debug."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import KEYS
from switchover import Request, Runtime
from switchover._cli import build_parser, main
from switchover._cli._inspect import TOKEN_ENV, run_inspect, run_serve_debug, seconds
from switchover._core._redact import fingerprint
from switchover._debug import DebugServer
from switchover.testing import Fail, ScriptedProvider

HI = ({"role": "user", "content": "hi"},)
#: The sequence rich's Live writes to clear the previous frame before drawing the next.
ERASE_LINE = "\x1b[2K"


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.setenv("TTY_COMPATIBLE", "0")  # plain text unless a test asks for a terminal
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.fixture
def server(runtime: Runtime) -> Iterator[DebugServer]:
    with runtime.serve_debug() as server:
        yield server


@pytest.fixture
def rate_limited(runtime: Runtime, provider: ScriptedProvider, settle: Callable[..., None]) -> None:
    provider.script("gpt-4o", Fail(429, {"error": {"code": "rate_limit_exceeded"}}))
    runtime.complete(Request(model="openai/gpt-4o", messages=HI))
    settle("health", "profile:openai/main", "profile:openai/backup")


def stops_after(refreshes: int, between: Callable[[], None] = lambda: None) -> Callable[..., None]:
    """A ``wait`` for --watch: runs ``between`` at the first pause, Ctrl-C after ``refreshes``."""
    calls = 0

    def wait(interval: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            between()
        if calls >= refreshes:
            raise KeyboardInterrupt

    return wait


# -- inspect ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("rate_limited")
def test_inspect_shows_readable_tables(
    server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", server.url]) == 0

    out = capsys.readouterr().out
    for heading in ("Key profiles", "Model health", "Chain workers: 4 of 4 idle", "Actors"):
        assert heading in out
    main_row = next(line for line in out.splitlines() if "openai/main " in line)
    assert fingerprint(KEYS["openai", "main"]) in main_row
    assert "cooling" in main_row
    assert "rate_limit" in main_row
    model_row = next(line for line in out.splitlines() if "openai/gpt-4o " in line)
    assert "cooling" in model_row
    assert "30.0s" in model_row
    assert "9 actors (0 stale)" in out


def test_inspect_json_is_one_document(
    runtime: Runtime, server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", server.url, "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert {a["name"] for a in document["actors"]["actors"]} == {
        a.name for a in runtime.inspect().actors
    }
    assert {m["model"] for m in document["models"]} == set(runtime.health())


@pytest.mark.usefixtures("rate_limited")
def test_watch_redraws_in_place_on_a_terminal(
    runtime: Runtime,
    server: DebugServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")

    def recover() -> None:  # through the endpoint: a reset there drops its cached answers
        for path, body in [
            ("/api/v1/models/health/reset", {"model": "openai/gpt-4o"}),
            ("/api/v1/profiles/reset", {"provider": "openai", "profile": "main"}),
            ("/api/v1/profiles/reset", {"provider": "openai", "profile": "backup"}),
        ]:
            assert httpx.post(server.url + path, json=body).status_code == 200

    args = build_parser().parse_args(["inspect", server.url, "--watch", "0.5"])
    assert run_inspect(args, wait=stops_after(2, recover)) == 0

    out = capsys.readouterr().out
    first, _, last = out.rpartition(ERASE_LINE)
    assert "cooling" in first  # the first frame
    assert "openai/main" in last
    assert "cooling" not in last


def test_watch_into_a_pipe_prints_frame_after_frame(
    server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["inspect", server.url, "--watch", "1"])
    assert run_inspect(args, wait=stops_after(3)) == 0

    out = capsys.readouterr().out
    assert out.count("Key profiles") == 3
    assert ERASE_LINE not in out


def test_watch_json_prints_one_line_per_refresh(
    server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["inspect", server.url, "--json", "--watch", "1"])
    assert run_inspect(args, wait=stops_after(2)) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all("actors" in json.loads(line) for line in lines)


def test_watch_keeps_going_when_the_endpoint_goes_away(
    server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["inspect", server.url, "--watch", "1"])
    assert run_inspect(args, wait=stops_after(2, server.close)) == 0

    out = capsys.readouterr().out
    assert "Key profiles" in out
    assert "cannot reach" in out
    assert "retrying" in out


@pytest.mark.parametrize(
    "argv",
    [
        *(["inspect", "http://127.0.0.1:1", "--watch", bad] for bad in ("0", "-1", "soon", "inf")),
        *(["serve-debug", "--config", "x.toml", "--port", bad] for bad in ("-1", "65536", "http")),
    ],
)
def test_bad_option_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2


def test_an_unreachable_endpoint_is_one_line_and_status_1(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    server = runtime.serve_debug()
    server.close()

    assert main(["inspect", server.url]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"cannot reach {server.url}" in captured.err
    assert "Traceback" not in captured.err


def test_a_token_comes_from_the_option_or_the_environment(
    runtime: Runtime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.serve_debug(token="debug-token-0000001") as server:
        assert main(["inspect", server.url]) == 1
        assert "HTTP 401" in capsys.readouterr().err
        assert main(["inspect", server.url, "--token", "debug-token-0000001", "--json"]) == 0
        monkeypatch.setenv(TOKEN_ENV, "debug-token-0000001")
        assert main(["inspect", server.url, "--json"]) == 0


# -- reset -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("rate_limited")
def test_reset_and_reset_profile(
    runtime: Runtime, server: DebugServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reset", server.url, "openai/gpt-4o"]) == 0
    assert main(["reset-profile", server.url, "openai", "main"]) == 0

    assert capsys.readouterr().out.splitlines() == ["reset openai/gpt-4o", "reset openai/main"]
    assert "openai/gpt-4o" not in runtime.health()  # reset drops an unconfigured row
    assert runtime.inspect().actor("profile:openai/main").state["cooldown_remaining"] is None


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param(["reset", "openai/gpt-4"], "not in the health table", id="model"),
        pytest.param(["reset-profile", "openai", "spare"], "no key profile", id="profile"),
    ],
)
def test_resetting_something_unknown_fails_with_the_reason(
    server: DebugServer, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main([argv[0], server.url, *argv[1:]]) == 1

    err = capsys.readouterr().err
    assert "HTTP 404" in err
    assert says in err


# -- serve-debug -----------------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "switchover.toml"
    path.write_text(
        """
chain_workers = 2
fallbacks = ["claude/claude-sonnet-4-5"]

[[providers]]
name = "openai"
api = "openai"
base_url = "https://api.openai.test/v1"
profiles = { main = "${OPENAI_KEY}" }

[[providers]]
name = "claude"
api = "anthropic"
base_url = "https://api.anthropic.test"
profiles = { default = "sk-ant-api03-TomlOnlyKeyForServeDebug" }
"""
    )
    return path


def test_serve_debug_runs_a_runtime_from_config_until_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_KEY", "sk-proj-FromTheEnvironmentVariable")
    args = build_parser().parse_args(["serve-debug", "--config", str(write_config(tmp_path))])
    provider = ScriptedProvider()
    stop, ready = threading.Event(), threading.Event()
    urls: list[str] = []

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    statuses: list[int] = []
    serving = threading.Thread(
        target=lambda: statuses.append(
            run_serve_debug(
                args,
                providers={"openai": provider, "claude": provider},
                stop=stop,
                on_ready=on_ready,
            )
        )
    )
    serving.start()
    try:
        assert ready.wait(timeout=10)
        actors = httpx.get(urls[0] + "/debug/actors").json()["actors"]
    finally:
        stop.set()
        serving.join(timeout=10)

    assert statuses == [0]
    names = {a["name"] for a in actors}
    assert {"profile:openai/main", "profile:claude/default", "chain:0", "chain:1"} <= names
    assert f"switchover debug endpoint at {urls[0]}" in capsys.readouterr().out
    with pytest.raises(httpx.ConnectError):
        httpx.get(urls[0] + "/debug/actors")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        pytest.param(["--host", "0.0.0.0"], "requires a token", id="open-host"),
        pytest.param(["--config", "/nonexistent/switchover.toml"], "cannot read", id="no-file"),
        pytest.param(
            ["--host", "192.0.2.1", "--token", "t-0123456789abcdef"], "cannot listen", id="not-ours"
        ),
    ],
)
def test_serve_debug_refuses_with_a_reason(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    says: str,
) -> None:
    monkeypatch.setenv("OPENAI_KEY", "sk-proj-FromTheEnvironmentVariable")
    args = build_parser().parse_args(
        ["serve-debug", "--config", str(write_config(tmp_path)), *extra]
    )
    provider = ScriptedProvider()

    status = run_serve_debug(args, providers={"openai": provider, "claude": provider})

    assert status == 1
    assert says in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("inspect", "reset", "reset-profile", "serve-debug"):
        assert command in out


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0.04, "0.0s"), (7.25, "7.2s"), (185, "3m05s"), (7300, "2h01m")],
)
def test_seconds_reads_well(value: float | None, text: str) -> None:
    assert seconds(value) == text
