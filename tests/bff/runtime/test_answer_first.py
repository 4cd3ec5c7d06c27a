"""Cache writes after the answer (`bff.runtime.answer_first`): what a request fetched is used at
once, read back in this process before it reaches Redis, written when the answer is sent,
and never keeps another request waiting for long — two caches on the real Redis stand for
two processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date

import pytest
from redis.asyncio import Redis

from bff.domain.ids import Ids
from bff.readpath.singleflight import SingleFlight
from bff.runtime import answer_first as module
from bff.runtime.answer_first import answer_first
from bff.settings import SANDBOX_ID_SECRET
from bff.store.cache import AppointmentCache, Deferred
from tests.bff.processes import LEASE, process, round_trips


async def test_an_entry_written_behind_is_read_here_at_once_and_reaches_redis_after_the_answer(
        redis: Redis, redis_prefix: str) -> None:
    cache, _ = process(redis, redis_prefix)
    elsewhere, _ = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-vest:future:2026-12-01:{{someone}}"
    _, leased = await cache.read_or_lease([key], LEASE)
    assert leased == {key}
    with answer_first():
        cache.write_behind({key: b"answer"}, 60)
        await asyncio.sleep(0.02)
        # Still being answered: not in Redis yet, the lease still held; this process reads it.
        assert await redis.get(key) is None
        assert await redis.exists(f"{key}:lease")
        assert await cache.get_many([key]) == [b"answer"]
        assert await cache.read_or_lease([key], LEASE) == ([b"answer"], set())
        assert await elsewhere.read_or_lease([key], LEASE) == ([None], set())  # leased: it will wait
    await cache.aclose()
    assert await redis.get(key) == b"answer"
    assert not await redis.exists(f"{key}:lease")
    assert await elsewhere.get_many([key]) == [b"answer"]


async def test_an_entry_written_behind_is_encoded_once_after_the_answer_or_first_when_read_here(
        redis: Redis, redis_prefix: str) -> None:
    cache, _ = process(redis, redis_prefix)
    made: list[int] = []

    def encoder(n: int) -> Deferred:
        def make() -> bytes:
            made.append(n)
            return f"answer {n}".encode()

        return Deferred(make)

    first, second = (f"{redis_prefix}:appts:{source}:future:2026-12-01:encoded" for source in ("hv", "hn"))
    with answer_first():
        cache.write_behind({first: encoder(1), second: encoder(2)}, 60)
        assert made == []  # not while the answer is being made
        assert await cache.get_many([second]) == [b"answer 2"]
        assert made == [2]
    await cache.aclose()
    assert made == [2, 1]  # each encoded once
    assert [await redis.get(first), await redis.get(second)] == [b"answer 1", b"answer 2"]


async def test_outside_a_request_an_entry_is_written_at_once(redis: Redis, redis_prefix: str) -> None:
    cache, _ = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-nord:future:2026-12-01:{{someone}}"
    cache.write_behind({key: b"answer"}, 60)  # e.g. a background refresh
    await cache.aclose()
    assert await redis.get(key) == b"answer"


async def test_a_long_answer_holds_its_writes_back_no_longer_than_the_limit(
        redis: Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MAX_DELAY", 0.05)
    cache, _ = process(redis, redis_prefix)
    key = f"{redis_prefix}:appts:helse-midt:future:2026-12-01:{{someone}}"
    with answer_first():
        cache.write_behind({key: b"answer"}, 60)
        for _ in range(200):  # a slow provider keeps the answer waiting
            if await redis.get(key) is not None:
                break
            await asyncio.sleep(0.01)
        assert await redis.get(key) == b"answer"
        cache.write_behind({f"{key}:2": b"second"}, 60)  # after the limit: written at once
        await cache.aclose()
        assert await redis.get(f"{key}:2") == b"second"


async def test_two_requests_each_waiting_for_the_others_entry_do_not_wait_for_each_others_answer(
        redis: Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two processes each fetch one person's entry and wait for the other's (a list and a
    # represented person's list, asked of two processes at once). Queued until the answers
    # were sent, each entry would wait for an answer that waits for it.
    monkeypatch.setattr(module, "MAX_DELAY", 60.0)
    one_cache, one = process(redis, redis_prefix)
    two_cache, two = process(redis, redis_prefix)
    first, second = (f"{redis_prefix}:appts:helse-vest:future:2026-12-01:{{{who}}}" for who in ("first", "second"))
    _, one_leased = await one_cache.read_or_lease([first], LEASE)
    _, two_leased = await two_cache.read_or_lease([second], LEASE)

    def fetching(cache: AppointmentCache, key: str) -> Callable[[list[str]], Awaitable[dict[str, str]]]:
        async def fetch(own: list[str]) -> dict[str, str]:
            cache.write_behind({key: key.encode()}, 60)
            return {item: key for item in own}
        return fetch

    async def request(flight: SingleFlight[str, str], cache: AppointmentCache, mine: str, theirs: str,
                      leased: set[str]) -> dict[str, str]:
        deadline = asyncio.get_running_loop().time() + 5
        with answer_first():
            return await flight.run({"mine": mine, "theirs": theirs}, fetching(cache, mine), LEASE, deadline, leased)

    answers = await asyncio.gather(request(one, one_cache, first, second, one_leased),
                                   request(two, two_cache, second, first, two_leased))
    assert list(answers) == [{"mine": first, "theirs": second}, {"mine": second, "theirs": first}]
    await one_cache.aclose()
    await two_cache.aclose()


async def test_a_requests_writes_leave_together_as_one_command(redis: Redis, redis_prefix: str) -> None:
    cache, _ = process(redis, redis_prefix)
    other, _ = process(redis, redis_prefix)
    pseudonym = Ids(SANDBOX_ID_SECRET.encode()).pseudonym("someone")
    keys = [f"{redis_prefix}:appts:{source}:future:2026-12-01:{{{pseudonym}}}" for source in ("hv", "hn", "hm")]
    _, leased = await cache.read_or_lease(keys[:2], LEASE)
    _, theirs = await other.read_or_lease(keys[2:], LEASE)
    generation = cache.generation_key(pseudonym)
    await redis.set(generation, b"before")
    with round_trips(redis) as commands:
        with answer_first():
            for n, key in enumerate(keys):
                cache.write_behind({key: f"answer {n}".encode()}, 60 + n, changed=["someone"])
        await cache.aclose()
    assert commands == [1]
    assert [await redis.get(key) for key in keys] == [b"answer 0", b"answer 1", b"answer 2"]
    assert [await redis.ttl(key) for key in keys] == [60, 61, 62]
    assert await redis.get(generation) not in (None, b"before")
    # This process's leases are released; another process's lease is not.
    assert [bool(await redis.exists(f"{key}:lease")) for key in keys] == [False, False, True]
    assert theirs == {keys[2]} and leased == set(keys[:2])
    await other.release_many(theirs)


async def test_an_entry_invalidated_before_its_write_started_is_not_written(redis: Redis, redis_prefix: str) -> None:
    # A cancellation is accepted (and the source's entries invalidated) while a list that
    # read the appointment before is still being answered: its entry must not come back.
    cache, _ = process(redis, redis_prefix)
    key = cache.key("helse-vest", "future", date(2026, 12, 1), "01017012345")
    _, leased = await cache.read_or_lease([key], LEASE)
    with answer_first():
        cache.write_behind({key: b"before the cancellation"}, 60)
        await cache.invalidate("helse-vest", "01017012345", date(2026, 12, 1))
        assert await cache.get_many([key]) == [None]
    await cache.settled()
    assert await redis.get(key) is None
    assert not await redis.exists(f"{key}:lease")  # the write still released the lease
    assert leased == {key}
