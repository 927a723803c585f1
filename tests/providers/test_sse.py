"""The SSE decoder: framing, limits, strict UTF-8, and any re-chunking of the bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from switchover.providers._sse import SSEDecoder, SSEError


def decode(*chunks: bytes, limit: int = 1 << 20) -> list[tuple[str, str]]:
    decoder = SSEDecoder(limit)
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.flush()


@pytest.mark.parametrize(
    ("stream", "events"),
    [
        pytest.param(b"data: a\n\n", [("", "a")], id="lf"),
        pytest.param(b"data: a\r\n\r\n", [("", "a")], id="crlf"),
        pytest.param(b"data: a\r\rdata: b\r\r", [("", "a"), ("", "b")], id="cr"),
        pytest.param(b"event: ping\ndata: {}\n\n", [("ping", "{}")], id="named"),
        pytest.param(b"data: 1\ndata: 2\n\n", [("", "1\n2")], id="multi-line data"),
        pytest.param(b"data:tight\n\n", [("", "tight")], id="no space after colon"),
        pytest.param(b"data:  two\n\n", [("", " two")], id="only one space stripped"),
        pytest.param(b": keep-alive\n\ndata: x\n\n", [("", "x")], id="comment"),
        pytest.param(b"event: e\n\ndata: x\n\n", [("", "x")], id="event without data"),
        pytest.param(b"id: 7\nretry: 10\ndata: x\n\n", [("", "x")], id="id and retry"),
        pytest.param(b"\xef\xbb\xbfdata: x\n\n", [("", "x")], id="bom"),
        pytest.param(b"data: [DONE]", [("", "[DONE]")], id="unterminated at eof"),
        pytest.param(b"data: x\n", [("", "x")], id="no blank line at eof"),
        pytest.param(
            'data: "h\u00e9 \u2603 \U0001f600"\n\n'.encode(),
            [("", '"h\u00e9 \u2603 \U0001f600"')],
            id="utf-8",
        ),
    ],
)
def test_framing(stream: bytes, events: list[tuple[str, str]]) -> None:
    assert decode(stream) == events


def test_invalid_utf8_is_an_error() -> None:
    with pytest.raises(SSEError, match="UTF-8"):
        decode(b'data: {"x": "\xff\xfe"}\n\n')


def test_a_line_over_the_limit_fails_before_it_ends() -> None:
    decoder = SSEDecoder(limit=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(SSEError, match="larger than 100 bytes"):
        decoder.feed(b"x" * 20)  # no newline yet: the decoder must not keep buffering


def test_an_event_over_the_limit_fails() -> None:
    with pytest.raises(SSEError, match="larger than 100 bytes"):
        decode(b"data: " + b"x" * 40 + b"\n" + (b"data: " + b"x" * 40 + b"\n") * 2, limit=100)


def test_a_whole_oversized_line_in_one_chunk_fails() -> None:
    with pytest.raises(SSEError):
        decode(b"data: " + b"x" * 200 + b"\n\n", limit=100)


def test_events_under_the_limit_never_accumulate() -> None:
    decoder = SSEDecoder(limit=100)
    for _ in range(1000):
        assert decoder.feed(b"data: " + b"x" * 80 + b"\n\n") == [("", "x" * 80)]


# --- re-chunking ------------------------------------------------------------------------------

_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=20,
)
_events = st.lists(
    st.tuples(st.sampled_from(["", "message_start", "content_block_delta"]), _texts),
    min_size=1,
    max_size=8,
)


def _encode(events: list[tuple[str, str]], newline: bytes) -> bytes:
    out = b""
    for name, data in events:
        if name:
            out += b"event: " + name.encode() + newline
        out += b"data: " + data.encode() + newline + newline
    return out


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(
    events=_events,
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30),
)
def test_any_rechunking_gives_the_same_events(
    events: list[tuple[str, str]], newline: bytes, cuts: list[int]
) -> None:
    data = _encode(events, newline)
    assert decode(*_chunked(data, cuts)) == decode(data) == events


@given(cut=st.integers(min_value=1, max_value=3), split_at=st.integers(min_value=0, max_value=8))
def test_a_multibyte_character_split_across_chunks(cut: int, split_at: int) -> None:
    # U+1F600 is four bytes in UTF-8: cut it at every inner position.
    data = 'data: {"t": "ab\U0001f600cd"}\n\n'.encode()
    start = data.index("\U0001f600".encode()) + cut
    pieces = [data[: start - split_at], data[start - split_at : start], data[start:]]
    assert decode(*pieces) == [("", '{"t": "ab\U0001f600cd"}')]


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=20))
def test_arbitrary_bytes_only_ever_raise_sse_error(data: bytes, cuts: list[int]) -> None:
    try:
        rechunked = decode(*_chunked(data, cuts), limit=64)
    except SSEError:
        return
    assert rechunked == decode(data, limit=64)
