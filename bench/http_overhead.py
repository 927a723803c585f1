"""What switchover adds over a direct httpx stream, against the same loopback fake.

Run (pinned to one core so the numbers compare; ratios come from one run)::

    taskset -c 0 python bench/http_overhead.py            # both wire formats
    taskset -c 0 python bench/http_overhead.py --api openai --rounds 3000

Two measurements per wire format, the direct read and the switchover read interleaved so
drift hits both alike:

* time to first token: from the call to the first text delta of a one-token answer. The
  direct read is what an application would write with httpx alone: ``client.stream``,
  ``iter_lines``, ``json.loads`` of each ``data:`` line until one carries text. Both read
  their stream to the end so keep-alive connections are reused.
* chunk rate: a 1000-chunk answer, chunks per second from its first text delta to its
  last (the time to the first one is the measurement above).

The fake server is ``runtime.testing.FakeServer``; both clients talk to the same one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchover import Config, ProviderConfig, Request, Runtime, TextDelta
from switchover.testing import FakeServer, Reply

KEY = "sk-bench-0123456789"
MESSAGES = [{"role": "user", "content": "hi"}]


Run = Callable[[], tuple[float, float, int]]  # (first token, last token) seconds, text chunks


def _timed(start: float, texts: Iterator[object]) -> tuple[float, float, int]:
    """Times of the first and last text chunk after ``start``, and how many there were."""
    first = last = 0.0
    chunks = 0
    for _ in texts:
        chunks += 1
        last = time.perf_counter() - start
        if not first:
            first = last
    return first, last, chunks


def _direct_openai(client: httpx.Client, url: str) -> Run:
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"authorization": f"Bearer {KEY}", "accept": "text/event-stream"}

    def texts(lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            if line.startswith("data: ") and line != "data: [DONE]":
                choices = json.loads(line[6:]).get("choices")
                if choices and (text := choices[0]["delta"].get("content")):
                    yield text

    def run() -> tuple[float, float, int]:
        start = time.perf_counter()
        with client.stream("POST", url + "/chat/completions", json=body, headers=headers) as r:
            return _timed(start, texts(r.iter_lines()))

    return run


def _direct_anthropic(client: httpx.Client, url: str) -> Run:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 4096, "stream": True}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "accept": "text/event-stream"}

    def texts(lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event.get("type") == "content_block_delta" and (
                    text := event["delta"].get("text")
                ):
                    yield text

    def run() -> tuple[float, float, int]:
        start = time.perf_counter()
        with client.stream("POST", url + "/v1/messages", json=body, headers=headers) as r:
            return _timed(start, texts(r.iter_lines()))

    return run


def _switchover(rt: Runtime) -> Run:
    request = Request(model="p/m", messages=MESSAGES)

    def texts(events: Iterator[object]) -> Iterator[str]:
        for event in events:
            if isinstance(event, TextDelta):
                yield event.text

    def run() -> tuple[float, float, int]:
        start = time.perf_counter()
        with rt.stream(request) as stream:
            return _timed(start, texts(stream))

    return run


def _measure(api: str, rounds: int, long_rounds: int) -> dict[str, float]:
    with FakeServer() as server:
        base_url = server.base_url(api)
        config = Config(
            providers=[ProviderConfig(name="p", api=api, base_url=base_url, profiles={"k": KEY})],
            chain_workers=1,
        )
        with httpx.Client() as client, Runtime(config) as rt:
            direct = (_direct_openai if api == "openai" else _direct_anthropic)(client, base_url)
            ours = _switchover(rt)

            server.default = Reply("ok")
            for _ in range(200):  # warm up both paths and their connections
                direct()
                ours()
            direct_ttft: list[float] = []
            ours_ttft: list[float] = []
            paired: list[float] = []
            for _ in range(rounds):
                a, _, _ = direct()
                b, _, _ = ours()
                direct_ttft.append(a)
                ours_ttft.append(b)
                paired.append(b - a)

            server.default = Reply("x" * 1000, chunks=1000)
            direct_rate: list[float] = []
            ours_rate: list[float] = []
            for _ in range(3):
                direct()
                ours()
            pair = [(direct, direct_rate), (ours, ours_rate)]
            for _ in range(long_rounds):
                for run, rates in pair:
                    first, last, chunks = run()
                    assert chunks == 1000, chunks
                    rates.append((chunks - 1) / (last - first))
                pair.reverse()  # neither side always goes first
            # Each switchover read against the direct read just before it: drift and other
            # processes' bursts hit a pair alike, so the median of the pairs is the steady one.
            ratios = [b / a for a, b in zip(direct_rate, ours_rate, strict=True)]
    return {
        "ttft_direct_p50_ms": statistics.median(direct_ttft) * 1e3,
        "ttft_switchover_p50_ms": statistics.median(ours_ttft) * 1e3,
        "ttft_added_p50_ms": statistics.median(paired) * 1e3,
        "rate_direct_chunks_per_s": statistics.median(direct_rate),
        "rate_switchover_chunks_per_s": statistics.median(ours_rate),
        "rate_ratio": statistics.median(ratios),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", choices=["openai", "anthropic"], action="append")
    parser.add_argument("--rounds", type=int, default=2000, help="first-token rounds")
    parser.add_argument("--long-rounds", type=int, default=200, help="1000-chunk rounds")
    args = parser.parse_args()
    for api in args.api or ["openai", "anthropic"]:
        result = _measure(api, args.rounds, args.long_rounds)
        print(
            f"{api:9}  first token p50: direct {result['ttft_direct_p50_ms']:.3f} ms, "
            f"switchover {result['ttft_switchover_p50_ms']:.3f} ms, "
            f"added (paired p50) {result['ttft_added_p50_ms']:.3f} ms  (target <= 0.3)"
        )
        print(
            f"{'':9}  1000-chunk read: direct {result['rate_direct_chunks_per_s']:,.0f}/s, "
            f"switchover {result['rate_switchover_chunks_per_s']:,.0f}/s, "
            f"ratio (paired p50) {result['rate_ratio']:.2f}  (target >= 0.9)"
        )


if __name__ == "__main__":
    main()
