"""Connector for the municipal home-care API (hjemmesykepleie, praktisk bistand)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bff.domain.models import (
    ANSWERS,
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    CancellationStatus,
    CancelledBy,
    VisitKind,
)
from bff.domain.sources import MUNICIPAL_SERVICE_CODES
from bff.domain.timez import parse_instant
from connectors.base import CancelAnswer, FetchResult, SourceUnavailable, Window
from connectors.http import ProviderClient, Request, Response, raise_for_status, read_json, send

VISIT_KINDS = {"regular": VisitKind.REGULAR, "assigned": VisitKind.ASSIGNED, "performed": VisitKind.PERFORMED}
CANCELLED_BY = {"citizen": CancelledBy.PATIENT, "service": CancelledBy.PROVIDER, None: None}
SERVICE_TITLES = {"home_nursing": "Hjemmesykepleie", "practical_assistance": "Praktisk bistand"}
VISIT_STATUSES = frozenset({"planned", "cancelled", "performed"})


class MunicipalConnector:
    """Reads a citizen's home visits from one municipality; one call per citizen."""

    def __init__(self, source_id: str, base_url: str, client: ProviderClient, organization: str) -> None:
        self.source_id = source_id
        self._base = base_url.rstrip("/")
        self._client = client
        self._organization = organization

    async def fetch(self, patients: Sequence[str], window: Window) -> FetchResult:
        by_patient: dict[str, tuple[Appointment, ...]] = {}
        skipped = 0
        for pid in patients:
            rows, bad = await self._fetch_one(pid, window)
            by_patient[pid] = rows
            skipped += bad
        return FetchResult(by_patient, skipped=skipped)

    async def _fetch_one(self, pid: str, window: Window) -> tuple[tuple[Appointment, ...], int]:
        params = {"from": window.start.isoformat(timespec="seconds")}
        if window.end is not None:
            params["to"] = window.end.isoformat(timespec="seconds")
        request = self._client.build_request(
            "GET", f"{self._base}/citizens/{quote(pid, safe='')}/visits", params=params
        )
        response = await send(self.source_id, self._client, request)
        if response.status_code == 404:
            return (), 0
        raise_for_status(self.source_id, response)
        body = read_json(self.source_id, response)
        visits = body.get("visits") if isinstance(body, dict) else None
        if not isinstance(visits, list):
            raise SourceUnavailable(self.source_id, "response has no visits list", "malformed")
        mapped = [self._map(v, pid) for v in visits]
        rows = tuple(a for a in mapped if a is not None)
        return rows, len(mapped) - len(rows)

    def _map(self, visit: Any, pid: str) -> Appointment | None:
        """One visit, or None when it cannot be read (counted by the caller)."""
        if not isinstance(visit, Mapping):
            return None
        try:
            return map_visit(visit, pid, self.source_id, self._organization)
        except (KeyError, TypeError, ValueError):
            return None


def map_visit(visit: Mapping[str, Any], pid: str, source_id: str, organization: str) -> Appointment:
    """Map one visit per the contract's table; raises on a visit that cannot be read."""
    status, kind_code = visit["status"], visit["kind"]
    if status not in VISIT_STATUSES or kind_code not in VISIT_KINDS:
        raise ValueError(f"unknown status/kind {status!r}/{kind_code!r}")
    visit_kind = VISIT_KINDS[kind_code]
    if status == "cancelled":
        mapped_status = AppointmentStatus.CANCELLED
    elif status == "performed" or visit_kind is VisitKind.PERFORMED:
        mapped_status, visit_kind = AppointmentStatus.FULFILLED, VisitKind.PERFORMED
    elif visit_kind is VisitKind.ASSIGNED:
        mapped_status = AppointmentStatus.ASSIGNED
    else:
        mapped_status = AppointmentStatus.BOOKED
    service_code = str(visit["service"])
    district = visit.get("district")
    return Appointment(
        source_id=source_id,
        upstream_id=str(visit["id"]),
        patient_pid=pid,
        status=mapped_status,
        start=parse_instant(str(visit["start"])),
        end=parse_instant(str(visit["end"])) if visit.get("end") else None,
        title=SERVICE_TITLES.get(service_code, service_code),
        kind=AppointmentKind.HOME_VISIT,
        service=MUNICIPAL_SERVICE_CODES.get(service_code),
        visit_kind=visit_kind,
        organization=organization,
        department=str(district) if district else None,
        practitioner=str(visit["employee"]) if visit.get("employee") else None,
        cancelled_by=CANCELLED_BY[visit.get("cancelledBy")] if status == "cancelled" else None,
        cancelled=status == "cancelled",
    )




class MunicipalCanceller:
    """Sends cancellation requests to a municipality; answers come later (webhook or poll)."""

    def __init__(self, source_id: str, base_url: str, client: ProviderClient) -> None:
        self.source_id = source_id
        self._base = base_url.rstrip("/")
        self._client = client

    async def cancel(self, pid: str, upstream_id: str, request_id: str, reason: str | None) -> CancelAnswer:
        url = f"{self._base}/citizens/{quote(pid, safe='')}/visits/{quote(upstream_id, safe='')}/cancellation-requests"
        request = self._client.build_request("POST", url, json={"requestId": request_id, "reason": reason or ""})
        return await self._answer(request)

    async def poll(self, pid: str, upstream_id: str, request_id: str) -> CancelAnswer:
        request = self._client.build_request(
            "GET", f"{self._base}/cancellation-requests/{quote(request_id, safe='')}")
        return await self._answer(request)

    async def _answer(self, request: Request) -> CancelAnswer:
        response = await send(self.source_id, self._client, request)
        if response.status_code >= 400:
            raise_for_status(self.source_id, response, _error_text(response))
        body = read_json(self.source_id, response)
        status = CancellationStatus.from_provider(body.get("status"), ANSWERS) if isinstance(body, dict) else None
        if status is None:
            raise SourceUnavailable(self.source_id, "cancellation answer cannot be read", "malformed")
        message = body.get("message")
        return CancelAnswer(status, message if isinstance(message, str) and message else None)


def _error_text(response: Response) -> str | None:
    try:
        body = read_json("error body", response)
    except SourceUnavailable:
        return None
    for field in ("message", "error", "detail"):
        if isinstance(body, dict) and isinstance(body.get(field), str):
            return str(body[field])
    return None
