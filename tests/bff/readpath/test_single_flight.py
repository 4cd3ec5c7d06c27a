"""Single-flight across processes, at the edge where one process's fetch ends just as
another's begins: two caches (two processes' worth of leases) on the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from redis.asyncio import Redis

from bff.store.cache import READ_OR_LEASE_SCRIPT, AppointmentCache
from tests.bff.processes import LEASE, process, round_trips, written


async def test_an_entry_written_just_before_the_lease_is_taken_is_used_not_fetched_again(
        redis: Redis, redis_prefix: str) -> None:
    first_cache, first = process(redis, redis_prefix)
    _, second = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-vest:future:2026-11-27:{{someone}}"
    fetched: list[str] = []

    async def fetch_for(cache: AppointmentCache, own: list[str]) -> dict[str, str]:
        fetched.extend(own)
        await written(cache, {key: b"answer"})
        return {item: "answer" for item in own}

    deadline = asyncio.get_running_loop().time() + 5
    # The first process fetches and writes; writing releases its lease in the same round trip.
    assert await first.run({"p": key}, lambda own: fetch_for(first_cache, own), LEASE, deadline) == {"p": "answer"}
    assert not await redis.exists(f"{key}:lease")
    # The second read its miss before that write, and only now gets to the lease.
    assert await second.run({"p": key}, lambda own: fetch_for(first_cache, own), LEASE, deadline) == {"p": "answer"}
    assert len(fetched) == 1
    assert not await redis.exists(f"{key}:lease")


async def test_a_lease_held_elsewhere_is_waited_for_and_its_entry_used(redis: Redis, redis_prefix: str) -> None:
    first_cache, _ = process(redis, redis_prefix)
    _, second = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-nord:future:2026-11-27:{{someone}}"
    taken, _ = await first_cache.lock_many([key], LEASE)
    assert taken == {key}

    async def never(own: list[str]) -> dict[str, str]:
        raise AssertionError("the second process must not fetch while the first holds the lease")

    async def finish_first() -> None:
        await asyncio.sleep(0.1)
        await written(first_cache, {key: b"from the first"})

    deadline = asyncio.get_running_loop().time() + 5
    answer, _ = await asyncio.gather(second.run({"p": key}, never, LEASE, deadline), finish_first())
    assert answer == {"p": "from the first"}
    assert not await redis.exists(f"{key}:lease")


async def test_a_waiter_whose_redis_falters_keeps_waiting_instead_of_reporting_a_failure(
        redis: Redis, redis_prefix: str) -> None:
    import time

    first_cache, _ = process(redis, redis_prefix)
    second_cache, second = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-midt:future:2026-11-27:{{someone}}"
    await first_cache.lock_many([key], LEASE)

    async def never(own: list[str]) -> dict[str, str]:
        raise AssertionError("the lease is held elsewhere")

    async def meanwhile() -> None:
        await asyncio.sleep(0.05)
        # The waiter's Redis times out (a busy event loop, say): it skips Redis for a moment.
        second_cache._down_until = time.monotonic() + 0.3
        await asyncio.sleep(0.05)
        await written(first_cache, {key: b"from the first"})

    deadline = asyncio.get_running_loop().time() + 5
    answer, _ = await asyncio.gather(second.run({"p": key}, never, LEASE, deadline), meanwhile())
    assert answer == {"p": "from the first"}


async def test_reads_and_leases_started_together_share_one_round_trip_and_each_gets_its_own(
        redis: Redis, redis_prefix: str) -> None:
    cache, _ = process(redis, redis_prefix)
    other, _ = process(redis, redis_prefix)
    keys = [f"{redis_prefix}:appts:{source}:future:2026-11-27:{{someone}}" for source in ("hv", "hn", "hm", "gp")]
    await redis.set(keys[0], b"zero")
    await redis.set(keys[2], b"two")
    held_elsewhere, _ = await other.lock_many([keys[3]], LEASE)
    with round_trips(redis) as sent:
        answers = await asyncio.gather(cache.get_many(keys[:2]), cache.get_many([keys[2]]), cache.get_many([]),
                                       cache.get_many([keys[3], keys[0]]), cache.lock_many(keys[1:], LEASE))
    assert answers[:4] == [[b"zero", None], [b"two"], [], [None, b"zero"]]
    taken, seen = answers[4]
    assert taken == {keys[1], keys[2]}  # the third source's lease is held by the other process
    assert seen == {keys[1]: None, keys[2]: b"two", keys[3]: None}
    assert len(sent) == 1
    assert held_elsewhere == {keys[3]}
    await cache.release_many(taken)
    await other.release_many(held_elsewhere)
    assert not [k for k in keys if await redis.exists(f"{k}:lease")]


async def test_an_entry_written_between_a_waiters_reads_is_used_not_reported_as_failed(
        redis: Redis, redis_prefix: str, monkeypatch: Any) -> None:
    first_cache, _ = process(redis, redis_prefix)
    second_cache, second = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-vest:future:2026-11-28:{{someone}}"
    await first_cache.lock_many([key], LEASE)
    read = second_cache.get_many

    async def read_then_the_leader_finishes(keys: list[str]) -> list[bytes | None]:
        raws = await read(keys)
        if not await redis.exists(key):  # the leader writes and lets go right after this read
            await written(first_cache, {key: b"from the first"})
        return raws

    async def never(own: list[str]) -> dict[str, str]:
        raise AssertionError("the lease is held elsewhere")

    monkeypatch.setattr(second_cache, "get_many", read_then_the_leader_finishes)
    deadline = asyncio.get_running_loop().time() + 5
    assert await second.run({"p": key}, never, LEASE, deadline) == {"p": "from the first"}
    assert not await redis.exists(f"{key}:lease")


async def test_a_lone_command_goes_by_its_script_sha_and_survives_redis_forgetting_the_script(
        redis: Redis, redis_prefix: str) -> None:
    cache, _ = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:hv:future:2026-12-01:{{{uuid.uuid4().hex}}}"
    await redis.script_flush()  # as after a Redis restart or failover
    sent: list[list[str]] = []
    with round_trips(redis, sent) as trips:
        assert await cache.read_or_lease([key], LEASE) == ([None], {key})
        assert await cache.read_or_lease([key], LEASE) == ([None], set())  # leased now, by the first
    # No pipeline: EVALSHA refused, the script loaded and run by its SHA1, then by its SHA1 alone.
    assert trips == [1, 1, 1, 1]
    assert [args[0] for args in sent] == ["EVALSHA", "SCRIPT LOAD", "EVALSHA", "EVALSHA"]
    await cache.release_many([key])


async def test_a_read_leases_the_missing_entries_in_the_same_round_trip(redis: Redis, redis_prefix: str) -> None:
    cache, _ = process(redis, redis_prefix)
    other, _ = process(redis, redis_prefix)
    keys = [f"{redis_prefix}:appts:{source}:future:2026-11-30:{{someone}}" for source in ("hv", "hn", "hm")]
    await redis.set(keys[0], b"zero")
    held_elsewhere, _ = await other.lock_many([keys[2]], LEASE)
    await redis.script_load(READ_OR_LEASE_SCRIPT)  # known to Redis (on a cluster, to every primary)
    with round_trips(redis) as sent:
        mine, again = await asyncio.gather(cache.read_or_lease(keys, LEASE), cache.read_or_lease(keys[1:2], LEASE))
    assert len(sent) == 1
    # An entry is read, not leased; a missing one is leased by the first caller only; a lease
    # held by another process stays with it.
    assert mine == ([b"zero", None, None], {keys[1]})
    assert again == ([None], set())
    assert 0 < await redis.pttl(f"{keys[1]}:lease") <= LEASE * 1000
    await cache.release_many([keys[1]])
    await other.release_many(held_elsewhere)
    assert not [k for k in keys if await redis.exists(f"{k}:lease")]


async def test_a_caller_holding_the_lease_fetches_even_when_another_caller_in_its_process_came_first(
        redis: Redis, redis_prefix: str) -> None:
    # Two requests in one process miss the same entry; the second's read happened to take
    # the lease, but the first registered its flight first and now waits on that lease.
    # Joining the first would leave nobody fetching until the lease expired.
    cache, flight = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-vest:future:2026-11-29:{{someone}}"
    _, leased = await cache.read_or_lease([key], LEASE)
    assert leased == {key}
    fetched: list[str] = []

    async def fetch(own: list[str]) -> dict[str, str]:
        fetched.extend(own)
        await written(cache, {key: b"answer"})
        return {item: "answer" for item in own}

    async def never(own: list[str]) -> dict[str, str]:
        raise AssertionError("the first caller does not hold the lease")

    deadline = asyncio.get_running_loop().time() + 2
    first = asyncio.create_task(flight.run({"p": key}, never, LEASE, deadline))
    await asyncio.sleep(0)  # the first is registered, and waits on the lease
    second = await flight.run({"p": key}, fetch, LEASE, deadline, leased)
    assert second == {"p": "answer"}
    assert await first == {"p": "answer"}
    assert fetched == ["p"]
    assert not await redis.exists(f"{key}:lease")


async def test_a_lease_taken_with_the_read_is_released_when_the_fetch_fails(redis: Redis, redis_prefix: str) -> None:
    cache, flight = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-nord:future:2026-11-29:{{someone}}"
    _, leased = await cache.read_or_lease([key], LEASE)

    async def failing(own: list[str]) -> dict[str, str]:
        return {item: "failed:upstream" for item in own}  # a failed fetch writes nothing

    deadline = asyncio.get_running_loop().time() + 2
    assert await flight.run({"p": key}, failing, LEASE, deadline, leased) == {"p": "failed:upstream"}
    assert not await redis.exists(f"{key}:lease")
