"""Server-sent events from raw bytes, with bounded memory.

httpx-sse is not used: it buffers a line of any length (a 10 MB line, or an endless one,
is held whole), and it decodes through ``Response.iter_text`` with ``errors="replace"``,
so corrupt UTF-8 silently becomes U+FFFD instead of failing the attempt. This decoder
splits lines on bytes, where a multi-byte UTF-8 character can never straddle a line end,
decodes each complete line strictly, and refuses any line or event above ``limit`` bytes.

Framing follows the WHATWG event-stream rules: lines end in CRLF, LF or CR; ``:`` starts a
comment; ``data`` lines of one event are joined with ``\\n``; a blank line dispatches the
event; a leading BOM is ignored. ``id`` and ``retry`` are read and dropped, since an LLM
stream is never resumed.
"""

from __future__ import annotations

#: The largest line or event accepted (1 MiB). A token stream's events are a few hundred
#: bytes; even a large tool-call argument block arrives in pieces far below this.
MAX_EVENT_BYTES = 1 << 20

_BOM = b"\xef\xbb\xbf"


class SSEError(ValueError):
    """The bytes are not a well-formed event stream (or exceed the size limit)."""


class SSEDecoder:
    """Feed it byte chunks of any size; it returns the complete ``(event, data)`` pairs.

    The decoder the built-in adapters use, public for your own (``switchover.providers``).
    ``event`` is the ``event:`` field, or ``""`` when the server sent none. Call
    :meth:`flush` at the end of the body. A line or event over ``limit`` bytes, or bytes
    that are not UTF-8, raise :class:`SSEError`.

    Example:
        >>> decoder = SSEDecoder()
        >>> decoder.feed(b'data: {"a": 1}\\n\\nda')
        [('', '{"a": 1}')]
    """

    __slots__ = (
        "_cr",
        "_data",
        "_event",
        "_held",
        "_limit",
        "_names",
        "_partial",
        "_pending",
        "_started",
    )

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self._limit = limit
        self._partial: list[bytes] = []  # the current unterminated line, in pieces
        self._pending = 0  # bytes in _partial
        self._held = 0  # bytes of data held for the current event
        self._cr = False  # the last chunk ended in CR: a LF starting the next one is its pair
        self._started = False  # the first line (where a BOM may sit) has been seen
        self._event = ""
        self._data: list[bytes] = []
        self._names: dict[bytes, str] = {}  # event lines already decoded

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """Decode one chunk; raises :class:`SSEError` on bad UTF-8 or an oversized event."""
        if (
            chunk[-2:] == b"\n\n"
            and 13 not in chunk  # CR; an int needle is a memchr, a bytes one is not
            and self._started
            and not (self._partial or self._data or self._cr)
            and len(chunk) <= self._limit
        ):
            # The hot path: servers write one whole event per chunk, usually one ``data``
            # line, perhaps after an ``event`` line. Anything else takes the general path.
            body = chunk[:-2]
            if 10 not in body:
                if body[:6] == b"data: ":
                    name, self._event = self._event, ""
                    return [(name, _utf8(body[6:]))]
            elif body[:7] == b"event: ":
                head, _, line = body.partition(b"\n")
                if line[:6] == b"data: " and 10 not in line:
                    self._event = ""
                    known = self._names.get(head)
                    if known is None:
                        known = _utf8(head[7:])
                        if len(self._names) < 64:  # a stream uses a handful of event names
                            self._names[head] = known
                    return [(known, _utf8(line[6:]))]
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if 13 in chunk:
            self._cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if not lines:  # no line ends here: keep the piece and check the bound
            if tail:
                self._partial.append(tail)
                self._pending += len(tail)
                if self._pending + self._held > self._limit:
                    raise SSEError(f"an event stream line is larger than {self._limit} bytes")
            return []
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
        self._partial = [tail] if tail else []
        self._pending = len(tail)
        events = self._lines(lines)
        if self._pending + self._held > self._limit:
            raise SSEError(f"an event stream line or event is larger than {self._limit} bytes")
        return events

    def flush(self) -> list[tuple[str, str]]:
        """The end of the body: an unterminated last line or event still counts.

        Servers that close right after ``data: [DONE]`` with no blank line are common
        enough that dropping their last event (as a browser would) helps nobody.
        """
        lines = [b"".join(self._partial)] if self._partial else []
        self._partial = []
        self._pending = 0
        return self._lines([*lines, b""])

    def _lines(self, lines: list[bytes]) -> list[tuple[str, str]]:
        events: list[tuple[str, str]] = []
        if not self._started:
            self._started = True
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][len(_BOM) :]
        data = self._data
        for raw in lines:
            if not raw:
                if data:
                    events.append((self._event, _utf8(b"\n".join(data))))
                    data.clear()
                    self._held = 0
                self._event = ""
            elif raw[:5] == b"data:":  # the hot path: no decoding until the event is whole
                data.append(raw[6:] if raw[5:6] == b" " else raw[5:])
                self._held += len(raw)
                if self._held > self._limit:
                    raise SSEError(f"an event stream event is larger than {self._limit} bytes")
            elif raw[:1] != b":":
                if len(raw) > self._limit:
                    raise SSEError(f"an event stream line is larger than {self._limit} bytes")
                name, colon, value = _utf8(raw).partition(":")
                if colon and value[:1] == " ":
                    value = value[1:]
                if name == "data":
                    data.append(value.encode())
                elif name == "event":
                    self._event = value
        return events


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as error:
        raise SSEError(f"the event stream is not valid UTF-8: {error.reason}") from None
