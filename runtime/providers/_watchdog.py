"""Per-call timeouts for streaming HTTP calls, enforced by one watchdog thread per provider.

Timeouts. httpx applies its read timeout to each socket read and fixes it when the request
is sent, so it cannot say "the first content event within N seconds", "one whole event per
idle gap" (a byte-a-second trickle resets it forever) or "nothing past the request
deadline". The adapter gives httpx the budget as it stands when the request is sent, which
cuts a silent server by itself, and the :class:`Watchdog` keeps each call's moving expiry.
When an expiry passes, or the call is cancelled, or the provider is closed, the watchdog
shuts the call's socket down; that wakes the blocked read at once, and the read's failure
is reported as the timeout it really was. The reader only moves a float per chunk.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import socket
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import httpx

from .._core._classify import Failure, transport_failure
from .._core._clock import Clock
from ._seam import ProviderCall, ProviderFailure

log = logging.getLogger("switchover.http")

#: How often the watchdog looks at the cancel flags of running calls.
CANCEL_POLL = 0.05
#: How long the watchdog sleeps when no call is running (it is woken for a new one).
IDLE_SLEEP = 3600.0


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, even for an SSLSocket: SSLSocket.shutdown would also drop
    # its SSL object under the reading thread's feet. A closed socket raises EBADF (its fd
    # is -1, so a reused descriptor number is never touched).
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watch:
    """One call's timer. The reading thread moves ``expires``; the watchdog fires it.

    Until the request is sent only the deadline applies: time spent waiting for the
    client's connection pool or for a connection is the runtime's, not the provider's (a
    connect is bounded by httpx's connect timeout). The first-token and idle budgets start
    when httpcore begins sending the request (:meth:`trace`).

    ``limit`` is the first-token bound until content arrives, then the deadline. The hot
    path takes no lock: attribute writes are atomic under the GIL, and the watchdog queues
    a watch at the ``expires`` it sees and re-checks it then. Moving ``expires`` later is
    therefore free. Moving it earlier than ``queued`` (the time the watchdog will look
    next) needs :meth:`Watchdog.requeue`; that only happens when a reader resumes after
    holding an event past its idle budget.
    """

    __slots__ = (
        "cancel",
        "clock",
        "deadline",
        "expires",
        "failure",
        "first_token",
        "idle",
        "limit",
        "queued",
        "sock",
        "watchdog",
    )

    def __init__(self, watchdog: Watchdog, call: ProviderCall) -> None:
        self.watchdog = watchdog
        self.clock = call.clock
        self.cancel = call.cancel
        self.deadline = call.deadline
        self.idle = call.idle_timeout
        self.first_token = call.first_token_timeout
        self.limit = call.deadline
        self.expires = call.deadline
        self.queued = math.inf
        self.sock: socket.socket | None = None
        self.failure: Failure | None = None

    def sent(self, now: float) -> None:
        """The request is being sent at ``now``: the first-token and idle budgets start."""
        if self.first_token is not None:
            self.limit = min(now + self.first_token, self.deadline)
        self.move(min(now + self.idle, self.limit))

    def trace(self, name: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: start the budgets when the request goes out (on a new or
        a reused connection alike), and learn the socket of a new connection before any read.

        For HTTPS the TLS socket replaces the TCP one (which is detached, so shutting it
        would do nothing): take the socket again when TLS is set up.
        """
        if name.endswith(".send_request_headers.started"):  # http11. or http2.
            self.sent(self.clock.now())
        elif name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            if stream is not None:
                self.watchdog.adopt(self, stream.get_extra_info("socket"))

    def attach(self, response: httpx.Response) -> None:
        """Learn the socket from the response (a reused connection has no connect trace)."""
        stream = response.extensions.get("network_stream")
        if stream is not None:
            self.watchdog.adopt(self, stream.get_extra_info("socket"))

    def move(self, expires: float) -> None:
        """Set the expiry to ``expires`` (earlier or later)."""
        self.expires = expires
        if expires < self.queued:
            self.watchdog.requeue(self)

    def content_started(self) -> None:
        """The first content arrived: only the idle gap and the deadline apply now."""
        self.limit = self.deadline

    def expired(self, now: float) -> Failure:
        """Why the watch ran out at ``now``."""
        if now >= self.deadline:
            return transport_failure(
                "the request deadline passed waiting for the provider", timeout=True
            )
        if self.limit < self.deadline and now >= self.limit:
            return transport_failure(f"no first token within {self.first_token:.3g}s", timeout=True)
        return transport_failure(
            f"idle: no event from the provider for {self.idle:.3g}s", timeout=True
        )


