"""A Redis Cluster primary dies under load: two BFF processes (`uvicorn --factory
bff.asgi:app`) on a six-node cluster serve lists and take cancellations — each key sent to
both — while the primary holding most cancellation buckets is killed with SIGKILL and its
replica is promoted.

Lists keep answering throughout (a source may be STALE or UNAVAILABLE during the switch;
an HTTP 5xx or a GraphQL error is not acceptable); afterwards every cancellation reached
the municipality once and was decided once, with one event and one notification, and the
worker goes on finishing requests made after the failover."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from redis.asyncio import Redis, RedisCluster

from tests.bff.cancellation.test_chaos import (
    ROUND,
    World,
    _burst,
    _settled,
    _visits,
    assert_nothing_lost_or_twice,
    running_world,
)
from tests.conftest import BERGEN_SECRET
from tests.redis_cluster import RedisCluster6
from tests.resolvers.queries import LIST


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    cluster = RedisCluster6().start()
    client = cast(Redis, RedisCluster.from_url(cluster.url))
    try:
        async with running_world(tmp_path, cluster, client, {"REDIS_URL": cluster.url,
                                                              "BFF_REDIS_CLUSTER": "true"}) as built:
            yield built
    finally:
        cluster.stop()


async def _busiest_primary(world: World) -> Any:
    """The primary holding the most cancellation buckets (hash tags `{b0}`…`{bf}`)."""
    cluster: RedisCluster6 = world.redis
    client = cast(RedisCluster, world.client)
    await client.initialize()
    owners = Counter(client.get_node_from_key(world.store.pending_key(bucket)).port for bucket in range(16))
    port = owners.most_common(1)[0][0]
    return next(node for node in cluster.nodes if node.port == port)


@contextlib.asynccontextmanager
async def lists_under_way(world: World) -> AsyncIterator[Counter[str]]:
    """Crowd members' lists asked in a loop, through both processes, until the block ends;
    yields what they got (HTTP status, then each source state), filled as it goes."""
    seen: Counter[str] = Counter()
    stop = asyncio.Event()

    async def ask(http: httpx.AsyncClient, n: int) -> None:
        while not stop.is_set():
            member = world.crowd[n % len(world.crowd)]
            process = world.processes[n % 2]
            try:
                response = await http.post(f"{process.url}/graphql", json={"query": LIST},
                                           headers={"Authorization": f"Bearer {world.tokens[member.pid]}"})
            except httpx.HTTPError as exc:  # a process's connection, not Redis: not expected either
                seen[f"client:{type(exc).__name__}"] += 1
                continue
            seen[f"http:{response.status_code}"] += 1
            body = response.json()
            seen["graphql-errors"] += bool(body.get("errors"))
            for source in (body.get("data") or {}).get("appointments", {}).get("sources", []):
                seen[source["state"]] += 1
            n += 2

    async with httpx.AsyncClient(timeout=30) as http:
        tasks = [asyncio.create_task(ask(http, n)) for n in range(4)]
        try:
            yield seen
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def test_a_primary_dies_lists_answer_and_no_cancellation_is_lost_or_sent_twice(world: World) -> None:
    visits = _visits(world)
    first, after = visits[:ROUND], visits[ROUND:ROUND + 10]
    desk = world.sandbox.state.desk
    desk.policy("bergen").update({"webhook_url": f"{world.processes[0].url}/webhooks/bergen-kommune",
                                  "webhook_secret": BERGEN_SECRET, "delay_ms": 100})
    victim = await _busiest_primary(world)
    cluster: RedisCluster6 = world.redis
    switch: dict[str, float] = {}

    async def kill_a_primary() -> None:
        started = time.monotonic()
        victim.kill()
        await asyncio.to_thread(cluster.wait_ok, 30.0)  # the replica is promoted
        switch["seconds"] = time.monotonic() - started

    async with lists_under_way(world) as seen:
        failed_over = await _burst(world, first, "failover", kill_a_primary)
        await _settled(world)
    assert victim.port not in [p.port for p in cluster.primaries()]
    assert seen["http:200"] > 0 and set(k for k in seen if k.startswith(("http:", "client:"))) == {"http:200"}, seen
    assert seen["graphql-errors"] == 0, seen

    # The worker goes on: requests made after the failover are sent and decided too.
    again = await _burst(world, after, "after", _nothing)
    await _settled(world)
    await assert_nothing_lost_or_twice(world, failed_over.answers + again.answers, ROUND + len(after))
    print(f"failover: primary :{victim.port} killed, cluster ok again after {switch['seconds']:.1f} s; "
          f"lists {dict(seen)}; client retries {dict(failed_over.retries)}; lost 0, duplicated 0")


async def _nothing() -> None:
    return None
