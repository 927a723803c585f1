"""What a request's observed records add up to: failovers and in-place retries.

The observer protocol reports calls one by one; a failover (a call on a new chain entry
after an earlier one failed or was skipped) and an in-place retry (a call on the same entry
and key right after its failure) are facts about consecutive records of one request. Logs,
metrics and traces all need them, so they are worked out here once.

A step is worked out when its call is announced (``attempt_began``) or, for a call that
was not announced, when it ends: the same facts either way, never twice.

Thread-safety: one request's hooks run one after another (the caller's thread, then its
chain worker, then the caller's again: each hands over to the next), so a request's
``_Walk`` is never touched by two threads at once. Different requests only insert and pop
their own keys of the shared dict, which are atomic operations.
"""

from __future__ import annotations

import attrs

from ._observe import AttemptBegan, AttemptRecord, RequestClosed, RequestOpened

#: Why a request left a chain entry: its last call's error kind, or ``skipped``.
LeftBecause = str


@attrs.frozen
class Step:
    """One call of one request, as its walk sees it.

    ``position`` is the chain entry's index in the request's chain; ``failover_from`` the
    entry the request left to make this call (None if it did not move), with ``because``
    why; ``retry`` marks an in-place retry of a failed call on the same entry and key.
    """

    request_id: int
    model: str
    provider: str
    profile: str | None
    position: int
    failover_from: str | None
    because: LeftBecause | None
    retry: bool


@attrs.frozen
class WalkSummary:
    """A closed request's walk: its chain, when it opened, the entry that served it (if
    one committed), the calls and skips it made."""

    chain: tuple[str, ...]
    opened_at: float
    served: str | None
    calls: int
    skips: int
    failovers: int


@attrs.define
class _Walk:
    chain: tuple[str, ...]
    opened_at: float
    last_entry: str | None = None
    last_call: tuple[str, str | None] | None = None
    last_error: str | None = None  # the kind of the last call's failure, if it failed
    announced: tuple[str, str | None] | None = None  # a began call whose end is awaited
    served: str | None = None
    calls: int = 0
    skips: int = 0
    failovers: int = 0


class Walks:
    """Per-request walk state, from request_opened to request_closed."""

    __slots__ = ("_walks",)

    def __init__(self) -> None:
        self._walks: dict[int, _Walk] = {}

    def opened(self, event: RequestOpened) -> None:
        self._walks[event.request_id] = _Walk(chain=event.chain, opened_at=event.at)

    def opened_at(self, request_id: int) -> float | None:
        walk = self._walks.get(request_id)
        return None if walk is None else walk.opened_at

    def position(self, request_id: int, model: str) -> int:
        """The entry's index in the request's chain (-1 if the request or entry is unknown)."""
        walk = self._walks.get(request_id)
        if walk is None or model not in walk.chain:
            return -1
        return walk.chain.index(model)

    def began(self, event: AttemptBegan) -> Step | None:
        """A call was announced: its step (None for a request not seen opening)."""
        walk = self._walks.get(event.request_id)
        if walk is None:
            return None
        walk.announced = (event.model, event.profile)
        return self._call(walk, event.request_id, event.model, event.provider, event.profile)

    def ended(self, event: AttemptRecord) -> Step | None:
        """A call ended or an entry was skipped: the call's step, unless ``began`` already
        gave it (None then, for a skip, and for a request not seen opening)."""
        walk = self._walks.get(event.request_id)
        if walk is None:
            return None
        step = None
        if event.outcome == "skipped":
            walk.skips += 1
            walk.last_entry = event.model
            walk.last_error = "skipped"
            return None
        if walk.announced == (event.model, event.profile):
            walk.announced = None
        else:
            step = self._call(walk, event.request_id, event.model, event.provider, event.profile)
        walk.last_error = None if event.kind is None else str(event.kind)
        if event.first_at is not None:
            walk.served = event.model
        return step

    def _call(
        self, walk: _Walk, request_id: int, model: str, provider: str, profile: str | None
    ) -> Step:
        moved = walk.last_entry is not None and walk.last_entry != model
        retry = walk.last_call == (model, profile) and walk.last_error not in (None, "skipped")
        step = Step(
            request_id=request_id,
            model=model,
            provider=provider,
            profile=profile,
            position=walk.chain.index(model) if model in walk.chain else -1,
            failover_from=walk.last_entry if moved else None,
            because=walk.last_error if moved else None,
            retry=retry,
        )
        walk.calls += 1
        walk.failovers += moved
        walk.last_entry = model
        walk.last_call = (model, profile)
        return step

    def closed(self, event: RequestClosed) -> WalkSummary | None:
        walk = self._walks.pop(event.request_id, None)
        if walk is None:
            return None
        return WalkSummary(
            chain=walk.chain,
            opened_at=walk.opened_at,
            served=walk.served,
            calls=walk.calls,
            skips=walk.skips,
            failovers=walk.failovers,
        )