CANCELLED = transport_failure("cancelled: the runtime is stopping", timeout=False)
CLOSED = transport_failure("the provider adapter was closed", timeout=False)
ABORTED = transport_failure("the stream was closed while it was being read", timeout=False)


class Watchdog:
    """One thread that fires expired, cancelled or aborted calls by shutting their socket.

    A call whose socket is not known yet (a reused keep-alive connection before its
    response headers arrive) is cut by httpx's own read timeout, which equals its first
    expiry; if it is cancelled, every socket not attached to another live call is shut
    (idle pooled connections lose nothing but their reuse).
    """

    def __init__(self, clock: Clock, name: str) -> None:
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int, Watch]] = []
        self._live: set[Watch] = set()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._seq = itertools.count()
        self._wakeup = threading.Event()
        self._sleep_until = -math.inf
        self._closed = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Watchdog({self._name}, {len(self._live)} calls)"

    def watch(self, watch: Watch) -> None:
        """Start timing ``watch``; raises ProviderFailure if the provider is closed."""
        with self._lock:
            if self._closed:
                raise ProviderFailure(CLOSED)
            self._live.add(watch)
            self._queue(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            wake = watch.expires < self._sleep_until
        if wake:
            self._wakeup.set()

    def requeue(self, watch: Watch) -> None:
        """Look at ``watch`` again at its (earlier) expiry."""
        with self._lock:
            if watch not in self._live or watch.expires >= watch.queued:
                return
            self._queue(watch)
            wake = watch.expires < self._sleep_until
        if wake:
            self._wakeup.set()

    def _queue(self, watch: Watch) -> None:
        """Under the lock: look at ``watch`` when its expiry comes."""
        key = watch.expires
        heapq.heappush(self._heap, (key, next(self._seq), watch))
        watch.queued = key
        # The reader writes ``expires`` and then reads ``queued``; reading ``expires`` again
        # after writing ``queued`` means one of the two always sees the other's write.
        if watch.expires < key:
            heapq.heappush(self._heap, (watch.expires, next(self._seq), watch))
            watch.queued = watch.expires

    def unwatch(self, watch: Watch) -> None:
        """Stop timing ``watch``: once this returns, its socket is never shut by us."""
        with self._lock:
            self._live.discard(watch)

    def adopt(self, watch: Watch, sock: socket.socket | None) -> None:
        """Record ``sock`` as the socket of ``watch`` (shut at once if it already fired)."""
        if sock is None:
            return
        with self._lock:
            self._sockets.add(sock)
            watch.sock = sock
            if watch.failure is not None and watch in self._live:
                _shutdown(sock)

    def abort(self, watch: Watch) -> None:
        """Make a call being read on another thread fail at once."""
        with self._lock:
            if watch in self._live and watch.failure is None:
                self._fire(watch, ABORTED)

    def close(self) -> None:
        """Fail every running call, shut every socket, stop the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for watch in self._live:
                if watch.failure is None:
                    watch.failure = CLOSED
            for sock in list(self._sockets):
                _shutdown(sock)
            thread = self._thread
        self._wakeup.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _fire(self, watch: Watch, failure: Failure) -> None:
        """Under the lock: record why, then wake the reader by shutting its socket."""
        watch.failure = failure
        if watch.sock is not None:
            _shutdown(watch.sock)
        elif failure is CANCELLED:
            attached = {w.sock for w in self._live if w.sock is not None}
            for sock in list(self._sockets):
                if sock not in attached:
                    _shutdown(sock)

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                try:
                    wait = self._tick(self._clock.now())
                except Exception:  # a timer thread that dies would leave every call untimed
                    log.exception("watchdog %s failed; carrying on", self._name)
                    wait = CANCEL_POLL
                self._wakeup.clear()
            self._clock.wait(self._wakeup, wait)

    def _tick(self, now: float) -> float:
        """Under the lock: fire what is due; return how long to sleep."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, watch = heapq.heappop(heap)
            if watch not in self._live or watch.failure is not None:
                continue
            if watch.expires <= now:
                self._fire(watch, watch.expired(now))
            elif watch.queued <= now:  # it moved on since it was queued (and not queued since)
                self._queue(watch)
        for watch in self._live:
            if watch.failure is None and watch.cancel.is_set():
                self._fire(watch, CANCELLED)
        if len(heap) > 2 * len(self._live) + 64:  # finished calls linger here until due
            self._heap = heap = [e for e in heap if e[2] in self._live]
            heapq.heapify(heap)
        wait = CANCEL_POLL if self._live else IDLE_SLEEP
        if heap:
            wait = min(wait, heap[0][0] - now)
        self._sleep_until = now + wait
        return wait


# --- the adapter ----------------------------------------------------------------------------
