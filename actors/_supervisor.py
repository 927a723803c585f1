"""The supervisor: starts every actor, restarts a crashed one from its cell, stops them all."""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from runtime._clock import Clock
from runtime._config import Config
from runtime._policy import KeyState
from runtime._providers import Provider
from runtime._redact import Redactor

from ._base import Cell, Context, SwitchoverActor
from ._chain import IDLE, ChainActor, chain_view
from ._directory import HEALTH, SUPERVISOR, Directory, Member, chain_name, profile_name
from ._health import HealthActor, table_view
from ._profile import ProfileActor, key_renderer
from .messages import ActorCrashed

log = logging.getLogger("switchover.actors")

#: How long stop() waits for each actor to finish its current message.
STOP_TIMEOUT = 5.0

Spawn = Callable[[Cell], pykka.ActorRef[Any]]


class SupervisorActor(SwitchoverActor):
    """Receives crash reports and restarts the crashed actor with its last published state."""

    kind = "supervisor"

    def __init__(self, cell: Cell, context: Context, *, supervisor: Supervisor) -> None:
        super().__init__(cell, context)
        self._supervisor = supervisor

    def handle(self, message: Any) -> Any:
        if isinstance(message, ActorCrashed):
            self._supervisor.restart(message.name)
            self.publish(
                {
                    "restarts": self.cell.state.get("restarts", 0) + 1,
                    "last_crash": f"{message.name}: {message.error}",
                }
            )
            return None
        raise TypeError(f"SupervisorActor cannot handle {type(message).__name__}")


class Supervisor:
    """Owns the actors of one runtime: the directory, the spawners and the idle chain pool."""

    def __init__(
        self,
        config: Config,
        providers: Mapping[str, Provider],
        *,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.config = config
        self.directory = Directory()
        self.idle: queue.SimpleQueue[pykka.ActorRef[Any]] = queue.SimpleQueue()
        self._clock = clock
        self._spawners: dict[str, Spawn] = {}
        #: Removes the configured keys from snapshots and operator-facing text.
        self.redact = Redactor(config.secrets())
        context = Context(clock=clock, on_crash=self._report_crash, redact=self.redact)
        lease = config.request_timeout
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
                        lease=lease,
                        rng=rng,
                    ),
                )
        self._add(
            HEALTH,
            "health",
            {},
            table_view,
            lambda cell: HealthActor.start(cell, context, cooldown=config.cooldown, lease=lease),
        )
        for index in range(config.chain_workers):
            self._add(
                chain_name(index),
                "chain",
                IDLE,
                chain_view,
                lambda cell: ChainActor.start(
                    cell,
                    context,
                    config=config,
                    providers=providers,
                    directory=self.directory,
                    rng=rng,
                    idle=self.idle,
                ),
            )
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
        for name, spawn in self._spawners.items():
            cell = self.directory.cell(name)
            self.directory.replace(name, Member(ref=spawn(cell), cell=cell))

    def _report_crash(self, crash: ActorCrashed) -> None:
        if crash.name == SUPERVISOR:
            return  # nobody supervises the supervisor; its own handler is trivial
        self.directory.tell(SUPERVISOR, crash)

    def restart(self, name: str) -> None:
        """Replace a crashed actor with a new one started from its cell."""
        member = self.directory.members[name]
        if member.ref is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                member.ref.stop(block=False)
        member.cell.restarts += 1
        self.directory.replace(
            name, Member(ref=self._spawners[name](member.cell), cell=member.cell)
        )
        log.warning("restarted %s (restart %d)", name, member.cell.restarts)

    def stop(self) -> None:
        """Stop every actor; each finishes the message it is handling first."""
        futures = []
        # The supervisor first, so that no restart races the shutdown.
        members = sorted(self.directory.members.items(), key=lambda kv: kv[0] != SUPERVISOR)
        for _, member in members:
            if member.ref is None:
                continue
            try:
                futures.append(member.ref.stop(block=False))
            except pykka.ActorDeadError:
                continue
        for future in futures:
            try:
                future.get(timeout=STOP_TIMEOUT)
            except (pykka.Timeout, pykka.ActorDeadError):
                log.error("an actor did not stop within %.1fs", STOP_TIMEOUT)
        # An actor answers its stop message just before its thread ends; join so that no
        # actor thread outlives stop().
        for member in self.directory.members.values():
            thread = member.cell.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(STOP_TIMEOUT)
