"""A per-person request limit kept in Redis (fixed one-minute windows, shared by every
BFF process). When Redis is unreachable the limit is not enforced: the list must keep
working, and the outage is visible in the metrics."""

from __future__ import annotations

import time

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bff.domain.ids import Ids
from bff.store.cache import Count

log = structlog.get_logger(__name__)
WINDOW = 60
COUNT_SCRIPT = """
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('expire', KEYS[1], ARGV[1]) end
return n
"""
"""Count a request in its window, which expires after two windows: one command (a
pipeline of INCR and EXPIRE costs the client more, most of all a cluster client)."""


class RateLimiter:
    """`allow(pid)` is False once a person has made `limit` requests this minute."""

    def __init__(self, redis: Redis, prefix: str, ids: Ids, limit: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ids = ids
        self.limit = limit
        self._count = redis.register_script(COUNT_SCRIPT)

    def key(self, pid: str) -> str:
        """The person's counter for this window (their pseudonym as hash tag)."""
        return f"{self._prefix}:rate:{{{self._ids.pseudonym(pid)}}}:{int(time.time() // WINDOW)}"

    def count(self, pid: str) -> Count | None:
        """The request's count, for a script that does it with its own work (the reuse of
        a kept answer); None when there is no limit."""
        return Count(self.key(pid), self.limit, WINDOW * 2) if self.limit > 0 else None

    @staticmethod
    def retry_after() -> int:
        """Seconds until the window resets."""
        return WINDOW - int(time.time() % WINDOW)

    async def allow(self, pid: str) -> tuple[bool, int]:
        """Whether the request may go ahead, and the seconds until the window resets."""
        key = self.key(pid)
        retry_after = self.retry_after()
        if self.limit <= 0:
            return True, retry_after
        try:
            count = await self._count(keys=[key], args=[WINDOW * 2])
        except (RedisError, OSError) as exc:
            log.warning("ratelimit.redis_failed", error=type(exc).__name__)
            return True, retry_after
        return int(count) <= self.limit, retry_after
