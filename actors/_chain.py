"""ChainActor: walks one request's chain at a time until an attempt commits.

It is the only actor that asks other actors (for a key or model permit, with a timeout),
and the only one that blocks on I/O: the provider call it exists for. Everything it learns
goes back to the owning actors as tells; it keeps no state between requests.
"""

from __future__ import annotations

import logging
import queue
import random
from collections.abc import Mapping
from typing import Any

import attrs
import pykka

from .._core._classify import Failure
from .._core._config import ChainEntry, Config
from .._core._errors import ChainExhausted, DeadlineExceeded, RequestRejected, RuntimeStoppedError
from .._core._observe import AttemptRecord
from .._core._policy import KEY_KINDS, key_gate, model_gate, retry_delay
from .._core._redact import Redactor, redacted_traceback
from .._core._types import Attempt, Event, ServedBy
from .._core._vocab import ErrorKind, HealthState
from ..providers._seam import EventStream, Provider, ProviderCall, ProviderFailure
from ._base import Cell, Context, SwitchoverActor
from ._directory import HEALTH, Directory, profile_name
from .messages import (
    AcquireKey,
    AcquireModel,
    Committed,
    Failed,
    Inspect,
    KeyOutcome,
    KeyPermit,
    ModelOutcome,
    ModelPermit,
    RunRequest,
    SuspectModel,
)

log = logging.getLogger("switchover.chain")

#: Longest a chain actor waits for a permit from a profile or health actor.
PERMIT_TIMEOUT = 2.0
#: How long past its request's deadline a probe or key permit still holds: a call that
#: was cut to the deadline may overrun it a little on a loaded machine, and a second
#: probe must not start while the first is still running.
LEASE_GRACE = 5.0


@attrs.frozen
class ChainStatus:
    """What a chain actor is doing, as published for the debug mailbox."""

    request_id: int | None = None
    chain: tuple[str, ...] = ()
    entry: int = 0
    profile: str | None = None
    attempts: int = 0
    started: float = 0.0


IDLE = ChainStatus()


def chain_view(status: ChainStatus, now: float) -> Mapping[str, Any]:
    """What a chain actor is doing, as plain data: the request in flight, or idle.

    ``entry`` is the chain entry being tried, ``profile`` the key profile of the current
    (or last) call on it, ``attempts`` the provider calls made so far and ``elapsed`` the
    seconds since the walk began. The walk ends when an attempt commits: the stream is then
    read on the caller's thread and the actor is idle again.
    """
    if status.request_id is None:
        return {"busy": False}
    return {
        "busy": True,
        "request_id": status.request_id,
        "chain": list(status.chain),
        "entry": status.chain[status.entry] if status.entry < len(status.chain) else None,
        "profile": status.profile,
        "attempts": status.attempts,
        "elapsed": round(max(0.0, now - status.started), 3),
    }


