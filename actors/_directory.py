"""The name → actor directory the supervisor publishes, and fire-and-forget reporting."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs
import pykka

from ._base import Cell

log = logging.getLogger("switchover.actors")

HEALTH = "health"
SUPERVISOR = "supervisor"


def profile_name(provider: str, profile: str) -> str:
    return f"profile:{provider}/{profile}"


def chain_name(index: int) -> str:
    return f"chain:{index}"


@attrs.frozen
class Member:
    """A live actor (None before start) and its cell."""

    ref: pykka.ActorRef[Any] | None
    cell: Cell


class Directory:
    """Holds the current directory; only the supervisor replaces it (one assignment)."""

    __slots__ = ("members",)

    def __init__(self) -> None:
        self.members: Mapping[str, Member] = MappingProxyType({})

    def __repr__(self) -> str:
        return f"Directory({len(self.members)} actors)"

    def replace(self, name: str, member: Member) -> None:
        members = dict(self.members)
        members[name] = member
        self.members = MappingProxyType(members)

    def cell(self, name: str) -> Cell:
        return self.members[name].cell

    def tell(self, name: str, message: object) -> None:
        """Send without waiting; a dead or missing actor drops the message (logged)."""
        member = self.members.get(name)
        if member is None or member.ref is None:
            log.warning("no actor %s for %s", name, type(message).__name__)
            return
        try:
            member.ref.tell(message)
        except pykka.ActorDeadError:
            log.warning("actor %s is dead; dropped %s", name, type(message).__name__)
