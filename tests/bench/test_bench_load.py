"""The load driver's closed loop: a fixed number of callers, each sending its next request
when the last one ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from switchover.bench._load import Clock, Outcome, Planned, drive, plan
from switchover.bench._scenario import Scenario, parse_scenario

CLOSED = """
name = "closed"
duration = 20
speedup = 40
chain = ["openai/gpt-4o"]

[load]
mode = "closed"
clients = 4
"""


class Slow:
    """A system that answers every request after 10 ms and counts who is calling at once."""

    name = "slow"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def start(self, scenario: Scenario, urls: Mapping[str, str]) -> None: ...

    def send(
        self, planned: Planned, messages: Sequence[Mapping[str, Any]], first: Callable[[], None]
    ) -> Outcome:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        first()
        time.sleep(0.01)  # the system's own answer time, not a wait in the test
        with self.lock:
            self.running -= 1
        return Outcome(served="openai/gpt-4o@main")

    def stop(self) -> None: ...


def test_a_closed_loop_keeps_its_clients_busy_until_the_end() -> None:
    scenario = parse_scenario(CLOSED)
    assert plan(scenario) == []  # nothing is planned ahead
    system = Slow()
    records = drive(system, scenario, [], Clock(scenario, time.monotonic()))
    assert system.most == 4
    assert len(records) > 4 * 10  # 0.5 s of 10 ms answers from 4 callers
    assert [r.id for r in records] == list(range(len(records)))
    assert all(r.ok for r in records)
    assert max(r.at for r in records) < scenario.duration
