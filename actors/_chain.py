"""ChainActor: walks one request's chain at a time until an attempt commits.

It is the only actor that asks other actors (for a key or model permit, with a timeout),
and the only one that blocks on I/O: the provider call it exists for. Everything it learns
goes back to the owning actors as tells; it keeps no state between requests. What it does
after a failed call is not decided here: :func:`switchover._core._decide.decide` says, the
walk carries it out (``docs/chain-decisions.md``).
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
from .._core._config import Config
from .._core._decide import (
    DropMaxTokens,
    NextModel,
    NextProfile,
    Probation,
    Reject,
    RetryInPlace,
    Standing,
    decide,
)
from .._core._errors import ChainExhausted, DeadlineExceeded, RequestRejected, RuntimeStoppedError
from .._core._observe import AttemptBegan, AttemptRecord
from .._core._policy import key_gate, model_gate, retry_delay
from .._core._redact import Redactor, redacted_traceback
from .._core._types import Attempt, Event, ServedBy
from .._core._vocab import ErrorKind, HealthState
from ..providers._seam import EventStream, Provider, ProviderCall, ProviderFailure
from ._base import Context, SwitchoverActor
from ._cell import Cell
from ._directory import HEALTH, Directory, profile_name
from ._report import model_report
from .messages import (
    AcquireKey,
    AcquireModel,
    Committed,
    Failed,
    Granted,
    KeyCommitted,
    KeyFailed,
    KeyOutcome,
    KeyReleased,
    ModelCommitted,
    Refused,
    RunRequest,
    SuspectModel,
    Sync,
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


class ChainActor(SwitchoverActor[ChainStatus]):
    """One request at a time: permits, provider calls, in-place retries, outcomes."""

    kind = "chain"

    def __init__(
        self,
        cell: Cell[ChainStatus],
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
    """The state of one request's walk; lives only inside ChainActor.handle.

    A plain loop over the chain's entries and each entry's profiles: after every failed
    call it asks :func:`decide` what to do and does it. Methods that may end the walk
    return the end (a :class:`Failed`), None to go on.
    """

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
        # Where the walk stands in the current chain entry.
        self.entry = run.chain[0]
        self.last = False  # no entry follows this one
        self.probe = False  # this walk holds the entry's single model probe
        self.recovering = False  # ... and was let through as the probe after a cooldown
        self.dropped = False  # max_tokens was dropped for this model
        self.began_at = 0.0  # when the gates of the walk's latest call were read
        self.probe_called = False  # ... and has called the model since it got it

    # -- the walk --------------------------------------------------------------------------

    def run(self) -> Committed | Failed:
        chain = self.run_msg.chain
        for index, entry in enumerate(chain):
            self.entry, self.last = entry, index == len(chain) - 1
            self._status(entry=index, profile=None)
            end = self._try_entry()
            if end is not None:
                return end
        stopped = self._stopped(self.clock.now())  # the last entry may have run to the deadline
        if stopped is not None:
            return stopped
        self._flush()
        return self._fail(
            ChainExhausted(
                self._exhausted_message(),
                attempts=tuple(self.attempts),
                retry_after=self._retry_after(),
            )
        )

    def _try_entry(self) -> Committed | Failed | None:
        """Try the current chain entry; None means go on to the next."""
        now = self.clock.now()
        stopped = self._stopped(now)
        if stopped is not None:
            return stopped
        self.probe = self.dropped = False
        if not self._admit(now):
            return None
        self.recovering = self.probe
        end = self._profiles()
        if isinstance(end, Committed):
            # The probe's commit ends the model's probation; the stream reports the call's
            # outcome, the probe's too, when it ends.
            if self.probe:
                self._tell(HEALTH, ModelCommitted(self.entry.key, began_at=self.began_at))
            return end
        model = self.entry.key
        outcome: KeyOutcome = KeyReleased(model, began_at=self.clock.now())
        if isinstance(end, NextModel) and end.report is not None and self._verdict():
            # The model hears of the entry's last call: a probation begun by this walk's
            # first failure must not make its own later verdict old news.
            outcome = KeyFailed(model, end.report, began_at=self.began_at)
        report = model_report(outcome, probe=self.probe, table=self.directory.health_table())
        if report is not None:
            self._tell(HEALTH, report)
        return end if isinstance(end, Failed) else None

    def _admit(self, now: float) -> bool:
        """Whether the model may be called: open, or this walk got its probe (else skipped)."""
        entry = self.entry
        row = self.directory.health_table().get(entry.key)
        if row is None or self._model_open(now):
            return True
        if model_gate(row, now) == "cooling":
            self._skip(None, f"model {row.state}")
            return False
        permit = self._ask(
            HEALTH, AcquireModel(entry.key, self._lease_until(), self.run_msg.request_id)
        )
        if not isinstance(permit, Granted):
            reason = permit.reason if isinstance(permit, Refused) else "health unavailable"
            self._skip(None, f"model {reason}")
            return False
        self._hold(permit.probe)
        return True

    def _profiles(self) -> Committed | Failed | NextModel:
        """Try the entry's keys in order until one commits or the entry is done."""
        provider_config = self.config.provider(self.entry.provider)
        assert provider_config is not None
        key_failure: Failure | None = None  # the model hears it if no profile is left
        model = self.entry.key
        for profile, key in provider_config.key_sequence(self.run_msg.request_id):
            name = profile_name(self.entry.provider, profile)
            state = self.directory.key_state(name)
            now = self.clock.now()
            gate = key_gate(state, model, now)
            if gate == "cooling":
                until = state.until(model)
                assert until is not None  # a cooling key has a deadline
                self._skip(profile, f"key cooling for {until - now:.1f}s")
                continue
            held = False  # holds the probe of a key whose cooldown ended, until an outcome
            if gate == "expired":
                permit = self._ask(name, AcquireKey(model, self._lease_until()))
                if not isinstance(permit, Granted):
                    reason = permit.reason if isinstance(permit, Refused) else "key unavailable"
                    self._skip(profile, reason)
                    continue
                held = permit.probe
            step = self._on_key(name, profile, key, held=held)
            if isinstance(step, NextProfile):
                key_failure = step.failure
            elif step is not None:
                return step
        return NextModel(key_failure)

    def _on_key(
        self, name: str, profile: str, key: str, *, held: bool
    ) -> Committed | Failed | NextModel | NextProfile | None:
        """Call one key, retrying in place as decided; None: go on to the next key."""
        retries = 0
        try:
            while True:
                gate_at = self.clock.now()
                stopped = self._stopped(gate_at)
                if stopped is not None:
                    return stopped
                if not self._model_open(gate_at):
                    self._skip(profile, "model taken out of service by another request")
                    return NextModel(None)
                if not self._key_open(name, gate_at, held=held):  # for this entry's model
                    self._skip(profile, "key cooled down by another request")
                    return None
                max_tokens = None if self.dropped else self.request.max_tokens
                self.began_at = gate_at
                self.probe_called = self.probe
                outcome = self._call(name, profile, key, max_tokens, gate_at=gate_at)
                probed, held = held, False  # the call's outcome (or the stream) reports to the key
                if isinstance(outcome, Committed):
                    if probed:  # the key's probe committed: back in service at once
                        self._tell(name, KeyCommitted(self.entry.key, began_at=gate_at))
                    return outcome
                if self.run_msg.cancel.is_set():
                    return self._fail(_stopped_error())
                standing = Standing(
                    last_entry=self.last,
                    recovering=self.recovering,
                    holds_probe=self.probe,
                    retries=retries,
                    max_tokens_set=self.request.max_tokens is not None,
                    max_tokens_dropped=self.dropped,
                )
                decision = decide(outcome, standing, self.config.retry)
                if isinstance(decision, Probation):
                    self._hold(self._probation(outcome))
                    decision = decision.granted if self.probe else decision.refused
                if isinstance(decision, RetryInPlace):
                    retries = decision.tries_done
                    stopped = self._sleep(
                        retry_delay(self.config.retry, decision.tries_done, self.actor._rng)
                    )
                    if stopped is not None:
                        return stopped
                elif isinstance(decision, DropMaxTokens):
                    self.dropped = True  # for this model only, once
                elif isinstance(decision, Reject):
                    return self._fail(
                        RequestRejected(
                            decision.message, kind=decision.kind, attempts=tuple(self.attempts)
                        )
                    )
                else:
                    return decision
        finally:
            if held:  # left without a call outcome: let the next caller have the key
                self._tell(name, KeyReleased(self.entry.key, began_at=self.clock.now()))

    # -- gates, permits and time -------------------------------------------------------------

    def _lease_until(self) -> float:
        """A permit holds until this walk must be over, whatever the request's timeout."""
        return self.run_msg.deadline + LEASE_GRACE

    def _model_open(self, now: float) -> bool:
        """Whether the model may be called now without asking (also re-read just before each
        call: another request may have cooled it since the entry began). The probe holder
        may call a model whose wait is over; a model on probation (another request is
        retrying it in place) stays open to requests with no entry after it."""
        row = self.directory.health_table().get(self.entry.key)
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
            or (self.last and row.state is HealthState.PROBING)
        )

    def _hold(self, probe: bool) -> None:
        """Whether the walk now holds the model's probe (and has not called under it)."""
        self.probe = probe
        self.probe_called = False

    def _verdict(self) -> bool:
        """Whether the entry's last failure speaks for the model: the walk holds no probe,
        or called the model under it. A holder whose keys all cooled before it could call
        (another request's failure) proved nothing: it lets the probe go."""
        return not self.probe or self.probe_called

    def _probation(self, failure: Failure) -> bool:
        """Put the model on probation with this walk as its probe holder, so other requests
        stop calling it while this one retries in place; whether it was granted."""
        permit = self._ask(
            HEALTH,
            SuspectModel(self.entry.key, failure, self._lease_until(), self.run_msg.request_id),
        )
        return isinstance(permit, Granted)

    def _key_open(self, name: str, now: float, *, held: bool) -> bool:
        """Re-read just before a call: another request's failure may have cooled the key."""
        gate = key_gate(self.directory.key_state(name), self.entry.key, now)
        return gate == "ready" or (held and gate == "expired")

    def _stopped(self, now: float) -> Failed | None:
        """The walk's end if the runtime is stopping or the deadline has passed."""
        if self.run_msg.cancel.is_set():
            return self._fail(_stopped_error())
        if now >= self.run_msg.deadline:
            return self._fail(
                DeadlineExceeded(
                    f"request timed out after {len(self.attempts)} attempts",
                    attempts=tuple(self.attempts),
                )
            )
        return None

    def _sleep(self, delay: float) -> Failed | None:
        """Wait ``delay`` before a retry; the walk's end if it cannot."""
        if self.clock.now() + delay >= self.run_msg.deadline:
            return self._fail(
                DeadlineExceeded(
                    f"request timed out after {len(self.attempts)} attempts "
                    "(no time left to retry)",
                    attempts=tuple(self.attempts),
                )
            )
        if self.clock.wait(self.run_msg.cancel, delay):
            return self._stopped(self.clock.now())
        return None

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

    def _tell(self, name: str, message: object) -> None:
        self.told.add(name)
        self.directory.tell(name, message)

    def _flush(self) -> None:
        """Wait until the actors this walk told have handled it (an ask queues behind the
        tells), so that ``retry_after`` reads the cooldowns this walk's failures caused."""
        for name in sorted(self.told):
            self._ask(name, Sync())  # not Inspect: rendering a big table costs

    def _status(self, **changes: Any) -> None:
        self.actor.publish(attrs.evolve(self.actor.cell.state, **changes))

    def _fail(self, error: BaseException) -> Failed:
        return Failed(request_id=self.run_msg.request_id, error=error)

    # -- what the caller and the observers learn ---------------------------------------------

    def _skip(self, profile: str | None, why: str) -> None:
        now = self.clock.now()
        self._note(profile, None, why=why, probe=False, times=(now, now, now))

    def _note(
        self,
        profile: str | None,
        failure: Failure | None,
        *,
        why: str = "",
        probe: bool,
        times: tuple[float, float, float],
    ) -> None:
        """Keep a failed call (``failure``) or a skip (``why``) for the caller and the
        history; ``times`` is (gate_at, start, end)."""
        entry = self.entry
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

    # -- one attempt -----------------------------------------------------------------------

    def _call(
        self, name: str, profile: str, key: str, max_tokens: int | None, *, gate_at: float
    ) -> Committed | Failure:
        """One provider call with key actor ``name``'s key, as the current entry's probe
        holder if the walk is one; ``gate_at`` is when the gates were read. A failure is
        told to the key actor before the observers hear of it, so that their work never
        widens the window in which other requests still pick the failing key."""
        entry = self.entry
        provider_config = self.config.provider(entry.provider)
        assert provider_config is not None
        started = self.clock.now()
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
            # With nothing to fall back to, the last entry may wait until the deadline.
            first_token_timeout=None if self.last else provider_config.first_token_timeout,
            idle_timeout=provider_config.idle_timeout,
            clock=self.clock,
            cancel=self.run_msg.cancel,
            request=self.request,
        )
        if self.observer is not None:
            self.observer.attempt_began(
                AttemptBegan(
                    request_id=self.run_msg.request_id,
                    model=entry.key,
                    provider=entry.provider,
                    profile=profile,
                    probe=self.probe,
                    at=started,
                )
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
        except BaseException as error:  # an adapter bug must not kill the walk (see _base)
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
        self._tell(name, KeyFailed(entry.key, failure, began_at=gate_at))
        self._note(profile, failure, probe=self.probe, times=(gate_at, started, self.clock.now()))
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
        table = self.directory.health_table()
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
                    self.directory.key_state(profile_name(entry.provider, p)).until(entry.key)
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
    except BaseException as error:  # an adapter bug must not kill the walk (see _base)
        log.error("closing a failed provider stream raised: %s", redacted_traceback(error, redact))


def _stopped_error() -> RuntimeStoppedError:
    return RuntimeStoppedError("the runtime stopped while the request was running")
