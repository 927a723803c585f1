"""The supervisor: starts every actor, restarts a crashed one from its cell, stops them all."""

from __future__ import annotations

import functools
import logging
import queue
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from .._core._clock import Clock
from .._core._config import Config, configured_models
from .._core._observe import Observer
from .._core._policy import KeyState
from .._core._redact import Redactor
from ..providers._seam import Provider
from ._base import REAL_TIME, Context, SwitchoverActor, redeliver, settle
from ._cell import Cell
from ._chain import IDLE, ChainActor, ChainStatus, chain_view
from ._directory import HEALTH, SUPERVISOR, Directory, Member, chain_name, profile_name
from ._health import HealthActor, table_view
from ._profile import ProfileActor, key_renderer
from .messages import ActorCrashed, Sweep

log = logging.getLogger("switchover.actors")

#: How long stop() waits in all for the actors to finish their current messages and exit.
STOP_TIMEOUT = 5.0

Spawn = Callable[[Cell[Any]], pykka.ActorRef[Any]]


class SupervisorActor(SwitchoverActor[Mapping[str, Any]]):
    """Receives crash reports and restarts the crashed actor with its last published state."""

    kind = "supervisor"

    def __init__(
        self, cell: Cell[Mapping[str, Any]], context: Context, *, supervisor: Supervisor
    ) -> None:
        super().__init__(cell, context)
        self._supervisor = supervisor

    def handle(self, message: Any) -> Any:
        if isinstance(message, ActorCrashed):
            self._supervisor.restart(message)
            self.publish(
                {
                    "restarts": self.cell.state.get("restarts", 0) + 1,
                    "last_crash": f"{message.name}: {message.error}",
                }
            )
            return None
        if isinstance(message, Sweep):
            self._supervisor.sweep()
            return None
        raise TypeError(f"SupervisorActor cannot handle {type(message).__name__}")


