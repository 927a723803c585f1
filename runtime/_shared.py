"""The shared link: this process's key and model transitions to Redis, and other processes'
transitions from Redis to this process's actors (see docs/shared.md).

It sits beside the actors and touches them at two points. Publishing: it is an
:class:`Observer`; ``key_changed`` / ``model_changed`` put the change in a pending table
(latest per target, a dict assignment under a lock never held across I/O) and wake the
writer thread, so an actor never waits on Redis. Receiving: a subscriber thread decodes each
message (anything malformed or foreign is ignored with a warning) and hands it to
``deliver``, which the facade routes to the owning actor's mailbox.

Redis layout under ``<namespace>:``: ``events`` (the pub/sub channel), ``state:<type>:<target>``
(a hash: origin id -> that process's latest record, expiring ``RETENTION`` after its last
write), ``index`` (the set of those hashes, read on resynchronisation) and
``lease:<type>:<target>`` (the probe lease: the origin id of the process that probes the
target when its cooldown ends; ``SET NX PX`` in a script, so exactly one holds it).

Faults: any Redis error marks the link down (logged once, shown in ``inspect()``); the
threads reconnect with full-jitter backoff, then republish this process's latest records
(Redis may have restarted empty) and re-read every hash.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._core._clock import Clock, SystemClock
from ._core._config import Config, RetryConfig, SharedConfig, masked_url
from ._core._observe import KeyChange, ModelChange, Observer
from ._core._policy import retry_delay
from ._core._redact import Redactor, fingerprint
from ._core._remote import Remote, RemoteKey, RemoteModel, decode, encode
from ._core._snapshot import ActorSnapshot, Handled
from ._core._vocab import HealthState

log = logging.getLogger("switchover.shared")

#: Seconds a target's hash lives after its last write.
RETENTION = 86_400
#: An idle writer pings this often, so a partition shows even with nothing to write.
HEARTBEAT = 1.0
#: How long the subscriber blocks for one message before checking for a stop or a reset.
POLL = 0.1
#: Remote records remembered for the debug mailbox.
RECENT = 32
#: The threads wait in real time, whatever clock converts the deadlines.
_REAL = SystemClock()

# One round trip per transition: take (or free) the probe lease, name the holder in the
# record, store it and publish it. Exactly one process holds a lease: SET NX PX.
_PUBLISH = """
local holder = false
if ARGV[2] == 'take' then
  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then
    holder = ARGV[1]
  else
    holder = redis.call('GET', KEYS[1])
  end
elseif ARGV[2] == 'free' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
local value = ARGV[4]
if holder then
  value = string.sub(value, 1, -2) .. ',"prober":' .. cjson.encode(holder) .. '}'
end
redis.call('HSET', KEYS[2], ARGV[1], value)
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('PUBLISH', ARGV[6], value)
return holder
"""


def key_target(provider: str, key: str) -> str:
    """A key's shared name: the same key under any profile name in any process."""
    return f"{provider}/{fingerprint(key)}"


