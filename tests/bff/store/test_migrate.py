"""`bff migrate-keys`: audit streams of the earlier layout move to the cluster-ready keys."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from bff.domain.ids import Ids
from bff.settings import SANDBOX_ID_SECRET
from bff.store.audit import AuditLog
from bff.store.migrate import move_audit_streams
from tests.conftest import CLUSTER, delete_matching


@pytest.mark.skipif(CLUSTER, reason="the earlier layout only ever ran on a single Redis")
async def test_old_audit_streams_move_and_read_as_before(redis: Redis) -> None:
    prefix = f"migrate-{uuid.uuid4().hex[:8]}"
    ids = Ids(SANDBOX_ID_SECRET.encode())
    audit = AuditLog(redis, prefix, ids)
    pseudonym = ids.pseudonym("12345678901")
    await redis.xadd(f"{prefix}:audit:{pseudonym}", {"action": "list", "outcome": "ok"})
    await redis.xadd(f"{prefix}:audit:{pseudonym}:once:x", {"marker": "1"})  # not a person's stream
    both = ids.pseudonym("10987654321")
    await redis.xadd(f"{prefix}:audit:{both}", {"action": "old"})
    await audit.record("10987654321", "10987654321", "list", "ok")  # the new version wrote first
    try:
        done = await move_audit_streams(redis, prefix)
        assert (done.moved, done.kept) == (1, 1)
        entries = await audit.newest("12345678901", 10)
        assert [e["action"] for _, e in entries] == ["list"]
        assert await redis.exists(f"{prefix}:audit:{both}")  # left for an operator, not overwritten
        assert (await move_audit_streams(redis, prefix)).moved == 0  # running it again changes nothing
    finally:
        await delete_matching(redis, f"{prefix}:*")
