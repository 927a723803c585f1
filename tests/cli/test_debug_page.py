"""The live debug page (GET /) in a real headless chromium, driven over its DevTools
websocket; and /metrics and the page's routes over plain HTTP."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import support
import websocket
from switchover import Request, Runtime
from switchover.testing import Fail, ScriptedProvider, inject_crash

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Real seconds to wait for the page to show something (generous: a loaded machine).
PATIENCE = 20.0
RATE_LIMITED = Fail(
    429,
    {"error": {"type": "rate_limit_error", "message": "slow", "code": "rate_limit_exceeded"}},
    headers={"retry-after": "30"},
)
HOSTILE_MODEL = "openai/<img src=x onerror=alert(1)>"


class Browser:
    """One headless chromium page, driven with DevTools protocol commands."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        self._process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--window-size=1400,1000",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        port = self._wait(lambda: port_file.exists() and port_file.read_text().split("\n")[0])
        pages = self._wait(
            lambda: [
                t
                for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json()
                if t["type"] == "page"
            ]
        )
        self._socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30)
        self._ids = itertools.count(1)

    def _wait(self, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            try:
                value = probe()
            except (httpx.HTTPError, OSError):
                value = None
            if value:
                return value
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            time.sleep(0.05)  # polling a child process's files: there is no event to wait on
        raise TimeoutError("chromium did not start its DevTools endpoint")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            answer = json.loads(self._socket.recv())
            if answer.get("id") == message_id:
                assert "error" not in answer, answer
                result: dict[str, Any] = answer["result"]
                return result

    def js(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def until(self, expression: str, *, what: str) -> Any:
        """Evaluate until truthy (the page updates itself; the test waits for it)."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            self.js("new Promise(r => setTimeout(r, 50))")  # let the page run, in its own time
        raise AssertionError(f"the page never showed {what}")

    def open(self, url: str) -> None:
        """Navigate to ``url`` and wait until its document has loaded (navigating returns
        before it has, and an expression may meet the old document)."""
        self.send("Page.navigate", url=url)
        self.until(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
            what=f"{url} loaded",
        )

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._socket.close()
        self._process.terminate()
        self._process.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    chromium = Browser(profile)
    yield chromium
    chromium.close()


def _eventually(check: Callable[[], bool]) -> bool:
    """Whether ``check()`` holds within PATIENCE real seconds."""
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # reading published state: nothing to wait on
    return True


def _cell(row: str, column: int) -> str:
    return f"document.querySelector('{row}')?.children[{column}]?.textContent ?? ''"


def test_live_page_shows_a_cooling_key_counts_down_and_resets_it(
    start: support.StartRuntime, scripted: ScriptedProvider, browser: Browser, tmp_path: Path
) -> None:
    scripted.script("gpt-4o", RATE_LIMITED, key=support.OPENAI_MAIN)
    scripted.script(
        "<img src=x onerror=alert(1)>", Fail(404, {"error": {"code": "model_not_found"}})
    )
    rt = start(clock=None)  # the real clock: the countdown runs in real time
    # The hostile model first: its 404 on the main key would otherwise be the key's last
    # error (a rate limit cools the key for gpt-4o only, so the key still serves others).
    rt.complete(
        Request(
            model=HOSTILE_MODEL,
            fallback_models=("openai/gpt-4o",),
            messages=[{"role": "user", "content": "hi"}],
        )
    )
    rt.complete(Request(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}]))
    support.flush(rt)
    server = rt.serve_debug()
    browser.open(server.url + "/")

    key_row = 'tr[data-name="openai/main"]'
    browser.until(f"{_cell('#keys ' + key_row, 1)} === 'cooling'", what="the cooling key")
    first = float(browser.js(_cell("#keys " + key_row, 2)).rstrip("s"))
    assert 25.0 < first <= 30.0
    browser.until(
        f"parseFloat({_cell('#keys ' + key_row, 2)}) < {first}", what="the countdown moving"
    )
    assert "rate_limit" in browser.js(_cell("#keys " + key_row, 4))
    # Outside text is text: the hostile model name shows as written and made no element.
    cells = "[...document.querySelectorAll('#models td')]"
    assert browser.until(
        f"{cells}.some(td => td.textContent === {json.dumps(HOSTILE_MODEL)})",
        what="the hostile model name",
    )
    assert browser.js("document.querySelectorAll('main img').length") == 0
    assert browser.until(
        "document.querySelectorAll('#timeline li').length >= 2", what="the transitions"
    )
    assert "key openai/main → cooling" in browser.js(
        "document.getElementById('timeline').textContent"
    )
    shot = browser.screenshot(tmp_path / "debug-page.png")
    print(f"screenshot of the live page: {shot}")

    browser.js(f"document.querySelector('#keys {key_row} button').click()")
    browser.until(f"{_cell('#keys ' + key_row, 1)} === 'ready'", what="the key reset")
    assert _eventually(
        lambda: (
            rt.inspect(ask=False).actor("profile:openai/main").state["cooldown_remaining"] is None
        )
    )

    # A restarted actor shows up with its restart count, the page still live.
    inject_crash(rt, "health")
    health_row = '#actors tr[data-name="health"]'
    browser.until(f"{_cell(health_row, 5)} === '1'", what="the restart")
    print(f"screenshot after reset and restart: {browser.screenshot(tmp_path / 'after.png')}")


def test_page_with_a_token_asks_for_it_and_sends_it(
    start: support.StartRuntime, browser: Browser
) -> None:
    rt = start(clock=None)
    server = rt.serve_debug(token="s3cret-token-for-the-page")
    browser.open(server.url + "/")
    browser.until("!document.getElementById('auth').hidden", what="the token form")
    browser.js(
        "document.getElementById('token').value = 's3cret-token-for-the-page';"
        "document.getElementById('auth').requestSubmit()"
    )
    browser.until("document.querySelectorAll('#actors tbody tr').length > 0", what="the actors")


def test_page_route_headers_and_token_rule(start: support.StartRuntime) -> None:
    rt: Runtime = start(metrics=True)
    server = rt.serve_debug(token="s3cret-token-for-the-page")
    page = httpx.get(server.url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "'sha256-" in csp
    assert "unsafe" not in csp
    assert httpx.get(server.url + "/debug/live").status_code == 401
    assert httpx.get(server.url + "/metrics").status_code == 401
    auth = {"Authorization": "Bearer s3cret-token-for-the-page"}
    live = httpx.get(server.url + "/debug/live", headers=auth).json()
    assert set(live) == {"actors", "models", "transitions"}
    metrics = httpx.get(server.url + "/metrics", headers=auth)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "switchover_chain_workers" in metrics.text
    assert httpx.post(server.url + "/metrics", headers=auth).status_code == 405


def test_metrics_route_says_when_metrics_are_off(start: support.StartRuntime) -> None:
    server = start().serve_debug()
    answer = httpx.get(server.url + "/metrics")
    assert answer.status_code == 404
    assert "metrics=True" in answer.json()["error"]
