"""Scripted answers shared by the in-process ScriptedProvider and the loopback FakeServer.

A :class:`Script` maps (model, key) to a queue of steps, the last of which repeats; a rule
function decides the calls no script matches; everything else gets the default. The step
values describe an answer independently of how it is delivered, so a fault schedule written
for one fake works on the other.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from .._core._types import ToolCall, Usage


@attrs.frozen
class Reply:
    """A successful stream: ``text`` split into ``chunks`` deltas, then Done.

    ``delay`` is the wait before the first event; ``chunk_delay`` the gap between events.
    """

    text: str = "ok"
    chunks: int = 1
    delay: float = 0.0
    chunk_delay: float = 0.0
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    usage: Usage | None = None

    def pieces(self) -> list[str]:
        """``text`` cut into at most ``chunks`` nearly equal pieces."""
        if not self.text:
            return []
        chunks = max(1, min(self.chunks, len(self.text)))
        size = -(-len(self.text) // chunks)
        return [self.text[i : i + size] for i in range(0, len(self.text), size)]


@attrs.frozen
class Fail:
    """An HTTP error response, classified exactly as a real one would be."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0


@attrs.frozen
class StreamError:
    """A 200 stream whose first frame is an error event (classified by its body)."""

    body: Any


@attrs.frozen
class Cut:
    """A stream that sends ``after`` text deltas and then drops the connection."""

    after: int = 1
    text: str = "partial "


@attrs.frozen
class Hang:
    """An upstream that accepts the call and never sends anything."""


@attrs.frozen
class Refuse:
    """A connection refused (in-process) or reset (over HTTP) before any response."""


Step = Reply | Fail | StreamError | Cut | Hang | Refuse

S = TypeVar("S")
C = TypeVar("C")


class Script(Generic[S, C]):
    """Which step answers a call: scripts by (model, key), then a rule, then the default.

    Thread-safe. ``rule`` may be swapped while calls are running; it is called outside the
    lock, so it may be slow or consult anything it likes.
    """

    def __init__(self, default: S) -> None:
        self.default = default
        self._scripts: dict[tuple[str | None, str | None], collections.deque[S]] = {}
        self._rule: Callable[[C], S | None] | None = None
        self._lock = threading.Lock()

    def script(self, model: str | None, *steps: S, key: str | None = None) -> None:
        """Queue ``steps`` for calls to ``model`` (None: any model) with ``key`` (None: any).

        Each call takes the next step; the last one repeats until replaced.
        """
        if not steps:
            raise ValueError("script() needs at least one step")
        with self._lock:
            self._scripts[(model, key)] = collections.deque(steps)

    def rule(self, fn: Callable[[C], S | None] | None) -> None:
        """Decide calls no script matches with ``fn(call)``; None from it means the default."""
        self._rule = fn

    def clear(self) -> None:
        """Drop every script and the rule."""
        with self._lock:
            self._scripts.clear()
        self._rule = None

    def next(self, model: str, key: str, call: C) -> S:
        """The step that answers ``call``, the most specific script first."""
        with self._lock:
            for match in ((model, key), (model, None), (None, key), (None, None)):
                steps = self._scripts.get(match)
                if steps:
                    return steps.popleft() if len(steps) > 1 else steps[0]
        rule = self._rule
        if rule is not None:
            step = rule(call)
            if step is not None:
                return step
        return self.default
