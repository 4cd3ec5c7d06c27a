"""Single-flight: concurrent misses for the same cache entry cause one upstream call.

In one process, later callers join the leader's future. Across processes sharing a
Redis, the leader holds a short lease on the entry and the others poll for the entry it
writes; if the lease goes away without a fresh entry, that fetch failed and the others
report a failure instead of calling again. Without Redis, each process fetches alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Generic, TypeVar

from bff.runtime.answer_first import start_now
from bff.store.cache import AppointmentCache

K = TypeVar("K")
R = TypeVar("R")
POLL_INTERVAL = 0.02
"""How often a caller waiting on another process's fetch looks for its result."""


class SingleFlight(Generic[K, R]):
    """Dedupes fetches of cache entries, in-process and across processes.

    `fetch` gets the items this caller must fetch and returns a result for each (and
    writes the fresh entries to the cache); `fresh` reads an entry written by another
    process (None while there is none); `failed(kind)` makes the result for an item whose
    fetch failed elsewhere or ran out of time."""

    def __init__(self, cache: AppointmentCache, fresh: Callable[[K, bytes | None], R | None],
                 failed: Callable[[str], R]) -> None:
        self._cache = cache
        self._fresh = fresh
        self._failed = failed
        self._inflight: dict[str, asyncio.Future[R]] = {}

    def busy(self, key: str) -> bool:
        return key in self._inflight

    async def run(self, keys: dict[K, str], fetch: Callable[[list[K]], Awaitable[dict[K, R]]],
                  lease: float, deadline: float, leased: Collection[str] = ()) -> dict[K, R]:
        """Results for `keys` (item → entry key). `leased`: entry keys whose lease the caller
        took already, with the read that found them missing (`AppointmentCache.read_or_lease`):
        the caller fetches those itself, even when another caller in this process got to them
        first — that one waits on the lease the caller holds, so joining it would leave
        nobody fetching until the lease expired."""
        joined = {item: self._inflight[key] for item, key in keys.items()
                  if key in self._inflight and key not in leased}
        mine = [item for item in keys if item not in joined]
        loop = asyncio.get_running_loop()
        futures: dict[K, asyncio.Future[R]] = {item: loop.create_future() for item in mine}
        registered = [item for item in mine if keys[item] not in self._inflight]
        for item in registered:
            self._inflight[keys[item]] = futures[item]
        try:
            if mine:
                led = await self._lead({item: keys[item] for item in mine}, fetch, lease, deadline, leased)
                for item in mine:
                    futures[item].set_result(led[item])
        finally:
            for item in mine:
                if not futures[item].done():
                    futures[item].set_result(self._failed("cancelled"))
            for item in registered:
                self._inflight.pop(keys[item], None)
        results = {item: futures[item].result() for item in mine}
        for item, future in joined.items():
            results[item] = await self._join(future, deadline)
        return results

    async def _join(self, future: asyncio.Future[R], deadline: float) -> R:
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            return self._failed("deadline")

    async def _lead(self, keys: dict[K, str], fetch: Callable[[list[K]], Awaitable[dict[K, R]]],
                    lease: float, deadline: float, leased: Collection[str]) -> dict[K, R]:
        held = {key for key in keys.values() if key in leased}
        try:
            async with asyncio.timeout_at(deadline):
                taken, now = await self._cache.lock_many([k for k in keys.values() if k not in held], lease)
                held |= taken
                # Double-checked: an entry written just before its lease was released.
                written = {item: found for item, key in keys.items()
                           if key in taken and (found := self._fresh(item, now.get(key))) is not None}
                own = [item for item, key in keys.items() if key in held and item not in written]
                other = {item: key for item, key in keys.items() if key not in held}
                if not other:  # the usual case: no task in between, the calls go out at once
                    return {**written, **(await fetch(own) if own else {})}
                parts = await asyncio.gather(fetch(own) if own else _nothing(), self._await_other(other))
                return {**written, **parts[0], **parts[1]}
        except TimeoutError:
            return {item: self._failed("deadline") for item in keys}
        finally:
            # Whatever writing the entries has not released (a failed fetch, the deadline).
            await self._cache.release_many(held)

    async def _await_other(self, keys: dict[K, str]) -> dict[K, R]:
        results: dict[K, R] = {}
        pending = dict(keys)
        if pending:
            start_now()  # the holder of the lease may be waiting for an entry this request writes
        while pending:
            await asyncio.sleep(POLL_INTERVAL)
            # The lease first, then the entry: the leader writes its entry before it lets go
            # of the lease, so a lease gone before the read means the read sees the entry
            # unless that fetch failed. (Read first, an entry written and released between
            # the two looked like a failed fetch.)
            held = await self._cache.leased(list(pending.values()))
            raws = await self._cache.get_many(list(pending.values()))
            for (item, _), raw, still in zip(list(pending.items()), raws, held, strict=True):
                found = self._fresh(item, raw)
                if found is not None:
                    results[item] = found
                    del pending[item]
                elif not still:
                    results[item] = self._failed("peer_failed")
                    del pending[item]
        return results


async def _nothing() -> dict[K, R]:
    return {}
