"""Named leases in Redis: held by one owner (a token) at a time, until given back or
until they lapse, so that a holder that dies does not hold on for ever.

The cancellation worker holds one with its process's token, renewing it each sweep; a
varsel is sent under one with a token of its own. The cache's fetch leases follow the
same protocol (SET NX PX with the owner's token; released only by that token) inside its
batched scripts, where a read, its lease and the writes share one round trip."""

from __future__ import annotations

from redis.asyncio import Redis

RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
GIVE_BACK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class Leases:
    """Leases by name, under `prefix`."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._p = f"{prefix}:lease"
        self._renew = redis.register_script(RENEW)
        self._give_back = redis.register_script(GIVE_BACK)

    async def take(self, name: str, ttl_ms: int, owner: str) -> bool:
        """Take the lease, or renew it if `owner` holds it; True while `owner` holds it."""
        key = f"{self._p}:{name}"
        if await self._redis.set(key, owner, nx=True, px=ttl_ms):
            return True
        return bool(await self._renew(keys=[key], args=[owner, ttl_ms]))

    async def give_back(self, name: str, owner: str) -> None:
        """Release the lease if `owner` still holds it."""
        await self._give_back(keys=[f"{self._p}:{name}"], args=[owner])