class SharedLink(Observer):
    """Publishes this process's transitions and receives the others'; never blocks a caller."""

    def __init__(self, config: Config, *, clock: Clock, rng: random.Random) -> None:
        assert config.shared is not None
        self.shared: SharedConfig = config.shared
        self._cooldown = config.cooldown
        self._clock = clock
        self._rng = rng
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{rng.getrandbits(24):06x}"
        self._keys = {
            (p.name, profile): key_target(p.name, key)
            for p in config.providers
            for profile, key in p.profiles.items()
        }
        #: A key's shared name -> the (provider, profile) pairs holding that key here.
        self.holders: dict[str, tuple[tuple[str, str], ...]] = {}
        for pair, target in self._keys.items():
            self.holders[target] = (*self.holders.get(target, ()), pair)
        self._backoff = RetryConfig(
            attempts=1, min_delay=self.shared.reconnect_min, max_delay=self.shared.reconnect_max
        )
        password = urllib.parse.urlsplit(self.shared.url).password
        self._redact = Redactor([password] if password else [])
        ns = self.shared.namespace
        self._channel = f"{ns}:events"
        self._index = f"{ns}:index"
        self._prefix = ns
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Remote] = {}
        self._latest: dict[tuple[str, str], Remote] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reset = threading.Event()  # the writer saw Redis fail: the subscriber reconnects
        self._deliver: Callable[[Remote], None] | None = None
        self._threads: list[threading.Thread] = []
        self._client: redis.Redis | None = None
        # Status: written by the link threads, read by inspect() (plain attribute reads).
        self._writer_up = False
        self._reader_up = False
        self._up = False
        self._logged_down = False
        self._since = clock.wall()
        self._error: str | None = None
        self._counts = collections.Counter[str]()
        self._warned: set[str] = set()
        self._recent: collections.deque[tuple[Remote, float]] = collections.deque(maxlen=RECENT)

    def __repr__(self) -> str:
        return f"SharedLink({masked_url(self.shared.url)!r}, {'up' if self._up else 'down'})"

    @property
    def up(self) -> bool:
        """Whether both directions of the link work right now."""
        return self._up

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, deliver: Callable[[Remote], None]) -> None:
        """Start the writer and subscriber threads; ``deliver`` gets each remote record."""
        self._deliver = deliver
        self._client = redis.Redis.from_url(
            self.shared.url,
            socket_timeout=self.shared.timeout,
            socket_connect_timeout=self.shared.timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        # EVALSHA, loading the script again after a restart of Redis.
        self._publish = self._client.register_script(_PUBLISH)
        for name, loop in (("writer", self._write_loop), ("subscriber", self._read_loop)):
            thread = threading.Thread(target=loop, name=f"switchover-shared-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop both threads (each within its Redis timeout) and close the connections."""
        self._stopping.set()
        self._wake.set()
        give_up = _REAL.now() + timeout
        for thread in self._threads:
            thread.join(max(0.0, give_up - _REAL.now()))
        if self._client is not None:
            self._client.close()

    # -- publishing (Observer hooks, on the actor's thread) -----------------------------------

    def key_changed(self, event: KeyChange) -> None:
        target = self._keys.get((event.provider, event.profile))
        if event.origin is not None or target is None:
            return  # applied from elsewhere: that process published it
        self._enqueue(
            RemoteKey(
                origin=self.origin,
                target=target,
                at=event.before,
                cooldown_until=event.cooldown_until,
                failures=event.failures,
                kind=event.kind,
                model=event.model,
            )
        )

    def model_changed(self, event: ModelChange) -> None:
        if event.origin is not None:
            return
        self._enqueue(
            RemoteModel(
                origin=self.origin,
                target=event.model,
                at=event.before,
                state=event.state,
                until=event.until,
                count=event.count,
                kind=event.kind,
                probe_until=event.probe_until,
            )
        )

    def _enqueue(self, record: Remote) -> None:
        with self._lock:
            self._pending[_slot(record)] = record
        self._wake.set()

    # -- the writer thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                if not self._writer_up:
                    self._connect_writer()
                    failures = 0
                self._flush()
                if not self._wake.wait(HEARTBEAT) and not self._stopping.is_set():
                    self._redis().ping()
                self._wake.clear()
            except (redis.RedisError, OSError) as error:
                failures += 1
                self._writer_up = False
                self._reset.set()
                self._went_down("writing", error)
                self._stopping.wait(retry_delay(self._backoff, failures, self._rng))

    def _connect_writer(self) -> None:
        self._redis().ping()
        with self._lock:
            # Redis may have restarted empty: publish this process's latest state again.
            self._pending = {**self._latest, **self._pending}
        self._writer_up = True
        self._maybe_up()

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                slot, record = next(iter(self._pending.items()))
            self._write(record)
            with self._lock:
                if self._pending.get(slot) is record:
                    del self._pending[slot]  # (a newer one may have arrived meanwhile)
                self._latest[slot] = record

    def _write(self, record: Remote) -> None:
        now, wall = self._clock.now(), self._clock.wall()
        kind, target = _slot(record)
        until = _cooldown_end(record)
        mode, ttl = "keep", 0
        if until is not None and until > now:
            # The first to cool the target probes it when the cooldown ends.
            mode, ttl = "take", max(1, round((until - now + self.shared.probe_grace) * 1000))
        elif _recovered(record):
            mode = "free"
        holder = self._publish(
            keys=[
                f"{self._prefix}:lease:{kind}:{target}",
                f"{self._prefix}:state:{kind}:{target}",
                self._index,
            ],
            args=[
                self.origin,
                mode,
                ttl,
                encode(record, now=now, wall=wall),
                f"{kind}:{target}",
                self._channel,
                RETENTION,
            ],
        )
        if isinstance(holder, bytes) and holder.decode() != self.origin:
            # Another process probes it: this one leaves the probe to that one too.
            prober = holder.decode()
            self._hand(attrs.evolve(record, origin=prober, prober=prober))
        self._counts["published"] += 1

    # -- the subscriber thread -----------------------------------------------------------------

    def _read_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            pubsub = self._redis().pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                # Subscribed first, then read: nothing published in between is missed.
                self._resync()
                self._reset.clear()
                self._reader_up = True
                self._maybe_up()
                failures = 0
                while not self._stopping.is_set() and not self._reset.is_set():
                    message = pubsub.get_message(timeout=POLL)
                    if message is not None and message.get("type") == "message":
                        self._receive(message["data"])
            except (redis.RedisError, OSError) as error:
                failures += 1
                self._reader_up = False
                self._went_down("subscribing", error)
                self._stopping.wait(retry_delay(self._backoff, failures, self._rng))
            else:
                self._reader_up = False  # a reset: the writer saw Redis fail
            finally:
                pubsub.close()

    def _resync(self) -> None:
        """Read every shared hash and deliver the other processes' records, oldest first."""
        client = self._redis()
        members: set[bytes] = client.smembers(self._index)  # type: ignore[assignment]
        names = sorted(m.decode(errors="replace") for m in members)
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(f"{self._prefix}:state:{name}")
        records: list[Remote] = []
        for name, fields in zip(names, pipe.execute(), strict=True):
            if not fields:
                client.srem(self._index, name)  # expired: nobody wrote it for a day
            for origin, value in fields.items():
                if origin.decode(errors="replace") != self.origin:
                    record = self._decoded(value)
                    if record is not None:
                        records.append(record)
        for record in sorted(records, key=lambda r: r.at):
            self._hand(record)
        self._counts["resyncs"] += 1

    def _receive(self, value: bytes) -> None:
        record = self._decoded(value)
        if record is not None and record.origin != self.origin:
            self._hand(record)

    def _decoded(self, value: bytes) -> Remote | None:
        try:
            return decode(
                value, now=self._clock.now(), wall=self._clock.wall(), cooldown=self._cooldown
            )
        except ValueError as error:
            self._counts["ignored"] += 1
            reason = str(error)
            if reason not in self._warned:  # once per reason: a flood must not flood the log
                self._warned.add(reason)
                log.warning("ignored a shared value that is not valid (%s)", reason)
            return None

    def _hand(self, record: Remote) -> None:
        if record.prober == self.origin:
            record = attrs.evolve(record, prober=None)  # this process holds the lease
        with self._lock:
            self._counts["received"] += 1
            self._recent.append((record, self._clock.now()))
        assert self._deliver is not None
        self._deliver(record)

    # -- status --------------------------------------------------------------------------------

    def _redis(self) -> redis.Redis:
        assert self._client is not None
        return self._client

    def _went_down(self, doing: str, error: BaseException) -> None:
        with self._lock:
            self._error = f"{doing}: {type(error).__name__}: {self._redact(str(error))}"
            if not self._up and self._logged_down:
                return
            self._up = False
            self._logged_down = True
            self._since = self._clock.wall()
            self._counts["outages"] += 1
        log.warning(
            "shared link to %s is down (%s); serving from this process's own view",
            masked_url(self.shared.url),
            self._error,
        )

    def _maybe_up(self) -> None:
        with self._lock:
            if self._up or not (self._writer_up and self._reader_up):
                return
            self._up = True
            self._since = self._clock.wall()
            recovered = self._logged_down
        if recovered:
            log.warning("shared link to %s is up again", masked_url(self.shared.url))

    def status(self) -> Mapping[str, Any]:
        """Plain data for inspect(): never the URL's password."""
        return {
            "url": masked_url(self.shared.url),
            "namespace": self.shared.namespace,
            "origin": self.origin,
            "up": self._up,
            "since": self._since,
            "last_error": self._error,
            "pending": len(self._pending),
            **{name: self._counts[name] for name in _COUNTS},
        }

    def snapshot(self) -> ActorSnapshot:
        """The link as the debug mailbox shows it, beside the actors."""
        now, wall = self._clock.now(), self._clock.wall()
        return ActorSnapshot(
            name="shared",
            kind="link",
            state=self.status(),
            mailbox_depth=len(self._pending),
            processed=self._counts["received"],
            restarts=self._counts["outages"],
            recent=tuple(
                Handled(
                    type=type(record).__name__,
                    summary=_summary(record),
                    at=wall - (now - seen),
                    duration=0.0,
                )
                for record, seen in tuple(self._recent)
            ),
        )


_COUNTS = ("published", "received", "ignored", "resyncs", "outages")
_COOLED = frozenset({HealthState.COOLING, HealthState.DISABLED})


def _slot(record: Remote) -> tuple[str, str]:
    """The record's type and shared name: a key's rate limit for one model is its own slot."""
    if isinstance(record, RemoteModel):
        return ("model", record.target)
    return ("key", record.target if record.model is None else f"{record.target}|{record.model}")


def _cooldown_end(record: Remote) -> float | None:
    """When the record's cooldown ends (None: it is no cooldown)."""
    if isinstance(record, RemoteKey):
        return record.cooldown_until
    return record.until if record.state in _COOLED else None


def _recovered(record: Remote) -> bool:
    if isinstance(record, RemoteKey):
        return record.cooldown_until is None
    return record.state is HealthState.HEALTHY


def _summary(record: Remote) -> str:
    what = (
        f"cooldown {record.kind} x{record.failures}"
        if isinstance(record, RemoteKey)
        else f"{record.state} {record.kind or ''} x{record.count}"
    )
    return f"{record.target} from {record.origin}: {what}"[:120]
