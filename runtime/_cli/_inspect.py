"""The debug subcommands: ``inspect``, ``reset``, ``reset-profile`` and ``serve-debug``.

The first three talk to a running debug endpoint over HTTP (httpx); ``serve-debug`` starts
a runtime from a TOML file and serves its endpoint until Ctrl-C.

Nearly everything printed comes from outside: provider error messages, names and keys from
the config, paths, URLs, exception text. So every console here reads no markup
(:func:`console`) and every table cell is a :class:`~rich.text.Text` (:func:`_row`): a
``[/x]`` in an upstream's message is shown as it is, and cannot crash the tool.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .._core._config import Config
from .._core._errors import SwitchoverError
from .._runtime import Runtime
from ..providers._seam import Provider

#: Where ``--token`` comes from when it is not given (a token on the command line shows
#: up in ``ps``; an environment variable does not).
TOKEN_ENV = "SWITCHOVER_DEBUG_TOKEN"
#: Seconds the client waits for the endpoint (which answers inspect within ~50 ms).
HTTP_TIMEOUT = 5.0

Wait = Callable[[float], None]
P = ParamSpec("P")


class CliError(Exception):
    """A failure to report in one line on stderr, with exit status 1."""


def console(*, stderr: bool = False) -> Console:
    """A console that prints strings as they are: no markup, no emoji codes, no highlighting.

    Styles come only from :class:`~rich.text.Text` and tables built here.
    """
    return Console(stderr=stderr, soft_wrap=stderr, markup=False, emoji=False, highlight=False)


def _reporting(command: Callable[P, int]) -> Callable[P, int]:
    """Turn a CliError (or a SwitchoverError) into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return command(*args, **kwargs)
        except (CliError, SwitchoverError) as error:
            console(stderr=True).print(f"switchover: {error}")
            return 1

    return run


# -- the HTTP client -------------------------------------------------------------------------


class Endpoint:
    """A debug endpoint at ``url``, optionally with a bearer token."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=HTTP_TIMEOUT)

    def close(self) -> None:
        self._client.close()

    def get(self, path: str) -> dict[str, Any]:
        return self._answer(lambda: self._client.get(path))

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer(lambda: self._client.post(path, json=dict(body)))

    def _answer(self, send: Callable[[], httpx.Response]) -> dict[str, Any]:
        try:
            response = send()
        except httpx.HTTPError as error:
            raise CliError(f"cannot reach {self.url}: {error}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise CliError(f"{self.url} answered HTTP {response.status_code}, not switchover JSON")
        if response.is_error:
            raise CliError(f"HTTP {response.status_code}: {answer.get('error', 'no reason given')}")
        return answer


# -- rendering -------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    """``7.25`` -> ``7.2s``, ``185`` -> ``3m05s``, ``7300`` -> ``2h01m``; None -> ``-``."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    whole = round(value)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


#: Columns whose numbers line up on the right.
_NUMBERS = frozenset(
    {"mailbox", "processed", "restarts", "fails", "failures", "attempts", "request"}
)


#: Columns that wrap on a narrow terminal; the others (names, keys, numbers) never break.
_PROSE = frozenset({"last error", "last message", "chain", "reason"})


def _table(title: str, columns: tuple[str, ...], **options: Any) -> Table:
    table = Table(title=title, title_justify="left", **options)
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in _NUMBERS else "left",
            no_wrap=column not in _PROSE,
        )
    return table


def _row(table: Table, *cells: str | Text) -> None:
    """Add a row; a string cell is shown as it is (a Text), never read as markup."""
    table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in cells))


def _clip(text: object, width: int = 60) -> str:
    value = "-" if text is None else str(text)
    return value if len(value) <= width else value[: width - 1] + "…"


def _actors_table(actors: list[dict[str, Any]], taken_at: float) -> Table:
    table = _table(
        "Actors", ("actor", "mailbox", "processed", "restarts", "last message", "snapshot")
    )
    for actor in actors:
        recent = actor.get("recent") or []
        last = "-"
        if recent:
            entry = recent[-1]
            ago = seconds(max(0.0, taken_at - entry["at"]))
            last = f"{entry['type']} {ago} ago ({entry['duration'] * 1000:.1f} ms)"
        state = (
            Text(f"stale {seconds(actor.get('age'))}", style="yellow")
            if actor.get("stale")
            else Text("live", style="green")
        )
        _row(
            table,
            actor["name"],
            str(actor["mailbox_depth"]),
            str(actor["processed"]),
            str(actor["restarts"]),
            last,
            state,
        )
    return table


