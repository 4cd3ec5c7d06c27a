"""The embedded Redis `bff serve` starts when REDIS_URL is unset."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bff.store.connection import open_redis
from tests.redis_process import RedisProcess


def folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("bff-redis-*"))


async def test_the_embedded_redis_persists_and_leaves_no_folder_behind() -> None:
    before = folders()
    async with open_redis(None) as (shared, webhooks):
        socket_folder = Path(shared.connection_pool.connection_kwargs["path"]).parent
        assert socket_folder.is_dir()
        assert list((await shared.config_get("appendonly")).values()) in (["yes"], [b"yes"])  # AOF, as required
        await shared.set("k", "v")
        assert await webhooks.get("k") in (b"v", "v")  # two pools, one server
        assert folders() - before  # its folder exists while it runs
    assert folders() == before
    assert not socket_folder.exists()


async def test_a_redis_restart_costs_no_command_its_lost_connections() -> None:
    """Every pooled connection is lost when Redis restarts; the next command on each is
    sent again on a new one (the client's one retry), not failed back to the request."""
    server = RedisProcess(appendonly=True).start()
    try:
        async with open_redis(server.url) as (shared, _):
            await asyncio.gather(*(shared.set(f"k{n}", n) for n in range(8)))  # several pooled connections
            server.stop()
            server.start()
            assert await asyncio.gather(*(shared.incr(f"k{n}") for n in range(8))) == [n + 1 for n in range(8)]
    finally:
        server.stop()
