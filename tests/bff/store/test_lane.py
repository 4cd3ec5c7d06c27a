"""The pipelined connection a reused answer's one command goes through (`bff.store.lane`),
against a redis-server the tests own: stopped, frozen and restarted under it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bff.store.connection import open_redis
from bff.store.lane import Lane
from tests.redis_process import RedisProcess

SCRIPT = "return {KEYS[1], ARGV[1]}"


@pytest.fixture
def server() -> Iterator[RedisProcess]:
    own = RedisProcess().start()
    yield own
    own.stop()


def lane_to(url: str, timeout: float = 0.5) -> Lane:
    client = Redis.from_url(url)
    lane = Lane.of(client, timeout)
    assert lane is not None
    return lane


async def test_concurrent_callers_each_get_their_own_reply(server: RedisProcess) -> None:
    lane = lane_to(server.url)
    try:
        replies = await asyncio.gather(*(lane.call("SET", f"k{n}", n, "GET") for n in range(200)))
        assert replies == [None] * 200
        values = await asyncio.gather(*(lane.call("GET", f"k{n}") for n in range(200)))
        assert values == [str(n).encode() for n in range(200)]
        with pytest.raises(ResponseError):
            await lane.call("INCR", "k1", "too-many-arguments")
        assert await lane.call("GET", "k7") == b"7"  # an error reply leaves the connection usable
    finally:
        lane.close()


async def test_the_commands_of_one_loop_turn_reach_redis_in_one_write(server: RedisProcess) -> None:
    """Requests handled in one turn of the event loop send their commands together: Redis
    reads them at once (one write, not one system call and segment per command)."""
    lane = lane_to(server.url)
    client = Redis.from_url(server.url)
    try:
        await lane.call("PING")  # connected
        before = (await client.info("stats"))["total_reads_processed"]
        replies = await asyncio.gather(*(lane.call("INCR", f"n{n}") for n in range(50)))
        after = (await client.info("stats"))["total_reads_processed"]
        assert replies == [1] * 50
        assert after - before <= 3, f"Redis read {after - before - 1} times for 50 commands of one turn"
    finally:
        lane.close()
        await client.aclose()


async def test_a_script_redis_forgot_is_sent_again_in_full(server: RedisProcess) -> None:
    lane = lane_to(server.url)
    client = Redis.from_url(server.url)
    try:
        sha = (await client.script_load(SCRIPT))
        assert await lane.evalsha(sha, SCRIPT, ["key"], ["arg"]) == [b"key", b"arg"]
        await client.script_flush()  # as after a restart or a failover
        assert await lane.evalsha(sha, SCRIPT, ["key"], ["again"]) == [b"key", b"again"]
    finally:
        lane.close()
        await client.aclose()


async def test_commands_in_flight_fail_when_redis_goes_away_and_the_next_call_reconnects(
        server: RedisProcess) -> None:
    lane = lane_to(server.url)
    try:
        assert await lane.call("PING") == b"PONG"
        server.stop()
        with pytest.raises(RedisConnectionError):
            await lane.call("PING")
        with pytest.raises(RedisConnectionError):
            await lane.call("PING")  # refused, not hanging
        server.start()
        assert await lane.call("SET", "after", "restart") == b"OK"
        assert await lane.call("GET", "after") == b"restart"
    finally:
        lane.close()


async def test_a_redis_that_does_not_answer_times_out_every_command_and_is_reconnected_to(
        server: RedisProcess) -> None:
    lane = lane_to(server.url, timeout=0.2)
    assert server.proc is not None
    try:
        await lane.call("SET", "k", "v")
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            results = await asyncio.gather(*(lane.call("GET", "k") for _ in range(5)), return_exceptions=True)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert all(isinstance(r, (RedisTimeoutError, RedisConnectionError)) for r in results), results
        assert await lane.call("GET", "k") == b"v"  # a new connection: no reply of the old one read as its own
    finally:
        lane.close()


async def test_a_password_and_a_database_in_the_url_are_used(server: RedisProcess) -> None:
    own = server
    admin = Redis.from_url(own.url)
    await admin.config_set("requirepass", "hemmelig")
    await admin.aclose()
    client = Redis.from_url(f"redis://:hemmelig@127.0.0.1:{own.port}/3")
    try:
        lane = lane_to(f"redis://:hemmelig@127.0.0.1:{own.port}/3")
        assert await lane.call("SET", "where", "db3") == b"OK"
        assert await client.get("where") == b"db3"
        lane.close()
        wrong = lane_to(f"redis://:feil@127.0.0.1:{own.port}/3")
        with pytest.raises(RedisConnectionError):
            await wrong.call("PING")
        wrong.close()
    finally:
        await client.aclose()


def test_no_lane_where_it_cannot_speak_for_the_client() -> None:
    assert Lane.of(Redis.from_url("rediss://127.0.0.1:6380/0"), 0.5) is None  # TLS: redis-py's


async def test_the_clients_laned_commands_answer_as_redis_py_does(server: RedisProcess) -> None:
    """GET, MGET and EVALSHA of the BFF's client take its lane (`bff.store.connection.LANED`):
    the replies are redis-py's own, a script Redis forgot is loaded again, and a Redis
    restarted between two calls costs the caller nothing (the one retry, as redis-py's)."""
    async with open_redis(server.url) as (client, _):
        plain = Redis.from_url(server.url)
        await plain.mset({"a": "1", "b": "2"})
        script = client.register_script(SCRIPT)
        await client.set("c", "3")  # not laned: through redis-py's pool
        assert await client.get("c") == await plain.get("c") == b"3"
        assert await client.get("a") == await plain.get("a") == b"1"
        assert await client.mget(["a", "nope", "b"]) == await plain.mget(["a", "nope", "b"])
        assert await script(keys=["k"], args=["v"]) == [b"k", b"v"]
        await plain.script_flush()
        assert await script(keys=["k"], args=["again"]) == [b"k", b"again"]
        await plain.aclose()
        server.stop()
        server.start()
        assert await client.mget(["a", "c"]) == [None, None]  # answered on a new connection (nothing kept)
