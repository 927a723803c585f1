"""No API key, nor any 8-character piece of one, leaves switchover by any channel.

One session with distinctive keys goes through every output channel: logs at DEBUG (every
logger), reprs, snapshots, ``to_dict()``, errors, the HTTP endpoints and the CLI's output.
Provider error bodies echo the keys back, as OpenAI's "Incorrect API key provided" does.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from pathlib import Path

import httpx
import pytest
from conftest import make_config

from runtime import (
    ChainExhausted,
    ConfigError,
    ProviderConfig,
    Request,
    RequestRejected,
    Runtime,
    StreamInterrupted,
)
from runtime._cli import build_parser, main
from runtime._debug_cli import TOKEN_ENV, run_serve_debug
from runtime._redact import PIECE, Redactor
from runtime.testing import Cut, Fail, FakeClock, ScriptedProvider

OPENAI_MAIN = "sk-proj-ZEBRAquill7LANTERNmossVIOLETfjord"
OPENAI_BACKUP = "sk-proj-OCELOTbrine9MARIGOLDtuskCINDERyawl"
CLAUDE = "sk-ant-api03-PELICANduskHARPOONvelvetQUINCEx"
SECRETS = (OPENAI_MAIN, OPENAI_BACKUP, CLAUDE)
PIECES = {key[i : i + PIECE] for key in SECRETS for i in range(len(key) - PIECE + 1)}
HI = ({"role": "user", "content": "hi"},)


def leaks(text: str) -> set[str]:
    """Every 8-character piece of a key found in ``text``."""
    return {piece for piece in PIECES if piece in text}


def echo(status: int, code: str, kind: str, key: str) -> Fail:
    """A provider error whose message quotes the key, whole and in part."""
    message = f"Incorrect API key provided: {key}. Partial: {key[8:30]}. See your account."
    return Fail(status, {"error": {"message": message, "type": kind, "code": code}})


def run_errors(rt: Runtime, provider: ScriptedProvider, seen: list[str]) -> None:
    """Requests that fail every way a caller can see; their errors and attempts are output."""
    provider.script("gpt-4o", echo(401, "invalid_api_key", "invalid_request_error", OPENAI_MAIN))
    provider.script("gpt-4o", echo(429, "rate_limit_exceeded", "requests", OPENAI_BACKUP))
    provider.script("claude-sonnet-4-5", Cut(after=1))
    with pytest.raises(StreamInterrupted) as interrupted:
        rt.complete(Request(model="openai/gpt-4o", messages=HI))
    provider.script("claude-sonnet-4-5", echo(529, "overloaded_error", "overloaded_error", CLAUDE))
    with pytest.raises(ChainExhausted) as exhausted:
        rt.complete(Request(model="openai/gpt-4o", messages=HI))
    provider.script(
        "claude-haiku", echo(400, "context_length_exceeded", "invalid_request_error", CLAUDE)
    )
    with pytest.raises(RequestRejected) as rejected:
        rt.complete(Request(model="claude/claude-haiku", messages=HI))
    with pytest.raises(RequestRejected) as key_as_model:
        rt.complete(Request(model=OPENAI_MAIN, messages=HI))
    with pytest.raises(RequestRejected) as key_in_model:
        rt.complete(Request(model=f"openai/{OPENAI_BACKUP}", messages=HI))
    with pytest.raises(RequestRejected) as piece_in_fallback:
        rt.complete(Request(model="openai/gpt-4o", fallback_models=(CLAUDE[5:20],), messages=HI))
    with pytest.raises(KeyError) as reset_key:
        rt.reset(f"openai/{CLAUDE}")
    with pytest.raises(ConfigError) as bad_config:
        ProviderConfig(name="x", api="nope", base_url="https://x.test", profiles={"k": CLAUDE})  # type: ignore[arg-type]
    for error in (
        interrupted.value,
        exhausted.value,
        rejected.value,
        key_as_model.value,
        key_in_model.value,
        piece_in_fallback.value,
        reset_key.value,
        bad_config.value,
    ):
        seen += [str(error), repr(error), repr(getattr(error, "attempts", ()))]


def run_http(url: str, seen: list[str]) -> None:
    with httpx.Client(base_url=url) as client:
        seen.append(client.get("/debug/actors").text)
        seen.append(client.get("/api/v1/models/health").text)
        for body in (
            {"model": "claude/claude-sonnet-4-5"},
            {"model": OPENAI_MAIN},
            {"model": f"openai/{CLAUDE}"},
        ):
            seen.append(client.post("/api/v1/models/health/reset", json=body).text)
        for provider, profile in (("openai", "main"), ("openai", OPENAI_BACKUP), (CLAUDE, "x")):
            body = {"provider": provider, "profile": profile}
            seen.append(client.post("/api/v1/profiles/reset", json=body).text)
    # A key in the path, sent with http.client (httpx would log the URL itself).
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", f"/debug/{OPENAI_MAIN}")
    seen.append(connection.getresponse().read().decode())
    connection.close()


def test_no_key_leaves_by_any_channel(
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: switchover, pykka, httpx, everything
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    provider = ScriptedProvider(secrets=SECRETS)
    seen: list[str] = []
    release = threading.Event()
    keys = {("openai", "main"): OPENAI_MAIN, ("openai", "backup"): OPENAI_BACKUP}
    keys["claude", "default"] = CLAUDE
    providers = {"openai": provider, "claude": provider}
    rt = Runtime(make_config(keys), providers=providers, clock=FakeClock())
    try:
        rt.start()
        run_errors(rt, provider, seen)
        rt.inject_crash("profile:openai/main")  # logged, with pykka's traceback
        rt.inject_hold("profile:openai/backup", release).wait(timeout=10)  # a stale snapshot
        snapshot = rt.inspect()
        seen += [repr(snapshot), json.dumps(snapshot.to_dict()), repr(rt.health())]
        seen += [repr(rt), repr(rt.config), str(rt.config), repr(provider.calls)]
        seen += [repr(p) for p in rt.config.providers]
        with rt.serve_debug() as server:
            seen.append(repr(server))
            run_http(server.url, seen)
            for argv in (
                ["inspect", server.url],
                ["inspect", server.url, "--json"],
                ["reset", server.url, OPENAI_BACKUP],
                ["reset-profile", server.url, "openai", CLAUDE],
            ):
                main(argv)
        with rt.serve_debug(token="debug-token") as server:
            main(["inspect", server.url, "--token", OPENAI_MAIN])
    finally:
        release.set()
        rt.stop()
    toml = tmp_path / "switchover.toml"
    toml.write_text(
        "[[providers]]\nname = 'openai'\napi = 'openai'\nbase_url = 'https://o.test'\n"
        f"profiles = {{ main = '{OPENAI_MAIN}' }}\n"
    )
    args = build_parser().parse_args(["serve-debug", "--config", str(toml)])
    stopped = threading.Event()
    stopped.set()  # serve, print, stop at once
    run_serve_debug(args, providers={"openai": provider}, stop=stopped)
    captured = capsys.readouterr()
    seen += [captured.out, captured.err, caplog.text]

    everything = "\n".join(seen)
    assert "Key profiles" in captured.out  # the channels really carried the session
    assert "Unhandled exception" in caplog.text
    assert "HTTP 404" in captured.err
    assert leaks(everything) == set()


def test_the_leak_check_finds_a_piece_of_a_key() -> None:
    assert leaks(f"error: key ...{CLAUDE[17:25]}... rejected") == {CLAUDE[17:25]}
    assert leaks("sha256:0123456789 [redacted] openai/main") == set()


def test_known_removes_only_configured_keys() -> None:
    redact = Redactor(SECRETS)
    text = f"profile key_backup got {OPENAI_MAIN[10:30]} and {CLAUDE}!"

    assert redact.known(text) == "profile key_backup got [redacted] and [redacted]!"
    assert redact(text) == "profile [redacted] got [redacted] and [redacted]!"  # key-shaped too
    assert redact.known("openai/gpt-4o") == "openai/gpt-4o"