class Supervisor:
    """Owns the actors of one runtime: the directory, the spawners and the idle chain pool.

    Crash reports go to the :class:`SupervisorActor`, which restarts the crashed actor from
    its cell and re-delivers what was queued for it. Nobody supervises the supervisor
    actor: when it crashes, it is restarted from the thread it crashed on, gets its own
    queued reports back, and then sweeps the directory for actors that died unreported
    while it was down. Start, restart and stop take one lock (never on a request path),
    so a restart cannot race a stop and the directory has one writer at a time.
    """

    def __init__(
        self,
        config: Config,
        providers: Mapping[str, Provider],
        *,
        clock: Clock,
        rng: random.Random,
        observer: Observer | None = None,
    ) -> None:
        self.config = config
        self.directory = Directory()
        #: Idle chain workers; a None in it means "stopping" (each taker puts it back).
        self.idle: queue.SimpleQueue[pykka.ActorRef[Any] | None] = queue.SimpleQueue()
        self._clock = clock
        self._spawners: dict[str, Spawn] = {}
        self._lock = threading.Lock()
        self._replaced = threading.Condition(self._lock)
        self._stopped = False
        #: Removes the configured keys from snapshots and operator-facing text.
        self.redact = Redactor(config.secrets())
        context = Context(
            clock=clock, on_crash=self._report_crash, redact=self.redact, observer=observer
        )
        for provider in config.providers:
            for profile, key in provider.profiles.items():
                self._add(
                    profile_name(provider.name, profile),
                    "profile",
                    KeyState(),
                    key_renderer(provider.name, profile, key),
                    functools.partial(
                        ProfileActor.start,
                        context=context,
                        provider=provider.name,
                        profile=profile,
                        key=key,
                        cooldown=config.cooldown,
                        rng=rng,
                    ),
                )
        self._add(
            HEALTH,
            "health",
            {},
            table_view,
            lambda cell: HealthActor.start(
                cell, context, cooldown=config.cooldown, keep=configured_models(config)
            ),
        )

        def start_chain(cell: Cell[ChainStatus]) -> pykka.ActorRef[Any]:
            ref = ChainActor.start(
                cell,
                context,
                config=config,
                providers=providers,
                directory=self.directory,
                rng=rng,
                idle=self.idle,
            )
            # Idle from the moment it exists, before anyone can see it in the directory.
            self.idle.put(ref)
            return ref

        for index in range(config.chain_workers):
            self._add(chain_name(index), "chain", IDLE, chain_view, start_chain)
        self._add(
            SUPERVISOR,
            "supervisor",
            {},
            self._render,
            lambda cell: SupervisorActor.start(cell, context, supervisor=self),
        )

    def _add(
        self,
        name: str,
        kind: str,
        state: Any,
        render: Callable[[Any, float], Mapping[str, Any]],
        spawn: Spawn,
    ) -> None:
        self._spawners[name] = spawn
        cell = Cell(name, kind, state, render, published_at=self._clock.now())
        self.directory.replace(name, Member(ref=None, cell=cell))

    def _render(self, state: Mapping[str, Any], now: float) -> Mapping[str, Any]:
        return {"actors": len(self.directory.members), **state}

    def start(self) -> None:
        """Start every actor (from the caller's thread, before anyone reads the directory)."""
        with self._lock:
            for name, spawn in self._spawners.items():
                cell = self.directory.cell(name)
                self.directory.replace(name, Member(ref=spawn(cell), cell=cell))

    def _report_crash(self, crash: ActorCrashed) -> None:
        """Runs on the crashed actor's own thread, right after it stopped itself."""
        if crash.name == SUPERVISOR:
            self.restart(crash)
            return
        ref = self.directory.members[SUPERVISOR].ref
        try:
            if ref is None:
                raise pykka.ActorDeadError(SUPERVISOR)
            ref.tell(crash)
        except pykka.ActorDeadError:
            # The supervisor is down too: its sweep will restart this actor once it is back.
            settle(crash.pending, f"{crash.name} crashed while its supervisor was down")

    def restart(self, crash: ActorCrashed) -> None:
        """Replace a crashed actor with a new one started from its cell."""
        with self._lock:
            member = self.directory.members[crash.name]
            if self._stopped:
                settle(crash.pending, f"{crash.name} crashed while the runtime was stopping")
                return
            if member.ref is not None and member.ref.actor_urn != crash.urn:
                # Already replaced (a sweep got there first): the queued messages follow.
                redeliver(member.ref, crash.pending)
                return
            self._respawn(crash.name, member, crash.pending)

    def sweep(self) -> None:
        """Restart every actor found dead (it crashed while no supervisor was listening)."""
        with self._lock:
            if self._stopped:
                return
            for name, member in self.directory.members.items():
                if name != SUPERVISOR and member.ref is not None and not member.ref.is_alive():
                    self._respawn(name, member, ())

    def _respawn(self, name: str, member: Member, pending: tuple[Any, ...]) -> None:
        """Start ``name`` again from its cell; the caller holds the lock."""
        old = member.cell.thread
        if old is not None and old is not threading.current_thread():
            old.join(STOP_TIMEOUT)  # it is past its last message; only teardown is left
        member.cell.restarts += 1  # counted before the replacement can be seen at work
        try:
            ref = self._spawners[name](member.cell)
        except Exception:
            member.cell.restarts -= 1
            log.exception("could not restart %s; the next sweep tries again", name)
            settle(pending, f"{name} could not be restarted")
            return
        # Queued before the directory points at the new actor, so they come first.
        redeliver(ref, pending)
        self.directory.replace(name, Member(ref=ref, cell=member.cell))
        self.directory.forward(name)  # what was told to it while it was down
        log.warning("restarted %s (restart %d)", name, member.cell.restarts)
        self._replaced.notify_all()
        if name == SUPERVISOR:
            ref.tell(Sweep())

    def wait_replaced(self, name: str, urn: str, timeout: float) -> bool:
        """Wait until actor ``name`` is no longer the incarnation ``urn`` (test hook)."""

        def replaced() -> bool:
            ref = self.directory.members[name].ref
            return self._stopped or (ref is not None and ref.actor_urn != urn)

        with self._replaced:
            return self._replaced.wait_for(replaced, timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every actor and wait for its thread; each finishes its current message.

        Callers waiting for an idle chain worker are woken at once.
        """
        with self._lock:
            self._stopped = True
            self.directory.closed = True
            members = list(self.directory.members.values())
        self.idle.put(None)
        give_up = REAL_TIME.now() + timeout
        futures = []
        for member in members:
            if member.ref is None:
                continue
            try:
                futures.append(member.ref.stop(block=False))
            except pykka.ActorDeadError:
                continue
        for future in futures:
            try:
                future.get(timeout=max(0.0, give_up - REAL_TIME.now()))
            except pykka.Timeout:
                log.error("an actor did not stop within %.1fs", timeout)
        current = threading.current_thread()
        for member in members:
            thread = member.cell.thread
            if thread is not None and thread is not current:
                thread.join(max(0.0, give_up - REAL_TIME.now()))
