"""Keeping API keys out of every message, repr, snapshot and log line."""

from __future__ import annotations

import hashlib
import logging
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Key-shaped tokens: OpenAI ``sk-...``, Anthropic ``sk-ant-...``, and similar prefixes.
_KEY_SHAPED = re.compile(r"\b(?:sk|pk|rk|key|api[_-]?key)[-_][A-Za-z0-9*._\-]{6,}", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer)\s+\S+")
#: The shortest piece of a key that must never appear.
PIECE = 8
MAX_MESSAGE = 200
#: How many texts :meth:`Redactor.known` remembers, each at most KNOWN_TEXT long.
KNOWN_CACHE = 8192
KNOWN_TEXT = 256
#: Most characters of a traceback logged (a huge exception message is cut, not searched).
MAX_TRACEBACK = 16_000
REDACTED = "[redacted]"


def fingerprint(key: str) -> str:
    """A short, stable, non-reversible name for a key, safe to show."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:10]


#: What may stand next to a short key for it to count as a whole token: a key's own
#: alphabet (letters, digits, ``_-./+~``) glued to it makes it part of a longer word.
_TOKEN_EDGE = r"[\w./+~-]"


class Redactor:
    """Removes known keys (and any 8-character piece of one) plus key-shaped tokens.

    Calling it does both, for free text (provider messages, error text). :meth:`known`
    removes only the configured keys, for names and ids whose shape is legitimate (a
    profile may be called ``key_backup``) but which must still never carry a real key.

    A key shorter than :data:`PIECE` (Ollama's documented ``ollama``, a local server's
    ``x``) guards nothing a substring search could keep: it is removed from free text only
    where it stands as a whole token, and never from names (a provider called ``ollama``
    keeps its name).
    """

    __slots__ = ("_count", "_known", "_pieces", "_short")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        pieces: set[str] = set()
        short: set[str] = set()
        for secret in (s.strip() for s in secrets):  # the wire sends keys stripped
            if len(secret) < PIECE:
                short.add(secret)
            else:
                pieces.update(secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1))
        self._count = len(pieces)
        #: known() of recent texts: snapshots render the same names over and over, and
        #: the piece search costs ~30 us a string. Plain dict operations (atomic).
        self._known: dict[str, str] = {}
        # A lookahead finds every start of a piece, overlapping ones too, at C speed.
        self._pieces = (
            re.compile("(?=(" + "|".join(map(re.escape, sorted(pieces))) + "))") if pieces else None
        )
        tokens = "|".join(map(re.escape, sorted((s for s in short if s), key=len, reverse=True)))
        self._short = (
            re.compile(f"(?<!{_TOKEN_EDGE})(?:{tokens})(?!{_TOKEN_EDGE})") if tokens else None
        )

    def __repr__(self) -> str:
        return f"Redactor({self._count} pieces)"

    def __call__(self, text: str, *, limit: int | None = MAX_MESSAGE) -> str:
        """Return ``text`` with secrets replaced, cut to ``limit`` characters."""
        if limit is not None:
            # Cut first: a megabyte of exception text must not cost a megabyte of search.
            # A key cut in two keeps pieces of 8 characters on the near side, found below.
            text = text[: limit + 1]
        text = _KEY_SHAPED.sub(REDACTED, text)
        text = _BEARER.sub(r"\1 " + REDACTED, text)
        text = self.known(text)
        if self._short is not None:
            text = self._short.sub(REDACTED, text)
        if limit is not None and len(text) > limit:
            text = text[: limit - 1] + "…"
        return text

    def known(self, text: str) -> str:
        """Return ``text`` with the configured keys, and any piece of one, replaced
        (short keys excepted, see the class)."""
        if len(text) > KNOWN_TEXT:
            return self._remove_pieces(text)
        clean = self._known.get(text)
        if clean is None:
            clean = self._remove_pieces(text)
            if len(self._known) >= KNOWN_CACHE:
                self._known.clear()
            self._known[text] = clean
        return clean

    def _remove_pieces(self, text: str) -> str:
        if self._pieces is None:
            return text
        hidden = bytearray(len(text))
        for match in self._pieces.finditer(text):
            start = match.start()
            hidden[start : start + PIECE] = b"\x01" * len(text[start : start + PIECE])
        if not any(hidden):
            return text
        out: list[str] = []
        index = 0
        while index < len(text):
            if hidden[index]:
                while index < len(text) and hidden[index]:
                    index += 1
                out.append(REDACTED)
            else:
                out.append(text[index])
                index += 1
        return "".join(out)


def scrub(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` with ``redact`` applied to every string in it (mappings and sequences)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {scrub(k, redact): scrub(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v, redact) for v in value)
    return value


def redacted_traceback(error: BaseException, redact: Redactor) -> str:
    """``error`` with its traceback as text, secrets removed: an adapter's own exception
    may quote the key it was handed."""
    return redact("".join(traceback.format_exception(error)).rstrip(), limit=MAX_TRACEBACK)


#: The loggers of httpx and httpcore: they print URLs and headers, so keys, at INFO/DEBUG.
TRANSPORT_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class RecordScrubber(logging.Filter):
    """Rewrites a log record's message with the secrets removed (it never drops one).

    Installed on :data:`TRANSPORT_LOGGERS` while a runtime runs: a filter on a logger sees
    only that logger's own records, which is why each one is named.
    """

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report
            return True
        clean = self._redact(message, limit=None)
        if clean != message:
            record.msg, record.args = clean, None
        return True

    def install(self) -> None:
        for name in TRANSPORT_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def remove(self) -> None:
        for name in TRANSPORT_LOGGERS:
            logging.getLogger(name).removeFilter(self)
