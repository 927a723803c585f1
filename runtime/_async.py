"""asyncio on top of the actors: no thread held while a request waits for its commit.

How an awaited request travels:

1. The caller's task puts the request into an idle chain worker's inbox (the pool the sync
   API uses) with a :class:`_Reply` as its answer slot, and awaits an ``asyncio.Future``.
   When no worker is idle it queues a ticket with the runtime's one :class:`Dispatcher`
   thread, which waits for workers on behalf of every queued request, in arrival order.
2. The chain worker walks the chain as for any caller. Its answer (``Committed`` or
   ``Failed``) is set on the ``_Reply``, which hands it to the caller's loop with
   ``loop.call_soon_threadsafe``: the task wakes with the first event already in hand.
3. The rest of a committed stream is a blocking socket (httpx's sync client, shared with
   the sync API). A :class:`_Pump` thread reads it into a buffer and wakes the loop once
   per batch, and only when the task is waiting; it lives only while the stream is being
   read. See docs/sdk.md for why, and for what would remove it.

Cancelling the task (a timeout, a client that went away) sets the request's own cancel
flag: the walk stops at its next step and the watchdog shuts an in-flight call's socket;
a commit that lands after the task gave up is released at once. Every entry point reads
the running loop per call, so any number of loops and threads may share one runtime.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import sys
import threading
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import Any

import pykka
from pykka._envelope import Envelope

from ._core._errors import RuntimeStoppedError, SwitchoverError
from ._core._types import Attempt, Event, ServedBy
from ._stream import Stream

log = logging.getLogger("switchover")


#: Told an answer nobody waits for any more (the task gave up, or its loop closed), so a
#: committed stream is released and the request closed: ``orphaned(answer, error)``.
Orphaned = Callable[[Any, BaseException | None], None]


def _settle(
    target: asyncio.Future[Any], value: Any, error: BaseException | None, orphaned: Orphaned
) -> None:
    """On the loop: pass the worker's answer on, or release it if the task stopped waiting."""
    if target.done():
        orphaned(value, error)
    elif error is not None:
        target.set_exception(error)
    else:
        target.set_result(value)


class _Reply(pykka.ThreadingFuture[Any]):
    """A pykka answer slot that hands the answer to an asyncio future on its loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, target: asyncio.Future[Any], orphaned: Orphaned
    ) -> None:
        super().__init__()
        self._loop = loop
        self._target = target
        self._orphaned = orphaned

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self.wake(value, None)

    def set_exception(self, exc_info: Any = None) -> None:
        exc_info = exc_info or sys.exc_info()
        super().set_exception(exc_info)
        self.wake(None, exc_info[1])

    def wake(self, value: Any, error: BaseException | None) -> None:
        """From any thread: settle the task's future with an answer or an error."""
        try:
            self._loop.call_soon_threadsafe(_settle, self._target, value, error, self._orphaned)
        except RuntimeError:  # the loop is closed: nobody will read this answer
            self._orphaned(value, error)


class Ticket:
    """One awaited request waiting in the dispatcher's queue."""

    __slots__ = ("cancel", "give_up", "message", "reply")

    def __init__(
        self, message: Any, give_up: float, cancel: threading.Event, orphaned: Orphaned
    ) -> None:
        self.message = message
        self.give_up = give_up
        self.cancel = cancel
        self.reply = _Reply(
            asyncio.get_running_loop(), asyncio.get_running_loop().create_future(), orphaned
        )

    @property
    def answer(self) -> asyncio.Future[Any]:
        """What the task awaits: the worker's answer, or the error that kept it from one."""
        return self.reply._target


class Dispatcher:
    """Hands awaited requests to idle chain workers, in arrival order.

    A request that finds a worker idle and nobody queued before it is handed over at once,
    on the caller's thread (no hop). The rest queue for the one dispatcher thread, which
    blocks for the next idle worker on their behalf.

    Args:
        take: blocks for an idle worker until a real-time ``give_up``; raises a
            SwitchoverError (deadline, stopping) when none comes.
        take_now: an idle worker at once, or None.
        give_back: returns an unused worker to the idle pool.
    """

    def __init__(
        self,
        take: Callable[[float], pykka.ActorRef[Any]],
        take_now: Callable[[], pykka.ActorRef[Any] | None],
        give_back: Callable[[pykka.ActorRef[Any]], None],
    ) -> None:
        self._take = take
        self._take_now = take_now
        self._give_back = give_back
        self._tickets: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0  # tickets handed to the thread and not yet sent or failed
        self._thread = threading.Thread(
            target=self._run, name="switchover-async-dispatch", daemon=True
        )
        self._thread.start()

    def submit(self, ticket: Ticket) -> None:
        """Send ``ticket`` to a worker now, or queue it; its reply is set either way."""
        with self._lock:
            first = self._queued == 0
            if not first:
                self._queued += 1
        if first:
            worker = self._take_now()
            if worker is not None:
                _send(worker, ticket)
                return
            with self._lock:
                self._queued += 1
        self._tickets.put(ticket)

    def close(self) -> None:
        """Stop the thread once the tickets queued before this are handed out or failed."""
        self._tickets.put(None)

    def _run(self) -> None:
        while (ticket := self._tickets.get()) is not None:
            try:
                self._hand_out(ticket)
            finally:
                with self._lock:
                    self._queued -= 1

    def _hand_out(self, ticket: Ticket) -> None:
        try:
            if ticket.cancel.is_set():
                raise RuntimeStoppedError("the request was cancelled before a worker took it")
            worker = self._take(ticket.give_up)
        except SwitchoverError as error:
            ticket.reply.wake(None, error)
            return
        if ticket.cancel.is_set():
            self._give_back(worker)
            ticket.reply.wake(None, RuntimeStoppedError("the request was cancelled"))
            return
        _send(worker, ticket)