def _profiles_table(actors: list[dict[str, Any]]) -> Table:
    table = _table(
        "Key profiles",
        ("profile", "key", "status", "fails", "last error", "calls/ok/err"),
    )
    for actor in actors:
        state = actor["state"]
        remaining = state.get("cooldown_remaining")
        status = (
            Text(f"cooling {seconds(remaining)}", style="yellow")
            if remaining
            else Text("ready", style="green")
        )
        last = state.get("last_error")
        if last is not None and state.get("last_error_kind"):
            last = f"{state['last_error_kind']}: {last}"
        _row(
            table,
            f"{state['provider']}/{state['profile']}",
            state["key"],
            status,
            str(state["consecutive_failures"]),
            _clip(last),
            f"{state['calls']}/{state['successes']}/{state['failures']}",
        )
    return table


def _chains_table(actors: list[dict[str, Any]]) -> RenderableType:
    busy = [a for a in actors if a["state"].get("busy")]
    idle = f"{len(actors) - len(busy)} of {len(actors)} idle"
    if not busy:
        return Text(f"Chain workers: {idle}", style="italic")
    table = _table(
        "Chain workers",
        ("worker", "request", "chain", "profile", "attempts", "elapsed"),
        caption=idle,
        caption_justify="left",
    )
    for actor in busy:
        state = actor["state"]
        chain = Text()
        for index, model in enumerate(state["chain"]):
            if index:
                chain.append(" > ")
            chain.append(model, style="bold reverse" if model == state["entry"] else "")
        _row(
            table,
            actor["name"],
            str(state["request_id"]),
            chain,
            state.get("profile") or "-",
            str(state["attempts"]),
            seconds(state["elapsed"]),
        )
    return table


_STATUS_STYLE = {"healthy": "green", "cooling": "yellow", "probing": "cyan", "disabled": "red"}


def _models_table(models: list[dict[str, Any]]) -> Table:
    table = _table(
        "Model health", ("model", "status", "cooldown", "failures", "last error", "reason")
    )
    for row in models:
        status = row["status"]
        _row(
            table,
            row["model"],
            Text(status, style=_STATUS_STYLE.get(status, "")),
            seconds(row["cooldown_seconds"]),
            str(row["consecutive_failures"]),
            _clip(row["last_error"]),
            _clip(row["reason"]),
        )
    return table


def render(url: str, snapshot: Mapping[str, Any], health: Mapping[str, Any]) -> RenderableType:
    """The tables ``switchover inspect`` shows, from the two endpoints' JSON."""
    actors: list[dict[str, Any]] = list(snapshot.get("actors", []))
    taken_at = float(snapshot.get("taken_at", 0.0))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for actor in actors:
        by_kind.setdefault(actor["kind"], []).append(actor)
    when = datetime.datetime.fromtimestamp(taken_at).strftime("%Y-%m-%d %H:%M:%S")
    stale = sum(1 for a in actors if a.get("stale"))
    header = Text(f"switchover at {url}: {len(actors)} actors ({stale} stale), {when}")
    return Group(
        header,
        _profiles_table(by_kind.get("profile", [])),
        _models_table(list(health.get("models", []))),
        _chains_table(by_kind.get("chain", [])),
        _actors_table(actors, taken_at),
    )


# -- the commands ----------------------------------------------------------------------------


