"""Crash and hold injection: the testing seam into a running runtime's actors.

The production facade has no public hook for this; these functions reach the runtime's
private handles, and nothing but tests and the soak benchmark should call them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .._runtime import Runtime


def inject_crash(
    rt: Runtime, name: str, *, via: Literal["tell", "ask"] = "tell", wait: bool = True
) -> None:
    """Make actor ``name`` (see ``rt.inspect()``) crash in its handler.

    ``via="tell"`` queues the crash behind what the actor is doing (pykka then kills it);
    ``via="ask"`` is the failed-ask path (pykka alone would keep it running). With ``wait``,
    returns once the supervisor has restarted it.

    Example:
        >>> inject_crash(rt, "health")

    Raises:
        KeyError: no actor has that name.
        SwitchoverError: it was not restarted within the operator timeout.
    """
    rt._inject_crash(name, via, wait)


def inject_hold(rt: Runtime, name: str, release: threading.Event) -> threading.Event:
    """Keep actor ``name`` inside a handler until ``release`` is set.

    Returns an event set once the actor is held. Set ``release`` before stopping the runtime.
    A hold whose ``release`` is already set is a barrier: it is handled after everything
    sent to the actor before it.

    Raises:
        KeyError: no actor has that name.
    """
    return rt._inject_hold(name, release)
