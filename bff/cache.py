"""The Redis cache: provider answers per (source, window, day, person), person-directory
records, and short leases that make concurrent misses cause one upstream call across all
BFF processes sharing the Redis.

Keys name a person only by keyed pseudonym; values leave the pid out where the key
already implies it, and everything expires. When Redis fails, the cache stops trying
for a moment (`OUTAGE_BACKOFF`) and every call degrades to a miss; it is used again as
soon as Redis answers: the list never depends on the cache being up.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import date
from typing import TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bff.ids import Ids
from bff.metrics import Metrics

log = structlog.get_logger(__name__)
WINDOWS = ("future", "history")
OUTAGE_BACKOFF = 1.0
"""Seconds to skip Redis after it failed, so an outage costs requests nothing."""
RELEASE_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
T = TypeVar("T")
GENERATION_TTL = 24 * 3600


class AppointmentCache:
    """Reads and writes cached provider answers; every method survives a Redis outage."""

    def __init__(self, redis: Redis, prefix: str, ids: Ids, metrics: Metrics) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ids = ids
        self._metrics = metrics
        self._down_until = 0.0
        self._token = secrets.token_hex(8)

    def key(self, source_id: str, window: str, day: date, pid: str) -> str:
        return f"{self._prefix}:appts:{source_id}:{window}:{day.isoformat()}:{self._ids.pseudonym(pid)}"

    def person_key(self, pid: str) -> str:
        return f"{self._prefix}:person:{self._ids.pseudonym(pid)}"

    def _generation_key(self, pseudonym: str) -> str:
        """A token renewed whenever anything a person's answers are built from changes."""
        return f"{self._prefix}:gen:{pseudonym}"

    def _renew_generations(self, pipe: Pipeline, pids: Iterable[str]) -> None:
        # A fresh random token, not a counter: after a flush or an expiry a counter would
        # start again and could match an answer kept under its earlier value.
        for pid in pids:
            pipe.set(self._generation_key(self._ids.pseudonym(pid)), secrets.token_hex(8), ex=GENERATION_TTL)

    async def bump(self, pids: Iterable[str]) -> None:
        """A person's data changed (new entries, an invalidation, a cancellation): answers
        cached for them must not be served again."""
        changed = list(pids)

        async def renew() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                self._renew_generations(pipe, changed)
                await pipe.execute()

        if changed:
            await self._safely("bump", renew, None)

    async def generations(self, pseudonyms: list[str]) -> list[bytes] | None:
        """The persons' generations (by pseudonym); None when Redis cannot say or a person
        has none yet — then nothing may be reused."""
        if time.monotonic() < self._down_until:
            return None
        try:
            values = await self._redis.mget([self._generation_key(p) for p in pseudonyms])
        except (RedisError, OSError):
            return None
        if any(v is None for v in values):
            return None
        return [v if isinstance(v, bytes) else str(v).encode() for v in values]

    async def _safely(self, operation: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            try:
                return await call()
            except RedisConnectionError:
                # A pooled connection from before a Redis restart fails once; a new one works.
                return await call()
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + OUTAGE_BACKOFF
            self._metrics.redis_errors.labels(operation).inc()
            log.warning("cache.redis_failed", operation=operation, error=type(exc).__name__)
            return fallback

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []

        async def read() -> list[bytes | None]:
            return [v if isinstance(v, bytes) or v is None else v.encode() for v in await self._redis.mget(keys)]

        return await self._safely("read", read, [None] * len(keys))

    async def put_many(self, items: dict[str, bytes], ttl: int, changed: Iterable[str] = ()) -> None:
        """Write entries; the persons in `changed` get a new generation in the same round trip."""
        if not items:
            return
        changed = list(changed)

        async def write() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=ttl)
                self._renew_generations(pipe, changed)
                await pipe.execute()

        await self._safely("write", write, None)

    async def invalidate(self, source_id: str, pid: str, day: date) -> None:
        """Forget what a source said about one person today (after a change there)."""
        keys = [self.key(source_id, w, day, pid) for w in WINDOWS]

        async def delete() -> None:
            await self._redis.delete(*keys)

        await self._safely("invalidate", delete, None)
        await self.bump([pid])

    async def lock_many(self, keys: Iterable[str], lease: float) -> set[str]:
        """Take the fetch lease for each key not already leased; returns those taken.
        Without Redis every lease is "taken": the process then fetches on its own."""
        wanted = list(keys)

        async def take() -> set[str]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in wanted:
                    pipe.set(f"{key}:lease", self._token, nx=True, px=int(lease * 1000))
                results = await pipe.execute()
            return {key for key, ok in zip(wanted, results, strict=True) if ok}

        return await self._safely("lock", take, set(wanted))

    async def leased(self, keys: list[str]) -> list[bool]:
        """Whether someone still holds each key's lease."""

        async def check() -> list[bool]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.exists(f"{key}:lease")
                return [bool(n) for n in await pipe.execute()]

        return await self._safely("lock", check, [False] * len(keys))

    async def release_many(self, keys: Iterable[str]) -> None:
        held = list(keys)

        async def release() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in held:
                    pipe.eval(RELEASE_SCRIPT, 1, f"{key}:lease", self._token)
                await pipe.execute()

        if held:
            await self._safely("unlock", release, None)
