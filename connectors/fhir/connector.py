"""FHIR R4 connector for hospital and GP systems (Helsenorge appointment profile)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from bff.domain.models import Appointment, CancellationStatus
from bff.domain.wire import FNR_SYSTEM
from connectors.base import (
    CancelAnswer,
    FetchResult,
    SourceRejected,
    SourceUnavailable,
    Window,
)
from connectors.fhir.mapping import appointments_among, appointments_in
from connectors.fhir.refs import iter_entries
from connectors.http import ProviderClient, Response, raise_for_status, read_json, send

PAGE_SIZE = 100
MAX_PAGES = 50
FHIR_JSON = "application/fhir+json"


def search_query(patients: Sequence[str], window: Window) -> str:
    """The search string: several patients as one OR-token list, dates with `+` as %2B."""
    tokens = ",".join(f"{FNR_SYSTEM}|{pid}" for pid in patients)
    parts = [f"patient:identifier={quote(tokens, safe=':|,')}", f"date=ge{_instant(window.start)}"]
    if window.end is not None:
        parts.append(f"date=le{_instant(window.end)}")
    parts.append(f"_count={PAGE_SIZE}")
    return "&".join(parts)


def _instant(value: datetime) -> str:
    return quote(value.isoformat(timespec="seconds"), safe="")


class FhirConnector:
    """Reads appointments from one FHIR R4 server; several patients per search."""

    def __init__(
        self,
        source_id: str,
        base_url: str,
        client: ProviderClient,
        patient_cancel_codes: frozenset[str] = frozenset(),
    ) -> None:
        self.source_id = source_id
        self._base = base_url.rstrip("/")
        parts = urlsplit(self._base)
        self._origin = f"{parts.scheme}://{parts.netloc}/"
        self._client = client
        self._patient_codes = patient_cancel_codes

    async def fetch(self, patients: Sequence[str], window: Window) -> FetchResult:
        url = f"{self._base}/Appointment?{search_query(patients, window)}"
        entries: list[tuple[str | None, Any]] = []
        for _ in range(MAX_PAGES):
            bundle = await self._get_bundle(url)
            entries.extend(iter_entries(bundle))
            next_url = _next_link(bundle)
            if next_url is None:
                break
            url = self._same_server(next_url)
        else:
            raise SourceUnavailable(self.source_id, f"more than {MAX_PAGES} pages")
        return self._map(entries, frozenset(patients))

    async def _get_bundle(self, url: str) -> Any:
        request = self._client.build_request("GET", url, headers={"Accept": FHIR_JSON})
        response = await send(self.source_id, self._client, request)
        raise_for_status(self.source_id, response)
        bundle = read_json(self.source_id, response)
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise SourceUnavailable(self.source_id, "response is not a FHIR Bundle", "malformed")
        if not isinstance(bundle.get("entry", []), list):
            raise SourceUnavailable(self.source_id, "Bundle.entry is not a list", "malformed")
        return bundle

    def _same_server(self, next_url: str) -> str:
        """Follow paging links only on the server we asked, never elsewhere."""
        if next_url.startswith(self._origin):  # the usual link: absolute, on this server
            return next_url
        absolute = urljoin(self._base + "/", next_url)
        if urlsplit(absolute).netloc != urlsplit(self._base).netloc:
            raise SourceUnavailable(self.source_id, "paging link points to another server")
        return absolute

    def _map(self, entries: list[tuple[str | None, Any]], patients: frozenset[str]) -> FetchResult:
        rows, skipped = appointments_among(entries, source_id=self.source_id, patients=patients,
                                           patient_cancel_codes=self._patient_codes)
        by_patient: dict[str, list[Appointment]] = {pid: [] for pid in patients}
        for row in rows:
            by_patient[row.patient_pid].append(row)
        return FetchResult({pid: tuple(rows) for pid, rows in by_patient.items()}, skipped=skipped)


def _next_link(bundle: Any) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


PATIENT_PORTAL_CANCEL = "pat-cpp"
CANCEL_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
REJECTING_STATUSES = frozenset({409, 412, 422})


class FhirCanceller:
    """Cancels an Appointment on a FHIR server: read it, then PUT it back cancelled
    (`cancelationReason` pat-cpp, "cancelled via patient portal") with `If-Match`, so a
    change made meanwhile is refused (412) rather than overwritten. The server answers at
    once: accepted, or rejected with its OperationOutcome's text."""

    def __init__(self, source_id: str, base_url: str, client: ProviderClient) -> None:
        self.source_id = source_id
        self._base = base_url.rstrip("/")
        self._client = client

    async def cancel(self, pid: str, upstream_id: str, request_id: str, reason: str | None) -> CancelAnswer:
        url = f"{self._base}/Appointment/{quote(upstream_id, safe='')}"
        resource, etag = await self._read(url, pid)
        if resource.get("status") == "cancelled":
            return self._already(resource)
        resource["status"] = "cancelled"
        resource["cancelationReason"] = {"coding": [{"system": CANCEL_REASON_SYSTEM, "code": PATIENT_PORTAL_CANCEL}],
                                         **({"text": reason} if reason else {})}
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "X-Request-Id": request_id}
        if etag:
            headers["If-Match"] = etag
        request = self._client.build_request("PUT", url, json=resource, headers=headers)
        response = await send(self.source_id, self._client, request)
        if response.status_code in REJECTING_STATUSES:
            return CancelAnswer(CancellationStatus.REJECTED, _outcome_text(response))
        raise_for_status(self.source_id, response, _outcome_text(response))
        return CancelAnswer(CancellationStatus.ACCEPTED)

    async def poll(self, pid: str, upstream_id: str, request_id: str) -> CancelAnswer:
        resource, _ = await self._read(f"{self._base}/Appointment/{quote(upstream_id, safe='')}", pid)
        if resource.get("status") == "cancelled":
            return self._already(resource)
        return CancelAnswer(CancellationStatus.PENDING)

    def _already(self, resource: dict[str, Any]) -> CancelAnswer:
        codes = [c.get("code") for c in (resource.get("cancelationReason") or {}).get("coding") or ()
                 if isinstance(c, dict)]
        if PATIENT_PORTAL_CANCEL in codes:
            return CancelAnswer(CancellationStatus.ACCEPTED)
        return CancelAnswer(CancellationStatus.REJECTED, "Timen er allerede avlyst.")

    async def _read(self, url: str, pid: str) -> tuple[dict[str, Any], str | None]:
        request = self._client.build_request("GET", url, headers={"Accept": FHIR_JSON})
        response = await send(self.source_id, self._client, request)
        raise_for_status(self.source_id, response, _outcome_text(response))
        resource = read_json(self.source_id, response)
        if not isinstance(resource, dict) or resource.get("resourceType") != "Appointment":
            raise SourceUnavailable(self.source_id, "response is not an Appointment", "malformed")
        rows, _ = appointments_in(resource, source_id=self.source_id, patients=frozenset({pid}))
        if not rows and resource.get("status") not in ("entered-in-error", "waitlist"):
            raise SourceRejected(self.source_id, "appointment is not this patient's", 404)
        return resource, response.headers.get("ETag")


def _outcome_text(response: Response) -> str | None:
    try:
        body = read_json("error body", response)
    except SourceUnavailable:
        return None
    if not isinstance(body, dict):
        return None
    texts = []
    for issue in body.get("issue") or ():
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if isinstance(text, str) and text:
                texts.append(text)
    return " ".join(texts) or None
