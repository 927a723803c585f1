"""The committed stream the caller reads, on its own thread, with no hop per chunk."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import NoReturn

import attrs

from ._core._classify import Failure
from ._core._clock import Clock
from ._core._errors import RuntimeStoppedError, StreamInterrupted
from ._core._observe import AttemptRecord, CallOutcome, Observer, RequestClosed, Terminal
from ._core._redact import Redactor, redacted_traceback
from ._core._types import Attempt, Done, Event, ServedBy, TextDelta, Usage
from ._core._vocab import ErrorKind
from .actors import Directory
from .actors._directory import HEALTH, profile_name
from .actors._report import model_report
from .actors.messages import Committed, KeyFailed, KeyOutcome, KeyReleased, KeySucceeded
from .providers._seam import ProviderFailure

log = logging.getLogger("switchover")

_CALL_OUTCOME: dict[type[KeyOutcome], CallOutcome] = {
    KeySucceeded: "ok",
    KeyFailed: "error",
    KeyReleased: "released",
}
#: What a caller's thread lets through from a provider's stream untouched.
EXIT_SIGNALS = (KeyboardInterrupt, SystemExit)
FORKED_STREAM = (
    "this stream was opened in another process; its connection belongs to the parent "
    "(open streams after forking)"
)


class Stream:
    """A live token stream from the attempt that committed.

    Iterate it for ``TextDelta | ReasoningDelta | ToolCall | Done`` events. A failure after
    commit raises :class:`StreamInterrupted` (never another provider's output). Closing it
    early (or leaving its ``with`` block) closes the connection at once.

    Example:
        >>> with rt.stream(request) as stream:
        ...     for event in stream:
        ...         print(event)
    """

    def __init__(
        self,
        committed: Committed,
        directory: Directory,
        stopping: threading.Event,
        redact: Redactor,
        *,
        clock: Clock,
        observer: Observer | None = None,
    ) -> None:
        self._committed = committed
        self._redact = redact
        self._directory = directory
        self._stopping = stopping
        self._clock = clock
        self._observer = observer
        self._pending: Event | None = committed.first
        self._source: Iterator[Event] = committed.stream
        self._attempts = committed.attempts
        self._text: list[str] = []
        self._finished = False
        self._pid = os.getpid()
        # The stream is made as the committed answer reaches the caller: its first event's time.
        self._first_at = clock.now() if observer is not None else None
        self._usage: Usage | None = None

    def __repr__(self) -> str:
        return f"Stream(served_by={self.served_by!r}, finished={self._finished})"

    @property
    def served_by(self) -> ServedBy:
        """The model, provider and profile serving this stream."""
        return self._committed.served_by

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt the request made, the serving one last."""
        return self._attempts

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Event:
        if self._pending is not None:
            event, self._pending = self._pending, None
            return self._track(event)
        if self._finished:
            raise StopIteration
        if os.getpid() != self._pid:
            raise RuntimeStoppedError(FORKED_STREAM)
        try:
            event = next(self._source)
        except StopIteration:
            failure = Failure(
                kind=ErrorKind.TRANSIENT, message="the stream ended without a clean end"
            )
        except ProviderFailure as error:
            failure = error.failure
        except EXIT_SIGNALS:
            # Ctrl-C or a signal handler's sys.exit() landing in the caller's own read: the
            # caller's to handle; the call counts as neither good nor bad.
            self.close()
            raise
        except BaseException as error:  # an adapter bug still ends the stream cleanly for us
            log.error(
                "provider stream raised unexpectedly: %s", redacted_traceback(error, self._redact)
            )
            failure = Failure(
                kind=ErrorKind.UNKNOWN, message=f"adapter error: {type(error).__name__}"
            )
        else:
            return self._track(event)
        # Raised outside the except clauses, so the public error has no __context__: the
        # adapter's exception may quote the key, and an httpx one holds the request.
        self._interrupt(failure)

    def _track(self, event: Event) -> Event:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, Done):
            self._usage = event.usage
            self._finish(KeySucceeded(*self._call_of()))
        return event

    def _interrupt(self, failure: Failure) -> NoReturn:
        failure = attrs.evolve(failure, message=self._redact(failure.message))
        model, began_at = self._call_of()
        self._finish(KeyFailed(model, failure, began_at))
        self._attempts = (*self._attempts[:-1], self._attempts[-1].failed(failure))
        if self._stopping.is_set():
            raise RuntimeStoppedError("the runtime stopped while the stream was being read")
        raise StreamInterrupted(
            f"the stream from {self.served_by.model} broke after it had started: {failure.message}",
            partial_text="".join(self._text),
            served_by=self.served_by,
            kind=failure.kind,
        )

    def _call_of(self) -> tuple[str, float]:
        """The committed call's model and when its gates were read, for its outcome."""
        return self._committed.entry.key, self._committed.gate_at

    def _finish(self, outcome: KeyOutcome) -> None:
        """Close the connection and report the outcome to the key and the model, once."""
        if self._finished:
            return
        self._finished = True
        try:
            self._source_close()
        finally:  # a Ctrl-C inside close() must not lose the outcome
            self._report(outcome)

    def _report(self, outcome: KeyOutcome) -> None:
        committed = self._committed
        served = committed.served_by
        self._directory.tell(profile_name(served.provider, served.profile), outcome)
        report = model_report(
            outcome,
            probe=committed.probe,
            table=self._directory.health_table(),
        )
        if report is not None:
            self._directory.tell(HEALTH, report)
        if self._observer is not None:
            self._record(self._observer, outcome)

    def _record(self, observer: Observer, outcome: KeyOutcome) -> None:
        committed = self._committed
        ended = self._clock.now()
        usage = self._usage
        failure = outcome.failure if isinstance(outcome, KeyFailed) else None
        observer.attempt_ended(
            AttemptRecord(
                request_id=committed.request_id,
                model=committed.entry.key,
                provider=committed.served_by.provider,
                profile=committed.served_by.profile,
                outcome=_CALL_OUTCOME[type(outcome)],
                kind=failure.kind if failure is not None else None,
                probe=committed.probe,
                gate_at=committed.gate_at,
                start=committed.started,
                end=ended,
                first_at=self._first_at,
                input_tokens=None if usage is None else usage.input_tokens,
                output_tokens=None if usage is None else usage.output_tokens,
            )
        )
        terminal: Terminal = "served" if isinstance(outcome, KeySucceeded) else "released"
        if failure is not None:
            terminal = "stopped" if self._stopping.is_set() else "interrupted"
        observer.request_closed(RequestClosed(committed.request_id, terminal, ended))

    def _source_close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            try:
                close()
            except EXIT_SIGNALS:
                raise
            except BaseException as error:
                log.error(
                    "closing a provider stream raised: %s", redacted_traceback(error, self._redact)
                )

    def close(self) -> None:
        """Stop reading: release the connection; the outcome counts as neither good nor bad.

        In a child process after ``os.fork()`` it only forgets the stream: the connection
        and the actors are the parent's.
        """
        self._pending = None
        if os.getpid() != self._pid:
            self._finished = True
            return
        self._finish(KeyReleased(*self._call_of()))

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_finished", True):
            self.close()
