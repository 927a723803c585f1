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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import bodies as b
import httpx
import pytest
import support
from conftest import make_config
from support import ALL_KEYS, PLAIN_KEY, StartRuntime, flush
from switchover import (
    ChainExhausted,
    ConfigError,
    ProviderCall,
    ProviderConfig,
    ProviderFailure,
    Request,
    RequestRejected,
    Runtime,
    StreamInterrupted,
    TextDelta,
    classify,
)
from switchover._cli import build_parser, main
from switchover._cli._inspect import TOKEN_ENV, run_serve_debug
from switchover._core._redact import PIECE, Redactor
from switchover.testing import (
    Cut,
    Fail,
    FakeClock,
    ScriptedProvider,
    StreamError,
    inject_crash,
    inject_hold,
)

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
        inject_crash(rt, "profile:openai/main")  # logged, with pykka's traceback
        inject_hold(rt, "profile:openai/backup", release).wait(timeout=10)  # a stale snapshot
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
        with rt.serve_debug(token="debug-token-0123456789") as server:
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


# --- a provider that redacts nothing -------------------------------------------------------
# The ``scripted`` provider is given no secrets, and support.PLAIN_KEY has no key shape: only
# the runtime's own knowledge of the configured keys keeps them out.

RUNTIME_PIECES = {key[i : i + PIECE] for key in ALL_KEYS for i in range(len(key) - PIECE + 1)}


def runtime_leaks(text: str) -> list[str]:
    return sorted(p for p in RUNTIME_PIECES if p in text)


def echo_body(key: str) -> Any:
    """An auth error whose body quotes the whole key and a sliced copy of it."""
    return b.openai(
        f"Incorrect API key provided: {key}. Also seen as {key[:10]}...{key[-9:]}.",
        "invalid_request_error",
        "invalid_api_key",
    )


def test_redactor_removes_keys_and_their_pieces() -> None:
    redact = Redactor(ALL_KEYS)
    for key in ALL_KEYS:
        text = redact(f"a {key} b {key[5:14]} c {key[-8:]}", limit=None)
        assert not runtime_leaks(text), text
    assert "[redacted]" in redact(f"x {PLAIN_KEY}")
    assert "Redactor" in repr(redact)
    assert not runtime_leaks(repr(redact))


def test_redactor_removes_key_shaped_tokens_it_was_not_told_about() -> None:
    text = Redactor()("bearer abcdef123456 and sk-ant-api03-unknownKEY12345678 x-api-key")
    assert "abcdef123456" not in text
    assert "unknownKEY" not in text


def test_classify_redacts_what_it_keeps() -> None:
    failure = classify(status=401, body=echo_body(PLAIN_KEY), redact=Redactor(ALL_KEYS))
    assert not runtime_leaks(repr(failure))


class _EchoAfterCommit:
    """Streams a delta, then fails with an in-stream error quoting the key it was given."""

    def open(self, call: ProviderCall) -> Iterator[Any]:
        yield TextDelta("partial")
        raise ProviderFailure(
            classify(status=None, body=b.anthropic("authentication_error", f"bad {call.api_key}"))
        )

    def close(self) -> None:
        pass


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def log_text(records: Iterable[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in records)


def test_no_key_anywhere_even_from_a_provider_that_does_not_redact(
    start: StartRuntime, scripted: ScriptedProvider, debug_logs: pytest.LogCaptureFixture
) -> None:
    for key in (support.OPENAI_MAIN, support.OPENAI_BACKUP):
        scripted.script("gpt-4o", Fail(401, echo_body(key)), key=key)
    scripted.script("claude-3-haiku-20240307", StreamError(echo_body(support.CLAUDE_KEY)))
    scripted.script("llama3", Fail(429, echo_body(PLAIN_KEY), headers={"retry-after": "1"}))
    config = support.make_config()
    rt = start(config)
    seen: list[str] = [repr(config), *map(repr, config.providers), repr(rt), str(config)]
    with pytest.raises(ChainExhausted) as raised:
        rt.complete(
            Request(
                model="openai/gpt-4o",
                messages=HI,
                fallback_models=("claude/claude-3-haiku-20240307", "local/llama3"),
            )
        )
    error = raised.value
    assert len(error.attempts) >= 4
    seen += [str(error), repr(error), repr(error.args), *map(repr, error.attempts)]
    seen += [a.message for a in error.attempts]

    post = start(support.make_config(), provider=_EchoAfterCommit())
    with post.stream(Request(model="local/llama3", messages=HI)) as stream:
        with pytest.raises(StreamInterrupted) as interrupted:
            list(stream)
        seen += [repr(stream), *map(repr, stream.attempts)]
    seen += [str(interrupted.value), repr(interrupted.value), repr(interrupted.value.served_by)]

    for runtime in (rt, post):
        flush(runtime)
        snapshot = runtime.inspect()
        seen += [json.dumps(snapshot.to_dict()), repr(snapshot)]
        seen += [repr(runtime.health())]
    seen.append(log_text(debug_logs.records))
    assert debug_logs.records, "expected some log records at DEBUG"
    found = {leak for text in seen for leak in runtime_leaks(text)}
    assert not found, f"key pieces leaked: {sorted(found)}"


def test_an_adapter_that_crashes_with_the_key_in_its_message_leaks_nothing(
    start: StartRuntime, debug_logs: pytest.LogCaptureFixture
) -> None:
    class Buggy:
        def open(self, call: ProviderCall) -> Iterator[Any]:
            raise ValueError(f"cannot use key {call.api_key}")

        def close(self) -> None:
            pass

    rt = start(provider=Buggy())
    with pytest.raises(ChainExhausted) as raised:
        rt.complete(Request(model="local/llama3", messages=HI))
    flush(rt)
    texts = [str(raised.value), *map(repr, raised.value.attempts), log_text(debug_logs.records)]
    texts.append(json.dumps(rt.inspect().to_dict()))
    assert not {leak for text in texts for leak in runtime_leaks(text)}