def _fetch(endpoint: Endpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    return endpoint.get("/debug/actors"), endpoint.get("/api/v1/models/health")


def _wait(interval: float) -> None:
    threading.Event().wait(interval)  # a wait Ctrl-C interrupts


@_reporting
def run_inspect(args: argparse.Namespace, *, wait: Wait = _wait) -> int:
    """``switchover inspect``: one look, or ``--watch`` until Ctrl-C (``wait`` paces it)."""
    out = console()
    endpoint = Endpoint(args.url, args.token)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            if args.json:
                _inspect_json(endpoint, out, args.watch, wait)
            elif args.watch is None:
                out.print(render(endpoint.url, *_fetch(endpoint)))
            else:
                _inspect_watch(endpoint, out, args.watch, wait)
    finally:
        endpoint.close()
    return 0


def _inspect_json(endpoint: Endpoint, out: Console, watch: float | None, wait: Wait) -> None:
    while True:
        snapshot, health = _fetch(endpoint)
        document = {"actors": snapshot, "models": health["models"]}
        if watch is None:
            out.print_json(data=document)
            return
        # One compact document per line, so a pipe can read each refresh as it comes.
        out.out(json.dumps(document))
        wait(watch)


def _inspect_watch(endpoint: Endpoint, out: Console, interval: float, wait: Wait) -> None:
    def frame() -> RenderableType:
        try:
            return render(endpoint.url, *_fetch(endpoint))
        except CliError as error:  # keep watching: the runtime may come back
            return Text(f"{error} (retrying every {seconds(interval)})", style="red")

    if not out.is_terminal:
        while True:  # a pipe or a file: one frame after another
            out.print(frame())
            wait(interval)
    with Live(frame(), console=out, auto_refresh=False) as live:
        while True:
            wait(interval)
            live.update(frame(), refresh=True)


@_reporting
def run_reset(args: argparse.Namespace) -> int:
    """``switchover reset URL MODEL``."""
    return _post(args, "/api/v1/models/health/reset", {"model": args.model})


@_reporting
def run_reset_profile(args: argparse.Namespace) -> int:
    """``switchover reset-profile URL PROVIDER PROFILE``."""
    return _post(
        args, "/api/v1/profiles/reset", {"provider": args.provider, "profile": args.profile}
    )


def _post(args: argparse.Namespace, path: str, body: Mapping[str, Any]) -> int:
    endpoint = Endpoint(args.url, args.token)
    try:
        answer = endpoint.post(path, body)
    finally:
        endpoint.close()
    console().print(f"reset {answer['reset']}")
    return 0


@_reporting
def run_serve_debug(
    args: argparse.Namespace,
    *,
    providers: Mapping[str, Provider] | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """``switchover serve-debug``: a runtime from ``--config`` and its endpoint, until Ctrl-C.

    ``providers`` replaces the built-in HTTP adapters; ``stop`` and ``on_ready`` (called
    with the URL) let a caller run it in a thread.
    """
    config = Config.from_toml(args.config)
    stop = stop or threading.Event()
    with Runtime(config, providers=providers) as rt:
        try:
            server = rt.serve_debug(host=args.host, port=args.port, token=args.token)
        except OSError as error:  # the port is taken, the address is not this machine's
            raise CliError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
        profiles = sum(len(p.profiles) for p in config.providers)
        console().print(
            f"switchover debug endpoint at {server.url} for {args.config} "
            f"({len(config.providers)} providers, {profiles} key profiles); Ctrl-C stops it"
        )
        if on_ready is not None:
            on_ready(server.url)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _endpoint_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the debug endpoint, e.g. http://127.0.0.1:8765")
    _token_arg(parser, "the endpoint's bearer token")


def _token_arg(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"{text} (default: ${TOKEN_ENV})",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the debug subcommands; each sets ``run`` to a function of the parsed args."""
    inspect = subparsers.add_parser(
        "inspect",
        help="show a running runtime's actors and model health",
        description="Show every actor (key profiles, chain workers, model health, mailbox "
        "depths, last messages) of a runtime serving its debug endpoint.",
    )
    _endpoint_args(inspect)
    inspect.add_argument("--json", action="store_true", help="print JSON instead of tables")
    inspect.add_argument(
        "--watch",
        type=_positive_seconds,
        metavar="SECONDS",
        help="refresh every SECONDS until Ctrl-C",
    )
    inspect.set_defaults(run=run_inspect)

    reset = subparsers.add_parser("reset", help="make a model healthy again")
    _endpoint_args(reset)
    reset.add_argument("model", help="provider/model or alias, as model health lists it")
    reset.set_defaults(run=run_reset)

    reset_profile = subparsers.add_parser(
        "reset-profile", help="take a key profile out of cooldown"
    )
    _endpoint_args(reset_profile)
    reset_profile.add_argument("provider")
    reset_profile.add_argument("profile")
    reset_profile.set_defaults(run=run_reset_profile)

    serve = subparsers.add_parser(
        "serve-debug",
        help="start a runtime from a config file and serve its debug endpoint",
    )
    serve.add_argument("--config", required=True, metavar="PATH", help="a switchover.toml")
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=_port, default=0, help="default: a free port (printed)")
    _token_arg(serve, "require this bearer token; needed for a non-loopback --host")
    serve.set_defaults(run=run_serve_debug)
