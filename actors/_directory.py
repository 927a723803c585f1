"""The name → actor directory the supervisor publishes, and fire-and-forget reporting."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs
import pykka

from .._core._policy import KeyState, ModelRow
from ._base import POLL, REAL_TIME, ask
from ._cell import Cell

log = logging.getLogger("switchover.actors")

HEALTH = "health"
SUPERVISOR = "supervisor"

#: What the health actor publishes: every model that ever failed → its row.
HealthTable = Mapping[str, ModelRow]


def profile_name(provider: str, profile: str) -> str:
    return f"profile:{provider}/{profile}"


def chain_name(index: int) -> str:
    return f"chain:{index}"


@attrs.frozen
class Member:
    """A live actor (None before start) and its cell."""

    ref: pykka.ActorRef[Any] | None
    cell: Cell[Any]


#: Never set: something to wait on while a crashed actor is being replaced.
_NEVER = threading.Event()


class Directory:
    """Holds the current directory; only the supervisor replaces it (one assignment).

    ``closed`` is set when the runtime stops: from then on nobody waits for a replacement.
    Tells that find an actor dead (crashed, its replacement not started yet) wait in
    ``orphans`` for the replacement, which :meth:`forward` hands them to.
    """

    __slots__ = ("closed", "members", "orphans")

    def __init__(self) -> None:
        self.members: Mapping[str, Member] = MappingProxyType({})
        self.closed = False
        self.orphans: dict[str, queue.SimpleQueue[object]] = {}

    def __repr__(self) -> str:
        return f"Directory({len(self.members)} actors)"

    def replace(self, name: str, member: Member) -> None:
        members = dict(self.members)
        members[name] = member
        self.members = MappingProxyType(members)
        self.orphans.setdefault(name, queue.SimpleQueue())

    def cell(self, name: str) -> Cell[Any]:
        return self.members[name].cell

    def health_table(self) -> HealthTable:
        """The health table the health actor last published."""
        table: HealthTable = self.members[HEALTH].cell.state
        return table

    def key_state(self, name: str) -> KeyState:
        """The state the profile actor ``name`` last published."""
        state: KeyState = self.members[name].cell.state
        return state

    def ask(self, name: str, message: object, timeout: float) -> Any:
        """Ask the actor called ``name``, waiting at most ``timeout`` real seconds.

        If it is dead or dies before answering (a crash being restarted), the message goes
        to its replacement once the supervisor has one; a crash while handling *this*
        message is not retried (the message may be what crashes it).

        Raises:
            pykka.Timeout: no answer in time (or no replacement in time).
            pykka.ActorDeadError: the runtime is stopping.
            Exception: whatever the actor's handler raised.
        """
        give_up = REAL_TIME.now() + timeout
        tried: pykka.ActorRef[Any] | None = None
        while True:
            ref = self.members[name].ref
            left = give_up - REAL_TIME.now()
            if self.closed:
                raise pykka.ActorDeadError(f"{name}: the runtime is stopping")
            if ref is None or ref is tried:
                if left <= 0:
                    raise pykka.Timeout(f"{name} was not replaced within {timeout}s")
                REAL_TIME.wait(_NEVER, min(POLL, left))
                continue
            tried = ref
            try:
                return ask(ref, message, max(0.0, left))
            except pykka.ActorDeadError:
                continue

    def tell(self, name: str, message: object) -> None:
        """Send without waiting. A crashed actor's replacement gets the message; once the
        runtime is stopping it is dropped (logged at DEBUG: that is what stopping means)."""
        member = self.members.get(name)
        if member is None or member.ref is None:
            log.warning("no actor %s for %s", name, type(message).__name__)
            return
        try:
            member.ref.tell(message)
            return
        except pykka.ActorDeadError:
            pass
        if self.closed:
            log.debug("the runtime is stopping; dropped %s for %s", type(message).__name__, name)
            return
        self.orphans[name].put(message)
        # The supervisor forwards after it replaced the actor; forwarding here too covers
        # a message queued after the supervisor's pass (whoever comes second sends it).
        self.forward(name)

    def forward(self, name: str) -> None:
        """Send the messages that found ``name`` dead to its current incarnation, if alive."""
        ref = self.members[name].ref
        orphans = self.orphans[name]
        if ref is None or not ref.is_alive():
            return
        while True:
            try:
                message = orphans.get_nowait()
            except queue.Empty:
                return
            try:
                ref.tell(message)
            except pykka.ActorDeadError:  # crashed again: the next replacement gets it
                orphans.put(message)
                return
