"""Issue 15 item 6: a process that never calls stop() still exits, its runtime stopped
cleanly at interpreter exit (also when the script dies of an exception)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

PRELUDE = textwrap.dedent(
    """
    import atexit, sys

    def report():  # registered before switchover's hook, so it runs after it
        print("stopped" if rt._supervisor is None else "still running", flush=True)

    atexit.register(report)

    import switchover
    from switchover import Config, ProviderConfig, Request, Runtime
    from switchover.testing import ScriptedProvider

    config = Config(providers=[ProviderConfig(name="p", api="openai",
                    base_url="http://127.0.0.1:9/v1", profiles={"a": "sk-test-abcdefgh"})])
    rt = Runtime(config, providers={"p": ScriptedProvider()}).start()
    stream = rt.stream(Request(model="p/m", messages=[{"role": "user", "content": "hi"}]))
    print("served", next(stream).text, flush=True)
    """
)


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        capture_output=True,
        check=False,
        text=True,
        timeout=20,
    )


def test_a_script_that_never_stops_its_runtime_exits() -> None:
    done = _run("")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["served ok", "stopped"]
    assert "Traceback" not in done.stderr


def test_a_script_that_raises_before_stop_exits_with_its_error() -> None:
    done = _run("raise ValueError('the application failed')")
    assert done.returncode == 1
    assert "ValueError: the application failed" in done.stderr
    assert done.stdout.split("\n")[:2] == ["served ok", "stopped"]


def test_a_second_runtime_and_a_debug_server_do_not_hold_the_exit_either() -> None:
    done = _run(
        """
        other = Runtime(config, providers={"p": ScriptedProvider()}).start()
        other.serve_debug()
        rt.serve_debug()
        """
    )
    assert done.returncode == 0, done.stderr
    assert "stopped" in done.stdout