def _send(worker: pykka.ActorRef[Any], ticket: Ticket) -> None:
    """What ActorRef.ask does, with the ticket's answer slot instead of a fresh future."""
    worker.actor_inbox.put(Envelope(ticket.message, reply_to=ticket.reply))


_END = object()
#: How long an idle reader thread waits for another stream before it exits.
READER_IDLE = 10.0


class _Readers:
    """Reusable threads that read committed streams for asyncio callers.

    ``submit`` never blocks the loop: it queues the job, and when no reader is idle it asks
    the spawner thread to start one (``Thread.start`` waits for the new thread to run, which
    under load costs the caller milliseconds). Readers exit after READER_IDLE idle seconds.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._spawns: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._spawner: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:  # an idle reader is one credit; a job takes one or asks for a reader
            grow = self._idle == 0
            if not grow:
                self._idle -= 1
            if self._spawner is None:
                self._spawner = threading.Thread(
                    target=self._spawn, name="switchover-async-spawner", daemon=True
                )
                self._spawner.start()  # once per process
        self._jobs.put(job)
        if grow:
            self._spawns.put(None)

    def _spawn(self) -> None:
        while True:
            self._spawns.get()
            threading.Thread(target=self._read, name="switchover-async-read", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=READER_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue  # a job was counted for this reader: wait for it
            try:
                job()
            except BaseException:  # a job reports its own errors; a reader must survive
                log.exception("an async stream reader failed")
            with self._lock:
                self._idle += 1


_READERS = _Readers()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Pump:
    """Reads a committed stream on its own thread into a buffer the loop drains.

    The thread wakes the loop only when the task is waiting (``_waiter`` set), so a fast
    stream costs one hop per batch of events, not one per event.
    """

    def __init__(self, stream: Stream, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self._lock = threading.Lock()
        self._buffer: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closing = False
        _READERS.submit(self._run)

    def _run(self) -> None:
        item: Any = _END
        try:
            for event in self._stream:
                if self.closing:
                    return
                self._put(event)
        except BaseException as error:  # StreamInterrupted, RuntimeStoppedError: the task's
            item = error
        if not self.closing:
            self._put(item)

    def _put(self, item: Any) -> None:
        with self._lock:
            self._buffer.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                self._loop.call_soon_threadsafe(_wake, waiter)
            except RuntimeError:  # the loop closed under a stream still being read
                self.closing = True

    async def next(self) -> Any:
        """The next buffered event, ``_END``, or the error that ended the stream."""
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
                waiter = self._waiter = self._loop.create_future()
            await waiter


class AsyncStream:
    """A live token stream read from asyncio: ``async for event in stream``.

    The same events, errors and ``served_by`` / ``attempts`` as :class:`Stream`; leaving
    its ``async with`` block (or ``aclose()``, or the task's cancellation) closes the
    connection at once.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._first: Event | None = next(stream)  # held by the commit: no read
        self._pump: _Pump | None = None
        self._ended = False

    def __repr__(self) -> str:
        return f"AsyncStream(served_by={self.served_by!r}, finished={self._ended})"

    @property
    def served_by(self) -> ServedBy:
        """The model, provider and profile serving this stream."""
        return self._stream.served_by

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt the request made, the serving one last."""
        return self._stream.attempts

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Event:
        if self._first is not None:
            event, self._first = self._first, None
            return event
        if self._ended:
            raise StopAsyncIteration
        if self._pump is None:
            self._pump = _Pump(self._stream, asyncio.get_running_loop())
        try:
            item = await self._pump.next()
        except asyncio.CancelledError:
            self.close()
            raise
        if item is _END:
            self._ended = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop reading: release the connection (from the loop, without waiting)."""
        self._ended = True
        self._first = None
        if self._pump is not None:
            self._pump.closing = True
        self._stream.close()  # a read blocked in the pump fails at once and is dropped

    async def aclose(self) -> None:
        """Stop reading: release the connection."""
        self.close()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class OpeningStream:
    """What :meth:`Runtime.astream` returns: ``async with`` it, or ``await`` it."""

    def __init__(self, opening: Coroutine[Any, Any, AsyncStream]) -> None:
        self._opening = opening
        self._stream: AsyncStream | None = None

    def __await__(self) -> Generator[Any, None, AsyncStream]:
        return self._opening.__await__()

    async def __aenter__(self) -> AsyncStream:
        self._stream = await self._opening
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.close()
