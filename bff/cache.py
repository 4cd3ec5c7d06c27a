"""The appointment cache in Redis: one entry per (source, window, day, person).

Keys name the person only by keyed pseudonym; values leave the pid out and expire
(`cache_ttl` fresh, then `stale_ttl` kept for serving when the source fails). When Redis
is unreachable every call degrades to a miss, and the cache is used again as soon as
Redis answers: the list never depends on the cache being up.
"""

from __future__ import annotations

from datetime import date

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bff.ids import Ids

log = structlog.get_logger(__name__)
WINDOWS = ("future", "history")


class AppointmentCache:
    """Reads and writes cached provider answers."""

    def __init__(self, redis: Redis, prefix: str, ids: Ids) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ids = ids

    def key(self, source_id: str, window: str, day: date, pid: str) -> str:
        return f"{self._prefix}:appts:{source_id}:{window}:{day.isoformat()}:{self._ids.pseudonym(pid)}"

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            values = await self._redis.mget(keys)
            return [v if isinstance(v, bytes) or v is None else v.encode() for v in values]
        except (RedisError, OSError) as exc:
            log.warning("cache.read_failed", error=type(exc).__name__)
            return [None] * len(keys)

    async def put_many(self, items: dict[str, bytes], ttl: int) -> None:
        if not items:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("cache.write_failed", error=type(exc).__name__)

    async def invalidate(self, source_id: str, pid: str, day: date) -> None:
        """Forget what a source said about one person today (after a change there)."""
        try:
            await self._redis.delete(*(self.key(source_id, w, day, pid) for w in WINDOWS))
        except (RedisError, OSError) as exc:
            log.warning("cache.invalidate_failed", error=type(exc).__name__)
