"""What every switchover actor shares: a published cell, a flight recorder, crash reports.

Each actor publishes its state to its cell (``actors/_cell.py``) after each change; readers
(chain actors, the debug mailbox when an actor is busy) only ever read a cell.

A crash (an unexpected exception in a handler, from a tell or an ask) stops the actor at
once, even where pykka alone would keep it running (a failed ask), so that a crashed actor
and its replacement never write one cell together. The messages still queued for it go to
the supervisor with the crash report and are re-delivered to the replacement: only the
message that crashed it is lost, and its asker gets the exception.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic

import attrs
import pykka

from .._core._clock import Clock, SystemClock
from .._core._observe import Observer
from .._core._redact import Redactor, scrub
from .._core._snapshot import ActorSnapshot, Handled
from ._cell import Cell, S
from .messages import ActorCrashed, InjectCrash, InjectHold, Inspect, Sync

log = logging.getLogger("switchover.actors")

#: How often someone waiting for an answer checks that the actor it asked is alive.
POLL = 0.05
#: pykka's futures wait in real time, whatever clock the runtime was given.
REAL_TIME = SystemClock()


def summarize(message: object, redact: Redactor, limit: int = 120) -> str:
    """A short one-line description of a message.

    Messages hold no keys, but they do hold what an operator typed (a model to reset), so
    a key pasted there is removed too.
    """
    text = redact.known(repr(message))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def handled(
    recent: collections.abc.Iterable[tuple[object, float, float]],
    *,
    now: float,
    wall: float,
    redact: Redactor,
) -> tuple[Handled, ...]:
    """Render flight-recorder entries; done only when someone looks.

    Entries carry the monotonic time handling began; ``now``/``wall`` (read together) turn
    it into the Unix time an operator can read.
    """
    return tuple(
        Handled(
            type=type(m).__name__,
            summary=summarize(m, redact),
            at=wall - (now - started),
            duration=spent,
        )
        for m, started, spent in recent
    )


def _copy_recent(cell: Cell[Any]) -> tuple[tuple[object, float, float], ...]:
    # Copying a deque is one C call, but a garbage collection inside it can run Python code
    # (a finalizer), let the owning actor append, and make the copy raise; try again then.
    for _ in range(3):
        try:
            return tuple(cell.recent)
        except RuntimeError:
            continue
    return ()


def snapshot_of(
    cell: Cell[Any],
    ref: pykka.ActorRef[Any] | None,
    *,
    clock: Clock,
    redact: Redactor,
    stale: bool,
    queued_inspect: bool = False,
) -> ActorSnapshot:
    """Build an ActorSnapshot from what a cell last published.

    Every string in it goes through ``redact.known``: state holds names (models, profiles)
    that came from callers, and no configured key may show even there.
    ``queued_inspect`` says an Inspect of ours still waits in the mailbox; it is not
    counted in ``mailbox_depth``.
    """
    now, wall = clock.now(), clock.wall()
    published = cell.published  # read once: its state and time belong together
    depth = ref.actor_inbox.qsize() if ref is not None else 0  # type: ignore[attr-defined]
    return ActorSnapshot(
        name=cell.name,
        kind=cell.kind,
        state=scrub(cell.render(published.state, now), redact.known),
        mailbox_depth=max(0, depth - 1) if queued_inspect else depth,
        processed=cell.processed,
        restarts=cell.restarts,
        recent=handled(_copy_recent(cell), now=now, wall=wall, redact=redact),
        stale=stale,
        age=max(0.0, now - published.at) if stale else 0.0,
    )


def ask(ref: pykka.ActorRef[Any], message: object, timeout: float) -> Any:
    """Ask ``ref`` and wait at most ``timeout`` real seconds for the answer.

    pykka answers an ask queued before an actor stops with ActorDeadError, but one that
    slips into the inbox while the actor is stopping is never answered; checking every
    :data:`POLL` seconds that the actor is alive turns that hang into ActorDeadError.

    Raises:
        pykka.Timeout: no answer in time.
        pykka.ActorDeadError: the actor died (or was dead) before answering.
        Exception: whatever the actor's handler raised (it crashed).
    """
    future = ref.ask(message, block=False)
    give_up = REAL_TIME.now() + timeout
    while True:
        left = give_up - REAL_TIME.now()
        try:
            return future.get(timeout=max(0.0, min(POLL, left)))
        except pykka.Timeout:
            if not ref.is_alive():
                try:  # it may have answered on its way out
                    return future.get(timeout=0)
                except pykka.Timeout:
                    raise pykka.ActorDeadError(f"{ref} stopped without answering") from None
            if left <= 0:
                raise


def settle(pending: Iterable[Any], why: str) -> None:
    """Answer every ask among ``pending`` envelopes with ActorDeadError (tells are dropped)."""
    for envelope in pending:
        if envelope.reply_to is not None:
            error = pykka.ActorDeadError(why)
            envelope.reply_to.set_exception(exc_info=(pykka.ActorDeadError, error, None))


def redeliver(ref: pykka.ActorRef[Any], pending: Iterable[Any]) -> None:
    """Queue ``pending`` envelopes (asks keep their askers) for ``ref``, in order."""
    for envelope in pending:
        ref.actor_inbox.put(envelope)


class ActorAborted(Exception):
    """A handler raised a BaseException that is not an Exception; it ends the actor as a
    crash (restarted by its supervisor) instead of reaching pykka."""


@attrs.frozen
class Context:
    """What the supervisor hands every actor it starts."""

    clock: Clock
    on_crash: Callable[[ActorCrashed], None]
    redact: Redactor
    #: Told of every state change; None when nobody watches (the hot path pays one test).
    observer: Observer | None = None


class SwitchoverActor(pykka.ThreadingActor, Generic[S]):
    """Base of the actors (publishing state ``S``): records every message, reports
    crashes, answers Inspect."""

    kind: ClassVar[str]
    # A process that never calls Runtime.stop() must still exit: the interpreter waits
    # for non-daemon threads *before* it runs atexit hooks, so the runtime's own exit
    # hook (which stops the actors cleanly) could never run.
    use_daemon_thread = True

    def __init__(self, cell: Cell[S], context: Context) -> None:
        super().__init__()
        self.cell = cell
        self.clock = context.clock
        self.redact = context.redact
        self.observer = context.observer
        self._on_crash = context.on_crash

    def on_start(self) -> None:
        self.cell.thread = threading.current_thread()

    def publish(self, state: S) -> None:
        """Make ``state`` (a frozen value) what readers and restarts see."""
        self.cell.publish(state, self.clock.now())

    def handle(self, message: Any) -> Any:
        raise NotImplementedError

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Sync):
            return None  # a barrier: its answer says everything before it was handled
        if isinstance(message, Inspect):
            # Not recorded: looking at an actor must not push its real history out.
            return snapshot_of(
                self.cell, self.actor_ref, clock=self.clock, redact=self.redact, stale=False
            )
        started = self.clock.now()
        try:
            if isinstance(message, InjectCrash):
                raise RuntimeError(message.reason)
            if isinstance(message, InjectHold):
                message.entered.set()
                message.release.wait()
                return None
            return self.handle(message)
        except BaseException as error:
            log.error(
                "%s crashed handling %s: %s",
                self.cell.name,
                type(message).__name__,
                type(error).__name__,
            )
            self._crash(error)
            if isinstance(error, Exception):
                raise
            # pykka answers a BaseException that is not an Exception (SystemExit,
            # CancelledError, a library's own) by stopping every actor of the process,
            # other runtimes' included: it leaves this actor as an ordinary crash.
            raise ActorAborted(f"{self.cell.name}: {type(error).__name__}") from None
        finally:
            cell = self.cell
            cell.processed += 1
            cell.recent.append((message, started, self.clock.now() - started))

    def _crash(self, error: BaseException) -> None:
        """Stop taking messages now and report, with everything still queued."""
        # What pykka does for a failed tell, done for a failed ask too. After this no
        # sender can queue anything (refs check actor_stopped first) except one that
        # raced the check; its ask is caught by ask()'s liveness polling.
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        pending = []
        inbox = self.actor_inbox
        while not inbox.empty():  # this thread is the only reader: get() cannot block
            pending.append(inbox.get())
        self._on_crash(
            ActorCrashed(
                name=self.cell.name,
                error=type(error).__name__,
                urn=self.actor_urn,
                pending=tuple(pending),
            )
        )
