"""Calendar export parsed back; health and readiness; graceful shutdown of subscriptions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar
from websockets.exceptions import ConnectionClosed

from bff.domain.timez import OSLO
from tests.bff.web.test_limits import production_bff
from tests.conftest import Bff
from tests.redis_process import RedisProcess
from tests.resolvers.queries import LIST, rows
from tests.ws_client import GraphQLWebSocket


async def ics(bff: Bff, who: str, **params: str) -> Any:
    return await bff.http.get(f"{bff.url}/calendar.ics", params=params,
                              headers={"Authorization": f"Bearer {bff.token(who)}"})


async def test_the_calendar_holds_the_coming_appointments_in_oslo_time(bff: Bff) -> None:
    listed = rows(await bff.query(LIST, who="asane"))
    response = await ics(bff, "asane")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(response.content)
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Oslo"]
    events = calendar.walk("VEVENT")
    assert len(events) == len(listed) == 10
    by_start = sorted(events, key=lambda e: e["DTSTART"].dt)
    for event, row in zip(by_start, listed, strict=True):
        start = event["DTSTART"].dt
        assert start.tzinfo is not None and str(event["DTSTART"].params["TZID"]) == "Europe/Oslo"
        assert start == datetime.fromisoformat(row["start"]).astimezone(OSLO)
        assert str(event["SUMMARY"]) == row["title"]
    cancelled = [e for e in events if str(e["STATUS"]) == "CANCELLED"]
    assert len(cancelled) == 2
    tentative = [e for e in events if str(e["STATUS"]) == "TENTATIVE"]
    assert [str(e["SUMMARY"]) for e in tentative] == ["Forslag til time"]
    haukeland = next(e for e in events if str(e["SUMMARY"]) == "Kontroll etter grå stær")
    assert str(haukeland["LOCATION"]) == "Øyepoliklinikken, Jonas Lies vei 65, 5021 Bergen"


async def test_uids_are_stable_between_downloads(bff: Bff) -> None:
    first = {str(e["UID"]) for e in Calendar.from_ical((await ics(bff, "asane")).content).walk("VEVENT")}
    second = {str(e["UID"]) for e in Calendar.from_ical((await ics(bff, "asane")).content).walk("VEVENT")}
    assert first == second and len(first) == 10


async def test_the_calendar_on_behalf_follows_the_representation_rules(bff: Bff) -> None:
    reps = await bff.query("{ me { mayActFor { id name } } }", who="parent")
    ids = {p["name"]: p["id"] for p in reps["me"]["mayActFor"]}
    lukas = Calendar.from_ical((await ics(bff, "parent", onBehalfOf=ids["Lukas Dahl"])).content)
    assert [str(e["SUMMARY"]) for e in lukas.walk("VEVENT")] == ["Helsesjekk"]
    stranger = await ics(bff, "asane", onBehalfOf=ids["Lukas Dahl"])
    assert stranger.status_code == 404
    anonymous = await bff.http.get(f"{bff.url}/calendar.ics")
    assert anonymous.status_code == 401


async def test_health_and_readiness(bff: Bff, make_bff: Any) -> None:
    assert (await bff.http.get(f"{bff.url}/healthz")).text == "ok"
    ready = await bff.http.get(f"{bff.url}/readyz")
    assert ready.status_code == 200
    assert {k: v for k, v in ready.json().items() if k != "persistence"} == {
        "status": "ready", "redis": "ok", "sources": 6}
    own = RedisProcess().start()
    try:
        isolated = await make_bff(redis_url=own.url)
        own.stop()
        down = await bff.http.get(f"{isolated.url}/readyz")
        assert down.status_code == 503 and down.json()["status"] == "unavailable"
        assert (await bff.http.get(f"{isolated.url}/healthz")).status_code == 200
    finally:
        own.stop()


async def test_production_is_not_ready_on_a_redis_that_does_not_persist(make_bff: Any, tmp_path: Path) -> None:
    """Redis is the only state: without AOF a restart loses cancellation requests, so the
    production profile is not ready there (and says why); the sandbox only says so."""
    volatile, durable = RedisProcess().start(), RedisProcess(appendonly=True).start()
    try:
        production = await production_bff(make_bff, tmp_path, redis_url=volatile.url)
        refused = await production.http.get(f"{production.url}/readyz")
        assert refused.status_code == 503 and "appendonly" in refused.json()["persistence"]
        sandbox = await make_bff(redis_url=volatile.url)
        warned = await sandbox.http.get(f"{sandbox.url}/readyz")
        assert warned.status_code == 200 and "appendonly" in warned.json()["persistence"]
        declared = await production_bff(make_bff, tmp_path, redis_url=volatile.url,
                                        redis_persistence_guaranteed=True)
        assert (await declared.http.get(f"{declared.url}/readyz")).status_code == 200
        on_aof = await production_bff(make_bff, tmp_path, redis_url=durable.url)
        ready = await on_aof.http.get(f"{on_aof.url}/readyz")
        assert ready.status_code == 200 and ready.json()["persistence"] == "appendonly yes"
    finally:
        volatile.stop()
        durable.stop()


async def test_shutdown_closes_subscriptions_with_service_restart(make_bff: Any) -> None:
    other = await make_bff()
    ws = GraphQLWebSocket(other.url)
    assert (await ws.connect({"Authorization": f"Bearer {other.token('asane')}"}))["type"] == "connection_ack"
    await ws.subscribe("1", "subscription { cancellationUpdates { cursor } }")
    assert other.server is not None
    await other.server.stop()
    with pytest.raises(ConnectionClosed) as closed:
        await ws.receive(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
