"""Helpers for tests of the cache's cross-process behaviour: each `process()` is one BFF
process's cache and single-flight (its own lease token) on the shared real Redis."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from redis.asyncio import Redis

from bff.domain.ids import Ids
from bff.readpath.singleflight import SingleFlight
from bff.runtime.metrics import Metrics
from bff.settings import SANDBOX_ID_SECRET
from bff.store.cache import AppointmentCache
from bff.store.lane import Lane

LEASE = 5.0


def process(redis: Redis, prefix: str) -> tuple[AppointmentCache, SingleFlight[str, str]]:
    cache = AppointmentCache(redis, prefix, Ids(SANDBOX_ID_SECRET.encode()), Metrics())
    return cache, SingleFlight(cache, lambda item, raw: raw.decode() if raw else None, lambda kind: f"failed:{kind}")


async def written(cache: AppointmentCache, items: dict[str, bytes], ttl: int = 60) -> None:
    """Write entries as a provider's answer is written (behind, releasing this process's
    leases on them in the same round trip), and wait until they are in Redis."""
    cache.write_behind(items, ttl)
    await cache.settled()


@contextlib.contextmanager
def round_trips(redis: Redis, sent: list[list[str]] | None = None) -> Iterator[list[int]]:
    """Within the block, the number of commands of each round trip the client makes — a
    pipeline, or a command on its own, also one sent through a lane to its server
    (`bff.store.lane`) — and, into `sent`, each one's arguments that are text (its
    command, keys and values)."""
    counts: list[int] = []

    def record(commands: list[tuple[Any, ...]]) -> None:
        counts.append(len(commands))
        if sent is not None:
            sent.append([arg.decode(errors="replace") if isinstance(arg, bytes) else arg
                         for args in commands for arg in args if isinstance(arg, str | bytes)])

    real_pipeline, real_command = redis.pipeline, redis.execute_command

    def counted(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        execute = pipe.execute

        async def execute_counted(*a: Any, **k: Any) -> Any:
            if hasattr(pipe, "command_stack"):
                record([command_args for command_args, _ in pipe.command_stack])
            else:  # a cluster pipeline: one round trip per node it reaches, counted as one
                record([command.args for command in pipe._execution_strategy._command_queue])
            return await execute(*a, **k)

        pipe.execute = execute_counted  # type: ignore[method-assign]
        return pipe

    recorded = contextvars.ContextVar("recorded", default=False)
    """Set while a command counted here is sent: the lane it takes does not count it again."""

    async def command(*args: Any, **options: Any) -> Any:
        record([args])
        token = recorded.set(True)
        try:
            return await real_command(*args, **options)
        finally:
            recorded.reset(token)

    real_lane_call = Lane.call

    async def lane_call(lane: Lane, *args: Any) -> Any:
        if not recorded.get():
            record([args])
        return await real_lane_call(lane, *args)

    redis.pipeline = counted  # type: ignore[method-assign]
    redis.execute_command = command  # type: ignore[method-assign]
    Lane.call = lane_call  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        del redis.pipeline
        del redis.execute_command
        Lane.call = real_lane_call  # type: ignore[method-assign]
