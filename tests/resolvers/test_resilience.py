"""A slow or broken provider never breaks the list."""

from __future__ import annotations

import asyncio
import copy
import time

import orjson
import pytest

from tests.conftest import PEOPLE, Bff, Sandbox, delete_matching
from tests.resolvers.queries import LIST, consulted, rows


@pytest.mark.parametrize("fault", [
    {"malformed": True},
    {"status": 503},
    {"status": 500},
    {"timeout": True},
], ids=["malformed-json", "503", "500", "timeout"])
async def test_one_broken_source_leaves_the_others_in_the_answer(bff: Bff, sandbox: Sandbox, fault: dict) -> None:
    await sandbox.fault("bergen", **fault)
    started = time.monotonic()
    response = await bff.post(LIST, who="asane")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    data = response.json()["data"]
    states = consulted(data)
    assert states["bergen-kommune"] == "UNAVAILABLE"
    assert {k: v for k, v in states.items() if k != "bergen-kommune"} == {
        "helse-vest": "OK", "helse-nord": "OK", "helse-midt": "OK", "fastlege-pilot": "OK"}
    assert {r["source"]["id"] for r in rows(data)} == {"helse-vest"}
    message = next(s["message"] for s in data["appointments"]["sources"] if s["source"]["id"] == "bergen-kommune")
    assert message
    # Bounded by the source's own timeout (2.5 s), well within the request deadline.
    assert elapsed < 4.5


async def test_a_paged_fhir_source_failing_mid_way_is_unavailable_not_partial(bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.fault("helse-vest", malformed=True)
    data = (await bff.post(LIST, {"filter": {"sourceIds": ["helse-vest"]}}, who="asane")).json()["data"]
    assert consulted(data) == {"helse-vest": "UNAVAILABLE"}
    assert rows(data) == []


async def _age_bergen_entries(redis, redis_prefix: str, seconds: float) -> None:
    async for key in redis.scan_iter(match=f"{redis_prefix}:appts:bergen-kommune:*", count=1000):
        entry = orjson.loads(await redis.get(key))
        entry["at"] -= seconds
        await redis.set(key, orjson.dumps(entry), keepttl=True)


async def test_a_failing_source_is_served_stale_from_cache(bff: Bff, sandbox: Sandbox, redis, redis_prefix) -> None:
    fresh = await bff.query(LIST, who="asane")
    # Age every cached entry past its freshness, then break the provider.
    await _age_bergen_entries(redis, redis_prefix, 3600)
    await sandbox.fault("bergen", status=503)
    data = await bff.query(LIST, who="asane")
    source = next(s for s in data["appointments"]["sources"] if s["source"]["id"] == "bergen-kommune")
    assert source["state"] == "STALE"
    assert source["fetchedAt"] is not None
    assert [r["id"] for r in rows(data)] == [r["id"] for r in rows(fresh)]


async def test_an_entry_whose_refresh_failed_is_reported_stale_not_ok(bff: Bff, sandbox: Sandbox, redis,
                                                                        redis_prefix) -> None:
    """Past its freshness an entry is served while it is refreshed; once that refresh has
    failed, the answer says STALE (with when it was fetched), not OK."""
    await bff.query(LIST, who="asane")
    bergen = bff.app.state.services.catalogue.by_id("bergen-kommune")
    await _age_bergen_entries(redis, redis_prefix, bergen.cache_ttl + 1)
    await sandbox.fault("bergen", status=503)
    states = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and states[-1:] != ["STALE"]:
        data = await bff.query(LIST, who="asane")
        source = next(s for s in data["appointments"]["sources"] if s["source"]["id"] == "bergen-kommune")
        states.append(source["state"])
        await asyncio.sleep(0.1)
    assert states[-1] == "STALE", states
    assert source["fetchedAt"] is not None and source["message"]
    assert {r["source"]["id"] for r in rows(data)} >= {"bergen-kommune"}


async def test_a_second_request_is_served_from_cache_without_calling_providers(bff: Bff, sandbox: Sandbox) -> None:
    first = await bff.query(LIST, who="asane")
    await sandbox.clear()
    second = await bff.query(LIST, who="asane")
    assert rows(first) == rows(second)
    assert await sandbox.calls() == {}



@pytest.mark.parametrize(("breakage", "outcome"), [
    ({"start": ["2026-12-01T10:00:00+01:00"]}, "counted"),
    ({"status": ["booked"]}, "counted"),
    ({"participant": {"actor": 7}}, "not ours"),
    ({"contained": 7, "supportingInformation": "x"}, "shown without its place"),
], ids=["start-is-a-list", "status-is-a-list", "participant-is-an-object", "contained-is-a-number"])
async def test_one_appointment_of_the_wrong_shape_does_not_cost_the_others(
        bff: Bff, sandbox: Sandbox, redis, redis_prefix, breakage: dict, outcome: str) -> None:
    only_vest = {"filter": {"sourceIds": ["helse-vest"]}}
    before = rows(await bff.query(LIST, only_vest, who="asane"))
    assert before
    await delete_matching(redis, f"{redis_prefix}:*")
    mine = next(a for a in sandbox.state.world.fhir["helse-vest"] if a.patient == PEOPLE["asane"].pid)
    broken = copy.deepcopy(mine)
    broken.resource.update({"id": "wrong-shape", **breakage})
    sandbox.state.world.fhir["helse-vest"].append(broken)

    data = await bff.query(LIST, only_vest, who="asane")

    assert consulted(data) == {"helse-vest": "OK"}
    message = data["appointments"]["sources"][0]["message"]
    after = rows(data)
    if outcome == "counted":
        assert message == "1 avtale(r) fra kilden kunne ikke leses og vises ikke."
    else:
        assert message is None
    if outcome == "shown without its place":
        extra = [r for r in after if r not in before]
        assert len(extra) == 1 and extra[0]["location"] is None
        assert extra[0]["title"] == next(r["title"] for r in before if r["start"] == extra[0]["start"])
    else:
        assert [r["id"] for r in after] == [r["id"] for r in before]
