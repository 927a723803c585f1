"""The Runtime facade: the one object an application holds."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import itertools
import logging
import os
import queue
import random
import threading
import weakref
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import attrs
import httpx
import pykka

from ._async import AsyncStream, Dispatcher, OpeningStream, Orphaned, Ticket
from ._core._clock import Clock, SystemClock, default_rng
from ._core._config import Config, build_chain, configured_models, resolve_model
from ._core._errors import (
    ChainExhausted,
    ConfigError,
    DeadlineExceeded,
    RequestRejected,
    RuntimeStoppedError,
    SwitchoverError,
)
from ._core._observe import Observer, Observers, RequestClosed, RequestOpened, Terminal
from ._core._policy import HEALTHY, model_view
from ._core._redact import RecordScrubber, Redactor
from ._core._remote import Remote, RemoteModel
from ._core._snapshot import ActorSnapshot, RuntimeSnapshot
from ._core._types import Collector, Completion, ModelHealth, Request
from ._debug import DebugServer
from ._logs import FailoverLog
from ._metrics import Metrics, MetricsCollector
from ._stream import Stream
from ._timeline import Timeline
from ._tracing import Tracing
from ._tracing import installed as tracing_installed
from ._transport import AsyncTransport, Transport
from .actors import Supervisor
from .actors._base import REAL_TIME, ask, snapshot_of
from .actors._directory import HEALTH, profile_name
from .actors.messages import (
    Committed,
    Failed,
    InjectCrash,
    InjectHold,
    Inspect,
    RemoteKeyState,
    RemoteModelState,
    ResetKey,
    ResetModel,
    RunRequest,
)
from .providers._http import http_provider
from .providers._seam import Provider

if TYPE_CHECKING:
    from ._shared import SharedLink

log = logging.getLogger("switchover")

#: Extra time a caller waits past its deadline for a chain actor's answer.
ANSWER_GRACE = 5.0
#: How long an operator call (reset, inspect) waits for an actor.
OPERATOR_TIMEOUT = 2.0
#: How long inspect() waits for live answers before using published snapshots (the
#: whole call stays well inside 50 ms even when an actor is stuck).
INSPECT_BUDGET = 0.025
#: How many times one request is walked again after its chain worker crashed under it.
CRASH_RETRIES = 1
_FORKED = (
    "this runtime was created in another process; create the Runtime after forking "
    "(its actor threads do not survive os.fork())"
)
#: Runtimes started and not stopped yet, stopped by :func:`_stop_at_exit`. Strong
#: references: a running runtime's actors live on whether or not anyone holds it.
_RUNNING: set[Runtime] = set()
_TERMINAL: tuple[tuple[type[BaseException], Terminal], ...] = (
    (RequestRejected, "rejected"),
    (ChainExhausted, "exhausted"),
    (DeadlineExceeded, "deadline"),
    (RuntimeStoppedError, "stopped"),
)


class Runtime:
    """The failover runtime: start it, stream through it from any thread, stop it.

    Example:
        >>> with Runtime(config) as rt:
        ...     with rt.stream(Request(model="openai/gpt-4o", messages=msgs)) as stream:
        ...         for event in stream: ...

    Args:
        config: the validated configuration.
        providers: adapters by provider name, replacing the built-in HTTP adapters (tests
            pass :class:`runtime.testing.ScriptedProvider`).
        clock: the time source (default: ``time.monotonic`` read at call time).
        rng: the randomness for jitter (default: seeded from the OS).
        observers: :class:`switchover.Observer` instances told of every request, call and
            state change (the history checker, metrics and log lines are observers).
        metrics: count requests, calls, failovers and state changes for Prometheus (the
            ``metrics`` extra); see :meth:`metrics_collector` and ``GET /metrics``.
        tracing: make OpenTelemetry spans when opentelemetry-api is installed (the
            ``otel`` extra); without a configured tracer provider they cost next to nothing.
        tracer_provider: the provider for those spans (default: the global one).
    """

    def __init__(
        self,
        config: Config,
        *,
        providers: Mapping[str, Provider] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        observers: Iterable[Observer] = (),
        metrics: bool = False,
        tracing: bool = True,
        tracer_provider: Any = None,
    ) -> None:
        if not isinstance(config, Config):
            raise TypeError(f"Runtime needs a Config, not {type(config).__name__}")
        self.config = config
        self._configured = configured_models(config)  # what health() always lists
        self._clock = clock or SystemClock()
        self._rng = rng or default_rng()
        self._given = dict(providers or {})
        self._providers: dict[str, Provider] = {}
        self._supervisor: Supervisor | None = None
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()  # start/stop only; never taken on a request path
        self._ids = itertools.count(1)
        self._pid = os.getpid()
        redact = Redactor(config.secrets())
        self._metrics = Metrics(config, redact) if metrics else None
        self._timeline = Timeline(self._clock, redact)
        builtin: list[Observer] = [FailoverLog(redact), self._timeline]
        if self._metrics is not None:
            builtin.append(self._metrics)
        if tracer_provider is not None or (tracing and tracing_installed()):
            builtin.append(Tracing(config, redact, tracer_provider))
        given = Observers(observers)  # refuses a bad argument with a clear error
        # Always some: the log lines and the timeline watch every runtime.
        #: Shares key and model state with other processes (None: learn alone).
        self._link = _shared_link(config, self._clock, self._rng)
        if self._link is not None:
            builtin.append(self._link)
        self._observer: Observer = Observers([*builtin, given] if given else builtin)
        self._debug_servers: list[DebugServer] = []
        self._scrubber: RecordScrubber | None = None
        # asyncio: the dispatcher thread (started by the first awaited request) and the
        # cancel flags of awaited requests still alive, which stop() sets.
        self._async_dispatcher: Dispatcher | None = None
        self._dispatch_lock = threading.Lock()
        self._cancels: weakref.WeakSet[threading.Event] = weakref.WeakSet()
        # actor name -> (ref, future) of an Inspect not answered yet. Reusing it keeps a
        # stuck actor's mailbox from filling with our own inspects. Plain dict operations
        # (atomic); a race only sends one extra Inspect.
        self._inspecting: dict[str, tuple[pykka.ActorRef[Any], pykka.Future[Any]]] = {}

    def __repr__(self) -> str:
        state = "running" if self._supervisor is not None else "stopped"
        return f"Runtime({len(self.config.providers)} providers, {state})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Runtime:
        """Start the actors. Returns self; starting a running runtime does nothing."""
        with self._lifecycle:
            if self._supervisor is not None:
                if os.getpid() != self._pid:
                    raise RuntimeStoppedError(_FORKED)
                return self
            if self._stopping.is_set():
                raise RuntimeStoppedError("this runtime was stopped; create a new one")
            self._pid = os.getpid()
            redact = Redactor(self.config.secrets())
            self._scrubber = RecordScrubber(redact)
            self._scrubber.install()
            self._providers = {
                p.name: self._given.get(p.name)
                or http_provider(
                    p, workers=self.config.chain_workers, clock=self._clock, redact=redact
                )
                for p in self.config.providers
            }
            supervisor = Supervisor(
                self.config,
                self._providers,
                clock=self._clock,
                rng=self._rng,
                observer=self._observer,
            )
            supervisor.start()
            self._supervisor = supervisor
            if self._link is not None:
                self._link.start(functools.partial(_deliver_remote, supervisor, self._link))
            _RUNNING.add(self)
        return self

    def stop(self) -> None:
        """Stop every actor thread and release connections. Idempotent.

        Requests waiting for a chain worker fail at once with RuntimeStoppedError; walks
        in progress see the stop, return RuntimeStoppedError and let their actor stop.
        In a child process after ``os.fork()`` it only forgets the parent's actors.
        """
        with self._lifecycle:
            self._stopping.set()
            _RUNNING.discard(self)
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is None or os.getpid() != self._pid:
                return  # a forked child owns none of the parent's threads or sockets
            if self._link is not None:
                self._link.stop()
            for server in self._debug_servers:
                server.close()
            self._debug_servers.clear()
            for cancel in list(self._cancels):
                cancel.set()
            for name, provider in self._providers.items():
                if name not in self._given:
                    provider.close()
            supervisor.stop()
            if self._scrubber is not None:
                self._scrubber.remove()
            if self._async_dispatcher is not None:
                self._async_dispatcher.close()

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> Supervisor:
        supervisor = self._supervisor
        if supervisor is None:
            raise RuntimeStoppedError(
                "the runtime is not running: call start() or use it as a context manager"
            )
        if os.getpid() != self._pid:
            raise RuntimeStoppedError(_FORKED)
        return supervisor

    # -- requests ----------------------------------------------------------------------------

    def stream(self, request: Request) -> Stream:
        """Walk the request's chain; return once an attempt has committed.

        Raises:
            RequestRejected: the request cannot succeed anywhere (checked before any call
                for unknown providers; after a call for context or malformed-request errors).
            ChainExhausted: every entry failed or was cooling.
            DeadlineExceeded: the request's timeout ran out.
            RuntimeStoppedError: the runtime is not running.
        """
        supervisor = self._running()
        if not isinstance(request, Request):
            raise TypeError(f"stream() needs a Request, not {type(request).__name__}")
        chain = build_chain(self.config, request)
        timeout = request.timeout if request.timeout is not None else self.config.request_timeout
        deadline = self._clock.now() + timeout
        message = RunRequest(
            request_id=next(self._ids),
            request=request,
            chain=chain,
            deadline=deadline,
            cancel=self._stopping,
        )
        self._opened(message, None)
        try:
            answer = self._dispatch(supervisor, message, timeout)
        except BaseException as error:
            self._closed(message.request_id, _terminal(error), error)
            raise
        if isinstance(answer, Failed):
            self._closed(answer.request_id, _terminal(answer.error), answer.error)
            raise answer.error
        return self._stream_of(supervisor, answer)

    def _dispatch(
        self, supervisor: Supervisor, message: RunRequest, timeout: float
    ) -> Committed | Failed:
        """Hand the request to an idle chain worker and wait for its answer.

        A worker that turns out dead (a stale ref of a crashed worker, or one stopping)
        never handled the message, so the next idle worker gets it. A worker that crashes
        while walking the request is replaced by the supervisor and the request is walked
        again, under a new id, at most CRASH_RETRIES times.
        """
        give_up = REAL_TIME.now() + timeout
        crashes = 0
        while True:
            worker = self._idle_worker(supervisor, give_up)
            try:
                answer = ask(worker, message, max(0.0, give_up - REAL_TIME.now()) + ANSWER_GRACE)
            except pykka.ActorDeadError:
                if self._stopping.is_set():
                    raise RuntimeStoppedError("the runtime stopped during the request") from None
                continue
            except pykka.Timeout:
                raise DeadlineExceeded("the request's deadline passed with no answer") from None
            except Exception as error:
                crashes += 1
                retry = self._walk_again(message, error, crashes, give_up)
                if retry is None:
                    raise _crashed_too_often(error, crashes) from None
                message = retry
                continue
            assert isinstance(answer, (Committed, Failed))
            return answer

    def _walk_again(
        self, message: RunRequest, error: Exception, crashes: int, give_up: float
    ) -> RunRequest | None:
        """After a chain worker crashed walking ``message``: the same request under a new
        id, or None once it has crashed too many workers or its time is up."""
        log.error("chain worker crashed walking a request: %s", type(error).__name__)
        if crashes > CRASH_RETRIES or REAL_TIME.now() >= give_up:
            return None
        self._closed(message.request_id, "crashed")
        retry = attrs.evolve(message, request_id=next(self._ids))
        self._opened(retry, message.request_id)
        return retry

    def _idle_worker(self, supervisor: Supervisor, give_up: float) -> pykka.ActorRef[Any]:
        while True:
            try:
                worker = supervisor.idle.get(timeout=max(0.0, give_up - REAL_TIME.now()))
            except queue.Empty:
                raise DeadlineExceeded(
                    "no chain worker became free before the request's deadline"
                ) from None
            if worker is None or self._stopping.is_set():
                supervisor.idle.put(worker)  # the None wakes the next waiter too
                raise RuntimeStoppedError("the runtime is stopping")
            if worker.is_alive():
                return worker
            # A crashed worker's stale ref: its replacement is in the queue on its own.

    def _idle_now(self, supervisor: Supervisor) -> pykka.ActorRef[Any] | None:
        """An idle chain worker without waiting, or None (see :meth:`_idle_worker`)."""
        while True:
            try:
                worker = supervisor.idle.get_nowait()
            except queue.Empty:
                return None
            if worker is None or self._stopping.is_set():
                supervisor.idle.put(worker)
                return None
            if worker.is_alive():
                return worker

    def _opened(self, message: RunRequest, retry_of: int | None) -> None:
        self._observer.request_opened(
            RequestOpened(
                request_id=message.request_id,
                chain=tuple(entry.key for entry in message.chain),
                deadline=message.deadline,
                at=self._clock.now(),
                retry_of=retry_of,
            )
        )

    def _closed(
        self, request_id: int, outcome: Terminal, error: BaseException | None = None
    ) -> None:
        retry_after = error.retry_after if isinstance(error, ChainExhausted) else None
        self._observer.request_closed(
            RequestClosed(request_id, outcome, self._clock.now(), retry_after)
        )

    # -- asyncio (see _async.py for how a request travels) ------------------------------------

    def astream(self, request: Request) -> OpeningStream:
        """:meth:`stream` for asyncio: ``async with rt.astream(req) as stream`` (or await it).

        No thread is held while the request waits for its commit, and the event loop never
        blocks. Cancelling the task (a timeout, a client that went away) stops the walk and
        frees its chain worker; a stream it already had is closed.

        Example:
            >>> async with rt.astream(request) as stream:
            ...     async for event in stream: ...

        Raises:
            The errors of :meth:`stream`, when awaited.
        """
        return OpeningStream(self._aopen(request))

    async def acomplete(self, request: Request) -> Completion:
        """:meth:`complete` for asyncio."""
        collector = Collector()
        async with self.astream(request) as stream:
            async for event in stream:
                collector.add(event)
            return collector.completion(stream.served_by, stream.attempts)

    async def _aopen(self, request: Request) -> AsyncStream:
        supervisor = self._running()
        if not isinstance(request, Request):
            raise TypeError(f"astream() needs a Request, not {type(request).__name__}")
        chain = build_chain(self.config, request)
        timeout = request.timeout if request.timeout is not None else self.config.request_timeout
        # Its own cancel flag, so that the task's cancellation stops only its own walk; the
        # runtime sets every live one when it stops (a weak set: no bookkeeping per request).
        cancel = threading.Event()
        self._cancels.add(cancel)
        if self._stopping.is_set():
            cancel.set()
        message = RunRequest(
            request_id=next(self._ids),
            request=request,
            chain=chain,
            deadline=self._clock.now() + timeout,
            cancel=cancel,
        )
        self._opened(message, None)
        answer = await self._aanswer(supervisor, message, timeout)
        if isinstance(answer, Failed):
            self._closed(answer.request_id, _terminal(answer.error))
            raise answer.error
        return AsyncStream(self._stream_of(supervisor, answer))

    async def _aanswer(
        self, supervisor: Supervisor, message: RunRequest, timeout: float
    ) -> Committed | Failed:
        """:meth:`_dispatch` for asyncio: the same pool, the same crash and death rules."""
        give_up = REAL_TIME.now() + timeout
        crashes = 0
        while True:
            if self._stopping.is_set():
                self._closed(message.request_id, "stopped")
                raise RuntimeStoppedError("the runtime is stopping")
            ticket = Ticket(
                message, give_up, message.cancel, self._orphaned(supervisor, message.request_id)
            )
            self._dispatcher(supervisor).submit(ticket)
            try:
                async with asyncio.timeout(max(0.0, give_up - REAL_TIME.now()) + ANSWER_GRACE):
                    answer = await ticket.answer
            except pykka.ActorDeadError:
                if self._stopping.is_set():
                    self._closed(message.request_id, "stopped")
                    raise RuntimeStoppedError("the runtime stopped during the request") from None
                continue  # a dead worker never handled it: the next idle one gets it
            except SwitchoverError as error:  # from the dispatcher: no worker in time
                self._closed(message.request_id, _terminal(error))
                raise
            except TimeoutError:
                # The late answer, if any, is released and closes the request.
                message.cancel.set()
                raise DeadlineExceeded("the request's deadline passed with no answer") from None
            except asyncio.CancelledError:
                message.cancel.set()  # stop the walk and free the worker; the answer closes it
                raise
            except Exception as error:
                crashes += 1
                retry = self._walk_again(message, error, crashes, give_up)
                if retry is None:
                    self._closed(message.request_id, "failed")
                    raise _crashed_too_often(error, crashes) from None
                message = retry
                continue
            assert isinstance(answer, (Committed, Failed))
            return answer

    def _orphaned(self, supervisor: Supervisor, request_id: int) -> Orphaned:
        """Release an answer whose task stopped waiting: its stream, and the request."""

        def release(answer: Any, error: BaseException | None) -> None:
            if isinstance(answer, Committed):
                self._stream_of(supervisor, answer).close()
            elif isinstance(answer, Failed):
                self._closed(answer.request_id, _terminal(answer.error))
            elif not isinstance(error, pykka.ActorDeadError):
                self._closed(request_id, "released")

        return release

    def _stream_of(self, supervisor: Supervisor, answer: Committed) -> Stream:
        return Stream(
            answer,
            supervisor.directory,
            self._stopping,
            supervisor.redact,
            clock=self._clock,
            observer=self._observer,
        )

    def _dispatcher(self, supervisor: Supervisor) -> Dispatcher:
        dispatcher = self._async_dispatcher
        if dispatcher is None:
            with self._dispatch_lock:
                if self._async_dispatcher is None:
                    self._async_dispatcher = Dispatcher(
                        lambda give_up: self._idle_worker(supervisor, give_up),
                        lambda: self._idle_now(supervisor),
                        supervisor.idle.put,
                    )
                dispatcher = self._async_dispatcher
        return dispatcher

    # -- drop-in transports for the official SDKs (see _transport.py) -----------------------

    def transport(self) -> httpx.BaseTransport:
        """An httpx transport that answers the openai and anthropic SDKs through the chain.

        Example:
            >>> client = openai.OpenAI(api_key="unused", base_url="http://switchover/v1",
            ...     http_client=httpx.Client(transport=rt.transport()))
        """
        return Transport(self)

    def async_transport(self) -> httpx.AsyncBaseTransport:
        """:meth:`transport` for ``httpx.AsyncClient`` (``AsyncOpenAI``, ``AsyncAnthropic``)."""
        return AsyncTransport(self)

    def complete(self, request: Request) -> Completion:
        """Stream the request to its end and return the whole answer."""
        collector = Collector()
        with self.stream(request) as stream:
            for event in stream:
                collector.add(event)
            return collector.completion(stream.served_by, stream.attempts)

    # -- operators ---------------------------------------------------------------------------

    def health(self) -> dict[str, ModelHealth]:
        """Every known model's health: configured fallbacks and aliases, and every model
        that has failed. Read from the HealthActor's published table (no message)."""
        supervisor = self._running()
        table = supervisor.directory.health_table()
        models = self._configured | set(table)
        now = self._clock.now()
        health = {m: model_view(m, table.get(m, HEALTHY), now) for m in sorted(models)}
        if self._link is None:
            return health
        up = self._link.up
        return {m: attrs.evolve(view, shared_link=up) for m, view in health.items()}

    def reset(self, model: str | None = None) -> None:
        """Make ``model`` (a model string or alias) healthy again; with no argument, reset
        everything: every model healthy, every key out of cooldown.

        Raises:
            KeyError: ``model`` is not one :meth:`health` lists (it names no configured
                provider, or it never failed and is no configured fallback or alias).
        """
        supervisor = self._running()
        if model is None:
            self._operator_ask(supervisor, HEALTH, ResetModel(None))
            for provider in self.config.providers:
                for profile in provider.profiles:
                    self._operator_ask(supervisor, profile_name(provider.name, profile), ResetKey())
            return
        try:
            key = resolve_model(self.config, model).key
        except SwitchoverError as error:
            raise KeyError(str(error)) from None
        had_row = self._operator_ask(supervisor, HEALTH, ResetModel(key))
        if not had_row and key not in self._configured:
            shown = supervisor.redact(model)
            raise KeyError(f"model {shown!r} is not in the health table (see health())")

    def reset_profile(self, provider: str, profile: str) -> None:
        """Take one key out of cooldown and clear its failure count.

        Raises:
            KeyError: no such provider/profile.
        """
        supervisor = self._running()
        name = profile_name(provider, profile)
        if name not in supervisor.directory.members:
            shown = supervisor.redact(f"{provider}/{profile}")
            raise KeyError(f"no key profile {shown!r} is configured")
        self._operator_ask(supervisor, name, ResetKey())

    def _operator_ask(self, supervisor: Supervisor, name: str, message: object) -> Any:
        try:
            return supervisor.directory.ask(name, message, OPERATOR_TIMEOUT)
        except pykka.ActorDeadError:
            raise RuntimeStoppedError("the runtime stopped before the actor answered") from None
        except pykka.Timeout:
            raise SwitchoverError(
                f"actor {name} did not answer within {OPERATOR_TIMEOUT}s"
            ) from None
        except Exception as error:
            raise SwitchoverError(
                f"actor {name} failed ({type(error).__name__}); it is being restarted"
            ) from None

    def inspect(self, *, ask: bool = True) -> RuntimeSnapshot:
        """A snapshot of every actor, within about INSPECT_BUDGET seconds.

        Every actor is asked at once; an actor that does not answer within the budget (a
        deep mailbox, a handler still running) is shown from the state it last published,
        marked ``stale`` with that state's ``age``. ``ask=False`` sends no message at all
        and shows every actor as it last published (all ``stale``): for a monitor that
        polls often and must not queue work in front of requests.
        """
        supervisor = self._running()
        members = dict(supervisor.directory.members)
        futures = {
            name: self._ask_inspect(name, member.ref) if ask else None
            for name, member in members.items()
        }
        budget_end = REAL_TIME.now() + INSPECT_BUDGET
        snapshots: list[ActorSnapshot] = []
        for name, member in members.items():
            future = futures[name]
            snapshot: object = None
            waiting = False
            if future is not None:
                try:
                    snapshot = future.get(timeout=max(0.0, budget_end - REAL_TIME.now()))
                except pykka.Timeout:
                    waiting = True
                except Exception:  # the actor died or crashed answering: use its cell
                    snapshot = None
                if not waiting:
                    self._inspecting.pop(name, None)
            if not isinstance(snapshot, ActorSnapshot):
                snapshot = snapshot_of(
                    member.cell,
                    member.ref,
                    clock=self._clock,
                    redact=supervisor.redact,
                    stale=True,
                    queued_inspect=waiting,
                )
            snapshots.append(snapshot)
        if self._link is not None:
            snapshots.append(self._link.snapshot())
        return RuntimeSnapshot(actors=tuple(snapshots), taken_at=self._clock.wall())

    def _ask_inspect(self, name: str, ref: pykka.ActorRef[Any] | None) -> pykka.Future[Any] | None:
        """The actor's Inspect future: one still unanswered from an earlier call, or new."""
        if ref is None:
            return None
        pending = self._inspecting.get(name)
        if pending is not None and pending[0] is ref:
            try:
                pending[1].get(timeout=0)
            except pykka.Timeout:
                return pending[1]  # still queued: wait for that one, send no other
            except Exception:
                pass
            # Answered since: that snapshot is as old as the answer, so ask afresh.
        try:
            future = ref.ask(Inspect(), block=False)
        except pykka.ActorDeadError:
            self._inspecting.pop(name, None)
            return None
        self._inspecting[name] = (ref, future)
        return future

    def transitions(self) -> list[dict[str, Any]]:
        """The last key and model state changes, oldest first, as plain JSON values:
        ``at`` (Unix time), ``what`` (``key`` or ``model``), ``name``, ``state``, ``cause``,
        ``kind`` (the error kind, after a failure) and ``seconds`` (the cooldown's length)."""
        return self._timeline.recent()

    def metrics_collector(self) -> MetricsCollector:
        """A Prometheus collector of this runtime's metrics, for any registry.

        Example:
            >>> rt = Runtime(config, metrics=True).start()
            >>> prometheus_client.REGISTRY.register(rt.metrics_collector())

        Raises:
            ConfigError: the runtime was made without ``metrics=True``.
        """
        if self._metrics is None:
            raise ConfigError("metrics", "this runtime was made without metrics=True")
        return MetricsCollector(self, self._metrics)

    def serve_debug(
        self, host: str = "127.0.0.1", port: int = 0, token: str | None = None
    ) -> DebugServer:
        """Serve the debug mailbox over HTTP from a background thread until closed or stopped.

        Example:
            >>> server = rt.serve_debug()        # loopback, a free port
            >>> server.url                       # 'http://127.0.0.1:54321'

        Args:
            host: the address to bind; anything but loopback requires ``token``.
            port: the port (0: a free one, see ``.url``).
            token: when set, every request needs ``Authorization: Bearer <token>``.

        Raises:
            ConfigError: a non-loopback ``host`` without a token, or a malformed token.
            RuntimeStoppedError: the runtime is not running.
        """
        with self._lifecycle:
            self._running()
            server = DebugServer(self, host=host, port=port, token=token)
            self._debug_servers.append(server)
        return server

    # -- the testing seam (switchover.testing.inject_crash / inject_hold) ----------------------

    def _inject_crash(self, name: str, via: Literal["tell", "ask"], wait: bool) -> None:
        supervisor = self._running()
        member = supervisor.directory.members[name]  # KeyError for a name no actor has
        assert member.ref is not None
        urn = member.ref.actor_urn
        if via == "ask":
            with contextlib.suppress(Exception):  # the crash comes back as the answer
                ask(member.ref, InjectCrash(), OPERATOR_TIMEOUT)
        else:
            supervisor.directory.tell(name, InjectCrash())
        if wait and not supervisor.wait_replaced(name, urn, OPERATOR_TIMEOUT):
            raise SwitchoverError(f"actor {name} was not restarted within {OPERATOR_TIMEOUT}s")

    def _inject_hold(self, name: str, release: threading.Event) -> threading.Event:
        supervisor = self._running()
        supervisor.directory.members[name]  # KeyError for a name no actor has
        hold = InjectHold(release=release)
        supervisor.directory.tell(name, hold)
        return hold.entered


