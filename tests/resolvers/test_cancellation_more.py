"""Synchronous cancellation at FHIR sources, and pending work surviving a restart."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from bff.domain.sources import default_sources_text
from tests.conftest import Bff, Sandbox, delete_matching
from tests.resolvers.queries import LIST, rows
from tests.resolvers.test_cancellation import CANCEL, REQUEST, cancel, wait_for

HOSPITAL_CANCELS = default_sources_text().replace(
    'base_url = "${SANDBOX_URL}/fhir/helse-vest"\ncapabilities = { future = true, past = false, cancel = false }',
    'base_url = "${SANDBOX_URL}/fhir/helse-vest"\ncapabilities = { future = true, past = false, cancel = true }')


async def hospital_bff(make_bff: Any, tmp_path: Path) -> Bff:
    assert "cancel = true }" in HOSPITAL_CANCELS
    path = tmp_path / "sources.toml"
    path.write_text(HOSPITAL_CANCELS, "utf-8")
    return await make_bff(sources=path)  # type: ignore[no-any-return]


async def hospital_rows(bff: Bff) -> dict[str, dict]:
    data = await bff.query(LIST, {"filter": {"sourceIds": ["helse-vest"]}}, who="asane")
    return {r["title"]: r for r in rows(data)}


async def test_a_fhir_source_accepts_at_once_and_the_list_shows_it(bff: Bff, sandbox: Sandbox, make_bff: Any,
                                                                  tmp_path: Path) -> None:
    hospital = await hospital_bff(make_bff, tmp_path)
    target = (await hospital_rows(hospital))["Kontroll etter grå stær"]
    assert target["canCancel"] is True
    answer = await cancel(hospital, target["id"])
    assert answer["errors"] == []
    assert answer["request"]["status"] == "ACCEPTED" and answer["request"]["decidedAt"]
    after = (await hospital_rows(hospital))["Kontroll etter grå stær"]
    assert (after["status"], after["cancelledBy"]) == ("CANCELLED", "PATIENT")
    notes = await wait_for(sandbox.notifications)
    assert notes[0]["outcome"] == "accepted"
    assert "Haukeland universitetssjukehus har godtatt avbestillingen av timen «Kontroll etter grå stær»" in \
        notes[0]["text"]


async def test_a_fhir_refusal_is_rejected_with_the_providers_text(bff: Bff, sandbox: Sandbox, make_bff: Any,
                                                                  tmp_path: Path) -> None:
    hospital = await hospital_bff(make_bff, tmp_path)
    target = (await hospital_rows(hospital))["Telefonsamtale med lege"]
    assert target["canCancel"] is True  # no flags: the source's capability decides on our side
    answer = await cancel(hospital, target["id"])
    assert answer["request"]["status"] == "REJECTED"
    assert "kan ikke avbestilles på nett" in answer["request"]["providerMessage"]
    assert (await hospital_rows(hospital))["Telefonsamtale med lege"]["status"] == "BOOKED"


async def test_flags_without_cancel_are_refused_before_any_call(bff: Bff, sandbox: Sandbox, make_bff: Any,
                                                                tmp_path: Path) -> None:
    hospital = await hospital_bff(make_bff, tmp_path)
    target = (await hospital_rows(hospital))["Synsundersøkelse"]
    assert target["canCancel"] is False
    await sandbox.clear()
    answer = await cancel(hospital, target["id"])
    assert answer["errors"][0]["code"] == "NOT_CANCELLABLE"
    assert "helse-vest" not in await sandbox.calls()


async def test_a_restart_resumes_a_request_that_could_not_be_sent(bff: Bff, sandbox: Sandbox, make_bff: Any,
                                                                  redis: Any) -> None:
    prefix = f"restart-{uuid.uuid4().hex[:8]}"
    try:
        await _restart_resumes(bff, sandbox, make_bff, prefix)
    finally:  # its own prefix: the shared `redis` fixture cleans up only the usual one
        await delete_matching(redis, f"{prefix}:*")


async def _restart_resumes(bff: Bff, sandbox: Sandbox, make_bff: Any, prefix: str) -> None:
    first = await make_bff(redis_prefix=prefix)
    visit = next(r for r in rows(await first.query(LIST, {"filter": {"sourceIds": ["bergen-kommune"]}}, who="asane"))
                 if r["canCancel"])
    await sandbox.fault("bergen", status=503)
    data = await first.query(CANCEL, {"input": {"appointmentId": visit["id"], "idempotencyKey": "k"}}, who="asane")
    request = data["requestCancellation"]["request"]
    assert request["status"] == "PENDING"
    assert await sandbox.cancellation_requests() == []
    assert first.server is not None
    await first.server.stop()
    await sandbox.clear()
    second = await make_bff(redis_prefix=prefix)

    async def accepted() -> bool:
        answer = await second.query(REQUEST, {"id": request["id"]}, who="asane")
        return bool(answer["cancellationRequest"]["status"] == "ACCEPTED")

    await wait_for(accepted)
    assert len(await sandbox.cancellation_requests()) == 1
