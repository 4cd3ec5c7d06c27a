"""One contract every appointment connector keeps, against a provider served over HTTP
for each test (its answers written by the test): it maps a provider's answer to rows of
the person asked for, and reports a provider that fails — 5xx, a timeout, a body it
cannot read — as SourceUnavailable, one that refuses as SourceRejected, never anything
else. Each connector plugs in how its provider answers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bff.domain.models import AppointmentStatus
from bff.domain.sources import load_sources
from bff.domain.timez import OSLO
from bff.domain.wire import FNR_SYSTEM
from bff.web.serving import start_server
from connectors import registry
from connectors.base import FetchResult, SourceRejected, SourceUnavailable, Window
from connectors.http import ProviderClient

pytestmark = pytest.mark.unit

PID = "01817012345"
START = datetime(2026, 12, 10, 10, 0, tzinfo=OSLO)
WINDOW = Window(start=datetime(2026, 12, 1, tzinfo=OSLO))
Answer = Callable[[Request], Response | Awaitable[Response]]


@dataclass(frozen=True)
class Contract:
    """How one protocol's provider answers `rows` (upstream ids) for the person asked."""

    protocol: str
    answer: Callable[[Request, list[str], str | None], Any]
    """The JSON for a request: the rows, and the URL of a next page if any."""
    not_found: str
    """What a 404 means: "empty" (no data for that person) or "rejected"."""
    pages: bool


def fhir_answer(request: Request, rows: list[str], next_url: str | None) -> Any:
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


def municipal_answer(request: Request, rows: list[str], next_url: str | None) -> Any:
    return {"visits": [{"id": u, "service": "home_nursing", "kind": "regular", "status": "planned",
                        "cancelledBy": None, "start": START.replace(tzinfo=None).isoformat(),
                        "end": (START + timedelta(minutes=30)).replace(tzinfo=None).isoformat(),
                        "employee": None, "district": "Åsane"} for u in rows]}


CONTRACTS = [Contract("fhir", fhir_answer, not_found="rejected", pages=True),
             Contract("municipal", municipal_answer, not_found="empty", pages=False)]


async def fetch(contract: Contract, answer: Answer, timeout: float = 5.0) -> FetchResult:
    """The person's rows, as the contract's connector reads them from a provider that
    answers every request with `answer`."""

    async def endpoint(request: Request) -> Response:
        answered = answer(request)
        return await answered if inspect.isawaitable(answered) else answered

    server = await start_server(Starlette(routes=[Route("/{path:path}", endpoint)]))
    try:
        sources = load_sources(None, {"SANDBOX_URL": server.url}).sources
        source = next(s for s in sources if s.protocol == contract.protocol)
        async with ProviderClient(timeout=timeout) as client:
            return await registry.reader(source, client).fetch([PID], WINDOW)
    finally:
        await server.stop()


def test_every_protocol_of_the_sources_file_has_a_connector_and_a_contract() -> None:
    from bff.domain.sources import PROTOCOLS

    assert set(registry.ADAPTERS) == set(PROTOCOLS) == {c.protocol for c in CONTRACTS}


@pytest.fixture(params=CONTRACTS, ids=lambda c: c.protocol)
def contract(request: pytest.FixtureRequest) -> Contract:
    return request.param  # type: ignore[no-any-return]


async def test_maps_the_persons_rows(contract: Contract) -> None:
    result = await fetch(contract, lambda r: JSONResponse(contract.answer(r, ["a1", "a2"], None)))
    rows = result.by_patient[PID]
    assert [r.upstream_id for r in rows] == ["a1", "a2"]
    assert {r.status for r in rows} == {AppointmentStatus.BOOKED}
    assert all(r.start == START and r.start.utcoffset() == START.utcoffset() for r in rows)
    assert all(r.patient_pid == PID for r in rows)
    assert len({r.source_id for r in rows}) == 1
    assert result.skipped == 0


async def test_a_404(contract: Contract) -> None:
    fetching = fetch(contract, lambda r: Response(status_code=404))
    if contract.not_found == "empty":
        assert (await fetching).by_patient[PID] == ()
    else:
        with pytest.raises(SourceRejected):
            await fetching


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_a_failing_provider_is_unavailable(contract: Contract, status: int) -> None:
    with pytest.raises(SourceUnavailable):
        await fetch(contract, lambda r: Response(status_code=status))


async def test_a_timeout_is_unavailable_and_says_so(contract: Contract) -> None:
    async def hang(request: Request) -> Response:
        await asyncio.sleep(2)
        return Response(status_code=204)

    with pytest.raises(SourceUnavailable) as failed:
        await fetch(contract, hang, timeout=0.2)
    assert failed.value.kind == "timeout"


@pytest.mark.parametrize("body", [b"<html>busy</html>", b"[]", b'{"unexpected": true}', b'"text"'])
async def test_a_body_it_cannot_read_is_unavailable(contract: Contract, body: bytes) -> None:
    with pytest.raises(SourceUnavailable) as failed:
        await fetch(contract, lambda r: Response(body))
    assert failed.value.kind == "malformed"


@pytest.mark.parametrize("paged", [c for c in CONTRACTS if c.pages], ids=lambda c: c.protocol)
async def test_paging_is_followed_on_the_same_server(paged: Contract) -> None:
    """For protocols that page (the municipal contract answers in one)."""
    contract = paged

    def pages(request: Request) -> Response:
        second = request.query_params.get("page") == "2"
        next_url = None if second else str(request.url.include_query_params(page="2"))
        return JSONResponse(contract.answer(request, ["p2"] if second else ["p1"], next_url))

    rows = (await fetch(contract, pages)).by_patient[PID]
    assert [r.upstream_id for r in rows] == ["p1", "p2"]

    def elsewhere(request: Request) -> Response:
        return JSONResponse(contract.answer(request, ["p1"], "http://evil.test/Appointment?page=2"))

    with pytest.raises(SourceUnavailable):
        await fetch(contract, elsewhere)
