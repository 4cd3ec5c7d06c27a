"""One contract every appointment connector keeps, on httpx's own seam (MockTransport):
it maps a provider's answer to rows of the person asked for, and reports a provider that
fails — 5xx, a timeout, a body it cannot read — as SourceUnavailable, one that refuses as
SourceRejected, never anything else. Each connector plugs in how its provider answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from bff.domain.models import AppointmentStatus
from bff.domain.sources import load_sources
from bff.domain.timez import OSLO
from bff.domain.wire import FNR_SYSTEM
from connectors import registry
from connectors.base import AppointmentConnector, SourceRejected, SourceUnavailable, Window

pytestmark = pytest.mark.unit

PID = "01817012345"
START = datetime(2026, 12, 10, 10, 0, tzinfo=OSLO)
WINDOW = Window(start=datetime(2026, 12, 1, tzinfo=OSLO))
SOURCES = {s.protocol: s for s in load_sources(None, {"SANDBOX_URL": "http://provider.test"}).sources}


@dataclass(frozen=True)
class Contract:
    """How one protocol's provider answers `rows` (upstream ids) for the person asked."""

    protocol: str
    answer: Callable[[httpx.Request, list[str], str | None], Any]
    """The JSON for a request: the rows, and the URL of a next page if any."""
    not_found: str
    """What a 404 means: "empty" (no data for that person) or "rejected"."""
    pages: bool


def fhir_answer(request: httpx.Request, rows: list[str], next_url: str | None) -> Any:
    def appointment(upstream: str) -> dict[str, Any]:
        return {"resourceType": "Appointment", "id": upstream, "status": "booked",
                "start": START.isoformat(), "end": (START + timedelta(minutes=30)).isoformat(),
                "description": "Kontroll",
                "participant": [{"actor": {"identifier": {"system": FNR_SYSTEM, "value": PID}}}]}

    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                              "entry": [{"resource": appointment(u)} for u in rows]}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def municipal_answer(request: httpx.Request, rows: list[str], next_url: str | None) -> Any:
    return {"visits": [{"id": u, "service": "home_nursing", "kind": "regular", "status": "planned",
                        "cancelledBy": None, "start": START.replace(tzinfo=None).isoformat(),
                        "end": (START + timedelta(minutes=30)).replace(tzinfo=None).isoformat(),
                        "employee": None, "district": "Åsane"} for u in rows]}


CONTRACTS = [Contract("fhir", fhir_answer, not_found="rejected", pages=True),
             Contract("municipal", municipal_answer, not_found="empty", pages=False)]


def connector(contract: Contract, handler: Callable[[httpx.Request], httpx.Response]) -> AppointmentConnector:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return registry.reader(SOURCES[contract.protocol], client)


def test_every_protocol_of_the_sources_file_has_a_connector_and_a_contract() -> None:
    from bff.domain.sources import PROTOCOLS

    assert set(registry.ADAPTERS) == set(PROTOCOLS) == {c.protocol for c in CONTRACTS}


@pytest.fixture(params=CONTRACTS, ids=lambda c: c.protocol)
def contract(request: pytest.FixtureRequest) -> Contract:
    return request.param  # type: ignore[no-any-return]


async def test_maps_the_persons_rows(contract: Contract) -> None:
    result = await connector(contract, lambda r: httpx.Response(200, json=contract.answer(r, ["a1", "a2"], None))
                             ).fetch([PID], WINDOW)
    rows = result.by_patient[PID]
    assert [r.upstream_id for r in rows] == ["a1", "a2"]
    assert {r.status for r in rows} == {AppointmentStatus.BOOKED}
    assert all(r.start == START and r.start.utcoffset() == START.utcoffset() for r in rows)
    assert all(r.patient_pid == PID and r.source_id == SOURCES[contract.protocol].id for r in rows)
    assert result.skipped == 0


async def test_a_404(contract: Contract) -> None:
    fetching = connector(contract, lambda r: httpx.Response(404)).fetch([PID], WINDOW)
    if contract.not_found == "empty":
        assert (await fetching).by_patient[PID] == ()
    else:
        with pytest.raises(SourceRejected):
            await fetching


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_a_failing_provider_is_unavailable(contract: Contract, status: int) -> None:
    with pytest.raises(SourceUnavailable):
        await connector(contract, lambda r: httpx.Response(status)).fetch([PID], WINDOW)


async def test_a_timeout_is_unavailable_and_says_so(contract: Contract) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(SourceUnavailable) as failed:
        await connector(contract, hang).fetch([PID], WINDOW)
    assert failed.value.kind == "timeout"


@pytest.mark.parametrize("body", [b"<html>busy</html>", b"[]", b'{"unexpected": true}', b'"text"'])
async def test_a_body_it_cannot_read_is_unavailable(contract: Contract, body: bytes) -> None:
    with pytest.raises(SourceUnavailable) as failed:
        await connector(contract, lambda r: httpx.Response(200, content=body)).fetch([PID], WINDOW)
    assert failed.value.kind == "malformed"


@pytest.mark.parametrize("paged", [c for c in CONTRACTS if c.pages], ids=lambda c: c.protocol)
async def test_paging_is_followed_on_the_same_server(paged: Contract) -> None:
    """For protocols that page (the municipal contract answers in one)."""
    contract = paged

    def pages(request: httpx.Request) -> httpx.Response:
        second = request.url.params.get("page") == "2"
        next_url = None if second else str(request.url.copy_merge_params({"page": "2"}))
        return httpx.Response(200, json=contract.answer(request, ["p2"] if second else ["p1"], next_url))

    rows = (await connector(contract, pages).fetch([PID], WINDOW)).by_patient[PID]
    assert [r.upstream_id for r in rows] == ["p1", "p2"]

    def elsewhere(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=contract.answer(request, ["p1"], "http://evil.test/Appointment?page=2"))

    with pytest.raises(SourceUnavailable):
        await connector(contract, elsewhere).fetch([PID], WINDOW)
