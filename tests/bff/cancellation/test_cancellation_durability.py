"""Cancellation state that survives crashes and races: follow-ups once per decision,
half-made keys repaired, and the provider's own list settling a request whose answer
was lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bff.cancellation.store import REPAIR_AFTER, CancellationStore, digest
from bff.domain.models import CancellationStatus
from bff.domain.timez import now, today
from tests.conftest import PEOPLE, Bff, Sandbox
from tests.resolvers.test_cancellation import CANCEL, bergen_visit, cancel, wait_for

ACCEPTED = CancellationStatus.ACCEPTED


def store_of(bff: Bff) -> CancellationStore:
    return bff.app.state.services.cancellations.store


def request_id_of(bff: Bff, cancellation_id: str) -> str:
    parts = bff.app.state.services.ids.decode("C", cancellation_id)
    assert parts is not None
    return str(parts[0])


async def test_two_finishers_racing_append_one_event_and_send_one_varsel(bff: Bff, sandbox: Sandbox,
                                                                         make_bff: Any) -> None:
    """The deciding path and the worker (here: two processes, ten times each) finish the
    same decision at once: one event, one call to the notification service."""
    await sandbox.municipal("bergen", delay_ms=60_000)
    other = await make_bff()
    visit = await bergen_visit(bff)
    record = await store_of(bff).get(request_id_of(bff, (await cancel(bff, visit["id"]))["request"]["id"]))
    assert record is not None
    decided = await store_of(bff).decide(record, ACCEPTED, "OK", now())
    assert decided is not None
    await sandbox.clear()
    services = [bff.app.state.services.cancellations, other.app.state.services.cancellations]
    await asyncio.gather(*(services[i % 2].finish(decided) for i in range(20)))
    events = await store_of(bff).events_after(PEOPLE["asane"].pid, "0")
    assert [rid for _, rid in events] == [record.request_id]
    assert (await sandbox.calls()).get("varsel") == 1
    assert len([n for n in await sandbox.notifications() if n["outcome"] == "accepted"]) == 1
    assert await store_of(bff).pending() == []
    audited = await bff.app.state.services.audit.newest(PEOPLE["asane"].pid, 100)
    assert [f["outcome"] for _, f in audited if f["action"] == "decided"] == ["ACCEPTED"]  # the activity log: once


async def _half_made_key(bff: Bff, visit: dict[str, Any], key: str, age: float) -> None:
    """An idempotency key pointing at a request that was never stored (a crash of the old,
    four-step creation), made `age` seconds ago."""
    ids = bff.app.state.services.ids
    owner = ids.decode("A", visit["id"])
    assert owner is not None
    fingerprint = digest(f"{visit['id']}\0")
    lost = "0" + "1" * 7 + "-1111-4111-8111-111111111111"
    redis = bff.app.state.services.redis
    await redis.set(store_of(bff).idempotency_key(PEOPLE["asane"].pid, owner[2], key),
                    f"{lost}|{fingerprint}|{time.time() - age:.3f}")


async def test_a_half_made_idempotency_key_is_repaired_after_a_minute(bff: Bff) -> None:
    visit = await bergen_visit(bff)
    asked = {"input": {"appointmentId": visit["id"], "idempotencyKey": "half-made"}}
    await _half_made_key(bff, visit, "half-made", age=1)
    fresh = (await bff.query(CANCEL, asked))["requestCancellation"]
    assert [e["code"] for e in fresh["errors"]] == ["IN_PROGRESS"]
    await _half_made_key(bff, visit, "half-made", age=REPAIR_AFTER + 1)
    repaired = (await bff.query(CANCEL, asked))["requestCancellation"]
    assert repaired["errors"] == [] and repaired["request"]["status"] == "PENDING"
    again = (await bff.query(CANCEL, asked))["requestCancellation"]
    assert again["request"]["id"] == repaired["request"]["id"]


async def test_a_slot_pointing_at_no_request_is_freed_after_a_minute(bff: Bff) -> None:
    visit = await bergen_visit(bff)
    ids = bff.app.state.services.ids
    _, upstream, _ = ids.decode("A", visit["id"]) or ("", "", "")
    slot = store_of(bff).slot_key("bergen-kommune", upstream, PEOPLE["asane"].pid)
    lost = "0" + "2" * 7 + "-2222-4222-8222-222222222222"
    redis = bff.app.state.services.redis
    await redis.set(slot, f"{lost}|PENDING|{time.time() - 1:.3f}")
    refused = await cancel(bff, visit["id"])
    assert [e["code"] for e in refused["errors"]] == ["REQUEST_PENDING"]
    await redis.set(slot, f"{lost}|PENDING|{time.time() - REPAIR_AFTER - 1:.3f}")
    made = await cancel(bff, visit["id"])
    assert made["errors"] == [] and made["request"]["status"] == "PENDING"


async def test_the_providers_list_settles_a_request_whose_answer_was_lost(bff: Bff, sandbox: Sandbox) -> None:
    """The municipality cancelled the visit but its answer never came (webhook dropped,
    not yet polled): the next list that shows the visit cancelled by the citizen settles
    the request, and the citizen gets the event and the varsel."""
    await sandbox.municipal("bergen", delay_ms=60_000, drop_webhooks=True)
    visit = await bergen_visit(bff)
    request = (await cancel(bff, visit["id"]))["request"]
    pid = PEOPLE["asane"].pid
    _, upstream, _ = bff.app.state.services.ids.decode("A", visit["id"]) or ("", "", "")
    row = next(v for v in sandbox.state.world.visits["bergen"][pid] if v["id"] == upstream)
    row.update(status="cancelled", cancelledBy="citizen")
    await bff.app.state.services.cache.invalidate("bergen-kommune", pid, today())
    await bff.query("{ appointments { nodes { id status } } }")

    async def settled() -> Any:
        record = await store_of(bff).get(request_id_of(bff, request["id"]))
        return record if record is not None and record.notified else None

    record = await wait_for(settled)
    assert record.status == ACCEPTED
    assert [rid for _, rid in await store_of(bff).events_after(pid, "0")] == [record.request_id]