class _Stop(Exception):
    """The walk ends with ``error`` (raised to the caller)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _NextModel(Exception):
    """This chain entry is done; go on to the next one."""


class ChainActor(SwitchoverActor):
    """One request at a time: permits, provider calls, in-place retries, outcomes."""

    kind = "chain"

    def __init__(
        self,
        cell: Cell,
        context: Context,
        *,
        config: Config,
        providers: Mapping[str, Provider],
        directory: Directory,
        rng: random.Random,
        idle: queue.SimpleQueue[Any],
    ) -> None:
        super().__init__(cell, context)
        self._config = config
        self._providers = providers
        self._directory = directory
        self._rng = rng
        self._idle = idle

    def on_start(self) -> None:
        super().on_start()
        # A restarted worker starts idle: a chain actor keeps nothing between requests.
        # (Its supervisor put it in the idle queue when it started it.)
        self.publish(IDLE)

    def handle(self, message: Any) -> Any:
        if not isinstance(message, RunRequest):
            raise TypeError(f"ChainActor cannot handle {type(message).__name__}")
        self.publish(
            ChainStatus(
                request_id=message.request_id,
                chain=tuple(e.key for e in message.chain),
                started=self.clock.now(),
            )
        )
        try:
            answer = _Walk(self, message).run()
        finally:
            self.publish(IDLE)
        # Back to the pool only after a clean walk: a worker that crashed is replaced, and
        # its replacement joins the pool itself.
        self._idle.put(self.actor_ref)
        return answer


class _Walk:
    """The state of one request's walk; lives only inside ChainActor.handle."""

    def __init__(self, actor: ChainActor, run: RunRequest) -> None:
        self.actor = actor
        self.run_msg = run
        self.request = run.request
        self.clock = actor.clock
        self.config = actor._config
        self.directory = actor._directory
        self.observer = actor.observer
        self.attempts: list[Attempt] = []
        self.told: set[str] = set()
        self.probe = False  # this walk holds the current entry's single model probe
        self.began_at = 0.0  # when the gates of the walk's latest call were read

    # -- the walk --------------------------------------------------------------------------

    def run(self) -> Committed | Failed:
        try:
            for index, entry in enumerate(self.run_msg.chain):
                self._status(entry=index, profile=None)
                committed = self._entry(entry, last=index == len(self.run_msg.chain) - 1)
                if committed is not None:
                    return committed
            self._check_time()  # the last entry may have waited until the deadline
            self._flush()
            return self._fail(
                ChainExhausted(
                    self._exhausted_message(),
                    attempts=tuple(self.attempts),
                    retry_after=self._retry_after(),
                )
            )
        except _Stop as stop:
            return self._fail(stop.error)

    def _fail(self, error: BaseException) -> Failed:
        return Failed(request_id=self.run_msg.request_id, error=error)

    def _tell(self, name: str, message: object) -> None:
        self.told.add(name)
        self.directory.tell(name, message)

    def _flush(self) -> None:
        """Wait until the actors this walk told have handled it (an ask queues behind the
        tells), so that ``retry_after`` reads the cooldowns this walk's failures caused."""
        for name in sorted(self.told):
            self._ask(name, Inspect())

    def _status(self, **changes: Any) -> None:
        self.actor.publish(attrs.evolve(self.actor.cell.state, **changes))

    def _check_cancel(self) -> None:
        if self.run_msg.cancel.is_set():
            raise _Stop(RuntimeStoppedError("the runtime stopped while the request was running"))

    def _check_time(self) -> float:
        """Stop if the runtime is stopping or the deadline has passed; else the time now."""
        self._check_cancel()
        now = self.clock.now()
        if now >= self.run_msg.deadline:
            raise _Stop(
                DeadlineExceeded(
                    f"request timed out after {len(self.attempts)} attempts",
                    attempts=tuple(self.attempts),
                )
            )
        return now

    def _skip(self, entry: ChainEntry, profile: str | None, why: str) -> None:
        now = self.clock.now()
        self._note(entry, profile, None, why=why, probe=False, times=(now, now, now))

    def _note(
        self,
        entry: ChainEntry,
        profile: str | None,
        failure: Failure | None,
        *,
        why: str = "",
        probe: bool,
        times: tuple[float, float, float],
    ) -> None:
        """Keep a failed call (``failure``) or a skip (``why``) for the caller and the
        history; ``times`` is (gate_at, start, end)."""
        gate_at, start, end = times
        attempt = Attempt(
            model=entry.key,
            provider=entry.provider,
            profile=profile,
            outcome="skipped",
            message=why,
            duration=end - start,
        )
        if failure is not None:
            attempt = attempt.failed(failure)
        self.attempts.append(attempt)
        if self.observer is not None:
            self.observer.attempt_ended(
                AttemptRecord(
                    request_id=self.run_msg.request_id,
                    model=entry.key,
                    provider=entry.provider,
                    profile=profile,
                    outcome=attempt.outcome,
                    kind=attempt.kind,
                    probe=probe,
                    gate_at=gate_at,
                    start=start,
                    end=end,
                )
            )

    def _entry(self, entry: ChainEntry, *, last: bool) -> Committed | None:
        """Try one chain entry; None means go on to the next."""
        now = self._check_time()
        self.probe = False
        row = self.directory.cell(HEALTH).state.get(entry.key)
        if row is not None and not self._model_open(entry, now, last=last):
            if model_gate(row, now) == "cooling":
                self._skip(entry, None, f"model {row.state}")
                return None
            permit = self._ask(
                HEALTH, AcquireModel(entry.key, self._lease_until(), self.run_msg.request_id)
            )
            if not isinstance(permit, ModelPermit) or permit.reason is not None:
                reason = permit.reason if isinstance(permit, ModelPermit) else "health unavailable"
                self._skip(entry, None, f"model {reason}")
                return None
            self.probe = permit.probe
        # The model failed before and its wait is over: this walk is its one probe.
        recovering = self.probe
        verdict: Failure | None = None
        try:
            committed = self._profiles(entry, last=last, recovering=recovering)
            if committed is not None:
                self.probe = False  # the stream reports the probe's outcome when it ends
            return committed
        except _NextModel as next_model:
            verdict = next_model.args[0] if next_model.args else None
            return None
        finally:
            if verdict is not None:
                self._tell(
                    HEALTH,
                    ModelOutcome(entry.key, "error", verdict, self.probe, began_at=self.began_at),
                )
            elif self.probe:
                self._tell(
                    HEALTH,
                    ModelOutcome(entry.key, "released", probe=True, began_at=self.clock.now()),
                )

    def _profiles(self, entry: ChainEntry, *, last: bool, recovering: bool) -> Committed | None:
        provider_config = self.config.provider(entry.provider)
        assert provider_config is not None
        key_failure: Failure | None = None
        max_tokens = self.request.max_tokens
        for profile, key in provider_config.key_sequence(self.run_msg.request_id):
            name = profile_name(entry.provider, profile)
            state = self.directory.cell(name).state
            now = self.clock.now()
            gate = key_gate(state, entry.key, now)
            if gate == "cooling":
                left = state.until(entry.key) - now
                self._skip(entry, profile, f"key cooling for {left:.1f}s")
                continue
            held = False  # a permit for a key whose cooldown ended, until an outcome is told
            if gate == "expired":
                permit = self._ask(name, AcquireKey(entry.key, self._lease_until()))
                if not isinstance(permit, KeyPermit) or not permit.granted:
                    reason = permit.reason if isinstance(permit, KeyPermit) else "key unavailable"
                    self._skip(entry, profile, reason)
                    continue
                held = True
            tries = 0
            try:
                while True:
                    gate_at = self._check_time()
                    if not self._model_open(entry, gate_at, last=last):
                        self._skip(entry, profile, "model taken out of service by another request")
                        raise _NextModel()
                    if not self._key_open(name, entry.key, gate_at, held=held):
                        self._skip(entry, profile, "key cooled down by another request")
                        break
                    outcome = self._call(
                        entry,
                        profile,
                        key,
                        max_tokens,
                        last=last,
                        gate_at=gate_at,
                    )
                    held = False  # the call's outcome (or the stream) reports to the key
                    if isinstance(outcome, Committed):
                        return outcome
                    failure = outcome
                    self._tell(
                        name, KeyOutcome("error", failure, model=entry.key, began_at=gate_at)
                    )
                    self._check_cancel()
                    kind = failure.kind
                    if kind in KEY_KINDS:
                        key_failure = failure
                        break
                    if kind is ErrorKind.MODEL_MISSING or (
                        kind is ErrorKind.TRANSIENT and failure.timeout
                    ):
                        raise _NextModel(failure)
                    if kind is ErrorKind.TRANSIENT and recovering and not last:
                        # The probe found it still failing: with somewhere else to go,
                        # retrying in place a model known to fail is time thrown away.
                        raise _NextModel(failure)
                    if kind in (ErrorKind.TRANSIENT, ErrorKind.UNKNOWN):
                        tries += 1
                        if tries < self.config.retry.attempts:
                            if kind is ErrorKind.TRANSIENT and not self.probe:
                                self._suspect(entry, failure)
                                if not self.probe and not last:
                                    # Another request holds the model's probe and will
                                    # find out; waiting to retry could only be skipped.
                                    raise _NextModel()
                            self._sleep(retry_delay(self.config.retry, tries, self.actor._rng))
                            continue
                        raise _NextModel(failure if kind is ErrorKind.TRANSIENT else None)
                    if kind is ErrorKind.OUTPUT_LIMIT and max_tokens is not None:
                        max_tokens = None  # for this model only, once
                        continue
                    if kind is ErrorKind.OUTPUT_LIMIT and self.request.max_tokens is None:
                        raise _NextModel()  # the model's own default is too high: not the caller's
                    if kind in (
                        ErrorKind.OUTPUT_LIMIT,
                        ErrorKind.CONTEXT_EXCEEDED,
                        ErrorKind.BAD_REQUEST,
                    ):
                        raise _Stop(
                            RequestRejected(
                                _rejection(kind, failure), kind=kind, attempts=tuple(self.attempts)
                            )
                        )
                    raise _NextModel()  # invalid_request: this model cannot take it
            finally:
                if held:  # left without a call outcome: let the next caller have the key
                    self._tell(
                        name,
                        KeyOutcome("released", model=entry.key, began_at=self.clock.now()),
                    )
        if key_failure is not None:
            raise _NextModel(key_failure)  # no profile left: the model fails too
        return None

    def _lease_until(self) -> float:
        """A permit holds until this walk must be over, whatever the request's timeout."""
        return self.run_msg.deadline + LEASE_GRACE

    def _model_open(self, entry: ChainEntry, now: float, *, last: bool) -> bool:
        """Whether the model may be called now without asking (also re-read just before each
        call: another request may have cooled it since the entry began). The probe holder
        may call a model whose wait is over; a model on probation (another request is
        retrying it in place) stays open to requests with no entry after it."""
        row = self.directory.cell(HEALTH).state.get(entry.key)
        if row is None:
            return True
        if self.probe and row.probe_holder != self.run_msg.request_id:
            # The model moved on without us (healthy again, or another request's probe):
            # this walk holds nothing any more and calls like anyone else.
            self.probe = False
        gate = model_gate(row, now)
        return (
            gate == "ready"
            or (self.probe and gate == "expired")
            or (last and row.state is HealthState.PROBING)
        )

    def _suspect(self, entry: ChainEntry, failure: Failure) -> None:
        """After a transient failure that will be retried in place, put the model on
        probation with this walk as its probe holder, so other requests stop calling it
        while this one finds out whether it was a blip."""
        permit = self._ask(
            HEALTH,
            SuspectModel(entry.key, failure, self._lease_until(), self.run_msg.request_id),
        )
        if isinstance(permit, ModelPermit) and permit.reason is None:
            self.probe = True

    def _key_open(self, name: str, model: str, now: float, *, held: bool) -> bool:
        """Re-read just before a call: another request's failure may have cooled the key."""
        gate = key_gate(self.directory.cell(name).state, model, now)
        return gate == "ready" or (held and gate == "expired")

    def _sleep(self, delay: float) -> None:
        if self.clock.now() + delay >= self.run_msg.deadline:
            raise _Stop(
                DeadlineExceeded(
                    f"request timed out after {len(self.attempts)} attempts "
                    "(no time left to retry)",
                    attempts=tuple(self.attempts),
                )
            )
        if self.clock.wait(self.run_msg.cancel, delay):
            self._check_time()

    def _ask(self, name: str, message: object) -> object:
        """Ask for a permit; None if none came (the caller then skips, never waits on)."""
        timeout = min(PERMIT_TIMEOUT, max(0.0, self.run_msg.deadline - self.clock.now()))
        try:
            return self.directory.ask(name, message, timeout)
        except (pykka.Timeout, pykka.ActorDeadError):
            log.warning("no answer from %s within %.2fs", name, timeout)
        except Exception as error:  # it crashed on our ask; the supervisor restarts it
            log.warning("%s failed to answer: %s", name, type(error).__name__)
        return None

    # -- one attempt -----------------------------------------------------------------------

    def _call(
        self,
        entry: ChainEntry,
        profile: str,
        key: str,
        max_tokens: int | None,
        *,
        last: bool,
        gate_at: float,
    ) -> Committed | Failure:
        """One provider call, as the current entry's probe holder if the walk is one;
        ``gate_at`` is when the gates were read (for the history)."""
        provider_config = self.config.provider(entry.provider)
        assert provider_config is not None
        started = self.clock.now()
        self.began_at = gate_at
        self._status(profile=profile, attempts=self.actor.cell.state.attempts + 1)
        call = ProviderCall(
            model=entry.model,
            api_key=key,
            messages=self.request.messages,
            max_tokens=max_tokens,
            temperature=self.request.temperature,
            tools=self.request.tools,
            deadline=self.run_msg.deadline,
            connect_timeout=provider_config.connect_timeout,
            first_token_timeout=None if last else provider_config.first_token_timeout,
            idle_timeout=provider_config.idle_timeout,
            clock=self.clock,
            cancel=self.run_msg.cancel,
        )
        stream: EventStream | None = None
        try:
            stream = self.actor._providers[entry.provider].open(call)
            first: Event = next(stream)
        except ProviderFailure as error:
            # Adapters redact, but a key must not leak through one that does not.
            failure = attrs.evolve(error.failure, message=self.actor.redact(error.failure.message))
        except StopIteration:
            failure = Failure(kind=ErrorKind.UNKNOWN, message="stream ended before any event")
        except Exception as error:  # an adapter bug must not kill the walk
            log.error(
                "provider %s raised unexpectedly: %s",
                entry.provider,
                redacted_traceback(error, self.actor.redact),
            )
            failure = Failure(
                kind=ErrorKind.UNKNOWN, message=f"adapter error: {type(error).__name__}"
            )
        else:
            served_by = ServedBy(model=entry.key, provider=entry.provider, profile=profile)
            self.attempts.append(
                Attempt(
                    model=entry.key,
                    provider=entry.provider,
                    profile=profile,
                    outcome="ok",
                    duration=self.clock.now() - started,
                )
            )
            return Committed(
                request_id=self.run_msg.request_id,
                served_by=served_by,
                entry=entry,
                attempts=tuple(self.attempts),
                first=first,
                stream=stream,
                probe=self.probe,
                gate_at=gate_at,
                started=started,
            )
        if stream is not None:
            _close(stream, self.actor.redact)
        self._note(
            entry, profile, failure, probe=self.probe, times=(gate_at, started, self.clock.now())
        )
        return failure

    # -- the end ---------------------------------------------------------------------------

    def _exhausted_message(self) -> str:
        called = [a for a in self.attempts if a.outcome == "error"]
        skipped = len(self.attempts) - len(called)
        parts = [f"{a.model} ({a.profile}): {a.kind}" for a in called[-5:]]
        detail = "; ".join(parts) if parts else "nothing was called"
        return (
            f"every chain entry failed or was cooling ({len(called)} calls failed, "
            f"{skipped} skipped): {detail}"
        )

    def _retry_after(self) -> float | None:
        """Seconds until the soonest chain entry can be called again, if any is cooling."""
        now = self.clock.now()
        table = self.directory.cell(HEALTH).state
        soonest: float | None = None
        for entry in self.run_msg.chain:
            row = table.get(entry.key)
            model_ready = now
            if row is not None and row.until is not None and row.state != "healthy":
                model_ready = max(now, row.until)
            provider = self.config.provider(entry.provider)
            assert provider is not None
            key_ready = min(
                max(
                    now,
                    self.directory.cell(profile_name(entry.provider, p)).state.until(entry.key)
                    or now,
                )
                for p in provider.profiles
            )
            ready = max(model_ready, key_ready)
            if ready > now and (soonest is None or ready < soonest):
                soonest = ready
        return None if soonest is None else soonest - now


def _close(stream: EventStream, redact: Redactor) -> None:
    try:
        stream.close()
    except Exception as error:  # an adapter bug must not kill the walk
        log.error("closing a failed provider stream raised: %s", redacted_traceback(error, redact))


def _rejection(kind: ErrorKind, failure: Failure) -> str:
    if kind is ErrorKind.OUTPUT_LIMIT:
        return (
            "the model rejected the output length even after max_tokens was dropped: "
            + failure.message
        )
    if kind is ErrorKind.CONTEXT_EXCEEDED:
        return "the prompt is longer than the model's context window: " + failure.message
    return "the request is malformed: " + failure.message