def _deliver_remote(supervisor: Supervisor, link: SharedLink, record: Remote) -> None:
    """Hand another process's transition to the actor that owns the state (never waits)."""
    grace = link.shared.probe_grace
    if isinstance(record, RemoteModel):
        supervisor.directory.tell(HEALTH, RemoteModelState(record, grace))
        return
    for provider, profile in link.holders.get(record.target, ()):
        supervisor.directory.tell(profile_name(provider, profile), RemoteKeyState(record, grace))


def _shared_link(config: Config, clock: Clock, rng: random.Random) -> SharedLink | None:
    if config.shared is None:
        return None
    try:
        from ._shared import SharedLink
    except ImportError as error:
        raise ConfigError(
            "shared", f"needs the redis package ({error}): pip install 'switchover[shared]'"
        ) from None
    return SharedLink(config, clock=clock, rng=rng)


@atexit.register
def _stop_at_exit() -> None:
    """Stop every runtime still running when the interpreter exits (a script that never
    called stop(), or died before it did): in-flight requests end typed, threads end."""
    for runtime in list(_RUNNING):
        try:
            runtime.stop()
        except Exception:  # exiting anyway; one runtime's trouble must not skip the rest
            log.exception("stopping a runtime at exit failed")


def _crashed_too_often(error: Exception, crashes: int) -> SwitchoverError:
    return SwitchoverError(
        f"the request crashed {crashes} chain workers ({type(error).__name__}); "
        "this is a switchover bug"
    )


def _terminal(error: BaseException) -> Terminal:
    """The history's name for how a request that raised ``error`` ended."""
    return next((name for cls, name in _TERMINAL if isinstance(error, cls)), "failed")
