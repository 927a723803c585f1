"""A real redis-server on a free loopback port, for the shared-state tests."""

from __future__ import annotations

import selectors
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import redis

#: How long a server may take to say it is ready.
READY_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``start()`` / ``kill()`` / ``start()`` again on the same port and directory."""

    def __init__(self, directory: Path, *, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                *(("--requirepass", self.password) if self.password else ()),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Read the server's log until it accepts connections, then check with a PING."""
        assert self.process is not None
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        seen = b""
        while b"Ready to accept connections" not in seen:
            if not selector.select(timeout=READY_TIMEOUT):
                raise RuntimeError(f"redis-server not ready in {READY_TIMEOUT}s: {seen[-500:]!r}")
            chunk = self.process.stdout.read1(4096)
            if not chunk:
                raise RuntimeError(f"redis-server exited: {seen[-500:]!r}")
            seen += chunk
        selector.close()
        client = self.client()
        assert client.ping()
        client.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=READY_TIMEOUT)
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and nothing answers, as in a
        network partition."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=READY_TIMEOUT)
