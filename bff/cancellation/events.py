"""Live cancellation outcomes: each requester's decisions are appended to a Redis Stream
(kept 30+ days); subscribers read it from their cursor and are woken through one Redis
pub/sub connection per process, so a decision recorded by any BFF process reaches a
subscriber on any other within milliseconds. A missed wake-up costs at most
`SAFETY_POLL` seconds; a Redis outage, a reconnect and a catch-up read."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from bff.cancellation.store import CancellationRecord, CancellationStore
from bff.runtime.tasks import Background
from bff.store.connection import CLIENT_FAULTS

log = structlog.get_logger(__name__)
SAFETY_POLL = 10.0
BATCH = 100
RECONNECT_BACKOFF = 0.5
CURSOR = re.compile(r"^(0|\d{1,20}-\d{1,20})$")


def valid_cursor(value: str) -> bool:
    """`0` (from the start) or a stream entry id from an earlier event."""
    return bool(CURSOR.match(value))


class EventHub(Background):
    """Wakes this process's subscribers when their stream grows."""

    def __init__(self, redis: Redis, store: CancellationStore, prefix: str) -> None:
        self._redis = redis
        self._store = store
        self._own_channel = f"{prefix}:cxl:hub:{uuid.uuid4().hex}"
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._pubsub: PubSub | None = None

    async def aclose(self) -> None:
        await self.stop_loop()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _run(self) -> None:
        while not self.stopping:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self._own_channel, *self._waiters)
                self._wake_all()
                while not self.stopping:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message and message.get("type") == "message":
                        self._wake(_text(message["channel"]))
            except (RedisError, OSError, *CLIENT_FAULTS) as exc:  # the pub/sub connection's node died
                log.warning("events.pubsub_failed", error=type(exc).__name__)
                if self._pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                self._pubsub = None
                self._wake_all()
                await asyncio.sleep(RECONNECT_BACKOFF)

    def _wake(self, channel: str) -> None:
        for event in self._waiters.get(channel, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.asynccontextmanager
    async def _watch(self, channel: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        first = channel not in self._waiters
        self._waiters.setdefault(channel, set()).add(event)
        if first and self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(channel)
        try:
            yield event
        finally:
            self._waiters[channel].discard(event)
            if not self._waiters[channel]:
                del self._waiters[channel]
                if self._pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.unsubscribe(channel)

    async def updates(self, actor_pid: str, after: str | None) -> AsyncIterator[tuple[str, CancellationRecord]]:
        """Decisions on `actor_pid`'s requests: after `after` (`0`: all retained), or only
        new ones when `after` is None; each with its cursor."""
        async with self._watch(self._store.poke_channel(actor_pid)) as poke:
            cursor = after if after is not None else await self._last(actor_pid)
            while True:
                poke.clear()
                entries = await self._read(actor_pid, cursor)
                records = await self._store.get_many([rid for _, rid in entries]) if entries else []
                for (entry_id, _), record in zip(entries, records, strict=True):
                    cursor = entry_id
                    if record is not None:
                        yield entry_id, record
                if len(entries) < BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(poke.wait(), SAFETY_POLL)

    async def _last(self, actor_pid: str) -> str:
        while True:
            try:
                return await self._store.last_event_id(actor_pid)
            except (RedisError, OSError):
                await asyncio.sleep(RECONNECT_BACKOFF)

    async def _read(self, actor_pid: str, cursor: str) -> list[tuple[str, str]]:
        try:
            return await self._store.events_after(actor_pid, cursor, BATCH)
        except (RedisError, OSError) as exc:
            log.warning("events.read_failed", error=type(exc).__name__)
            await asyncio.sleep(RECONNECT_BACKOFF)
            return []


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
