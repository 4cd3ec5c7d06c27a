"""HelseID tokens shared by every BFF process: one token per (token server, client,
scope), renewed by one process at a time (a lease), read by the others.

The key names a hash of those (`connectors.helseid.HelseIdClient.name`), never the client
or scope. A token kept here is DPoP-bound: without the client's private key, which never
leaves the processes' configuration, it opens nothing. The key expires with the token.

Redis being away is not a reason to fail a provider call: reads then find nothing and
every claim is granted, so each process asks the token server for itself until Redis is
back (logged once per outage)."""

from __future__ import annotations

import time
import uuid

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bff.store.leases import Leases
from connectors.helseid import Token

log = structlog.get_logger(__name__)


class RedisTokenStore:
    """`connectors.helseid.TokenStore` on Redis, under `prefix`."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._p = f"{prefix}:helseid"
        self._leases = Leases(redis, prefix)
        self._owner = uuid.uuid4().hex
        self._away = False

    async def read(self, name: str) -> Token | None:
        try:
            raw = await self._redis.get(f"{self._p}:{name}")
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return None
        self._away = False
        if raw is None:
            return None
        stored = orjson.loads(raw)
        return Token(str(stored["token"]), float(stored["expires_at"]))

    async def write(self, name: str, token: Token) -> None:
        ttl_ms = int((token.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        try:
            await self._redis.set(f"{self._p}:{name}", orjson.dumps({"token": token.value,
                                                                     "expires_at": token.expires_at}), px=ttl_ms)
        except (RedisError, OSError) as exc:
            self._lost(exc)

    async def claim(self, name: str, seconds: float) -> bool:
        try:
            return await self._leases.take(f"helseid:{name}", int(seconds * 1000), self._owner)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return True

    async def release(self, name: str) -> None:
        try:
            await self._leases.give_back(f"helseid:{name}", self._owner)
        except (RedisError, OSError) as exc:
            self._lost(exc)

    def _lost(self, exc: Exception) -> None:
        if not self._away:
            log.warning("helseid.token_store_unavailable", error=type(exc).__name__)
        self._away = True
