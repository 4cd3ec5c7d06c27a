"""The sandbox providers as one Starlette app: FHIR servers, municipal APIs, the person
directory and the notification service, each under its own path prefix, and the
HelseID-like token server whose DPoP-bound tokens they all want (`bff.sandbox.helseid`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bff.domain.timez import parse_instant, today
from bff.domain.wire import FNR_SYSTEM
from bff.sandbox.cancellations import CancellationDesk
from bff.sandbox.cast import World, build_world
from bff.sandbox.faults import CallLog, Fault, FaultMiddleware
from bff.sandbox.helseid import DPoPGuard, TokenServer, helseid_routes

FHIR_JSON = "application/fhir+json"
MAX_PAGE = 100
PAGE_SIZES = {"helse-vest": 3}
"""Helse Vest pages small, so every list exercises `link[next]` paging."""


@dataclass
class SandboxState:
    """Everything the sandbox providers hold and record."""

    world: World
    faults: dict[str, Fault] = field(default_factory=dict)
    log: CallLog = field(default_factory=CallLog)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    notification_keys: set[str] = field(default_factory=set)
    desk: CancellationDesk = field(default_factory=CancellationDesk)
    fhir_versions: dict[str, int] = field(default_factory=dict)
    helseid: TokenServer = field(default_factory=TokenServer)


def _outcome(status: int, text: str) -> JSONResponse:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid",
                                                           "diagnostics": text}]}
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def _dates(values: list[str]) -> tuple[datetime | None, datetime | None] | str:
    lower = upper = None
    for value in values:
        prefix, raw = value[:2], value[2:]
        try:
            instant = parse_instant(raw)
        except ValueError:
            return f"date parameter {value!r} is not a dateTime (was '+' sent unencoded?)"
        if prefix == "ge":
            lower = instant
        elif prefix == "le":
            upper = instant
        else:
            return f"date prefix {prefix!r} is not supported"
    return lower, upper


def fhir_search(state: SandboxState) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if tenant not in state.world.fhir:
            return _outcome(404, f"no FHIR server {tenant}")
        tokens = request.query_params.get("patient:identifier")
        if not tokens:
            return _outcome(400, "patient:identifier is required")
        pids = {t.split("|", 1)[1] for t in tokens.split(",") if t.startswith(f"{FNR_SYSTEM}|")}
        window = _dates(request.query_params.getlist("date"))
        if isinstance(window, str):
            return _outcome(400, window)
        lower, upper = window
        matches = sorted(
            (a for a in state.world.fhir[tenant] if a.patient in pids
             and (lower is None or a.start >= lower) and (upper is None or a.start <= upper)),
            key=lambda a: a.start,
        )
        count = min(int(request.query_params.get("_count", MAX_PAGE)), MAX_PAGE, PAGE_SIZES.get(tenant, MAX_PAGE))
        offset = int(request.query_params.get("_offset", 0))
        page = matches[offset: offset + count]
        base = str(request.url_for("fhir_search", tenant=tenant)).removesuffix("/Appointment")
        entries: list[dict[str, Any]] = []
        for appt in page:
            entries.append({"fullUrl": f"{base}/Appointment/{appt.resource['id']}", "resource": appt.resource,
                            "search": {"mode": "match"}})
            entries += [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                         "search": {"mode": "include"}} for r in appt.included]
        links = [{"relation": "self", "url": str(request.url)}]
        if offset + count < len(matches):
            links.append({"relation": "next", "url": str(request.url.include_query_params(_offset=offset + count))})
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "link": links,
                  "entry": entries}
        return JSONResponse(bundle, media_type=FHIR_JSON)

    return endpoint


def municipal_visits(state: SandboxState) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        tenant, pid = request.path_params["tenant"], request.path_params["pid"]
        citizens = state.world.visits.get(tenant)
        if citizens is None or pid not in citizens:
            return JSONResponse({"error": "unknown citizen"}, status_code=404)
        try:
            lower = parse_instant(request.query_params["from"]) if "from" in request.query_params else None
            upper = parse_instant(request.query_params["to"]) if "to" in request.query_params else None
        except ValueError:
            return JSONResponse({"error": "from/to must be ISO 8601 date-times"}, status_code=400)
        visits = [v for v in citizens[pid] if (lower is None or parse_instant(v["start"]) >= lower)
                  and (upper is None or parse_instant(v["start"]) <= upper)]
        return JSONResponse({"visits": visits})

    return endpoint


def person(state: SandboxState) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        record = state.world.directory_record(request.path_params["pid"])
        if record is None:
            return JSONResponse({"error": "unknown person"}, status_code=404)
        return JSONResponse(record)

    return endpoint


def notify(state: SandboxState) -> Callable[[Request], Any]:
    """The notification service: records what it gets; a repeated Idempotency-Key is
    acknowledged without a second notification."""

    async def endpoint(request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if key and key in state.notification_keys:
            return JSONResponse({"status": "duplicate"}, status_code=200)
        state.notifications.append(await request.json())
        if key:
            state.notification_keys.add(key)
        return JSONResponse({"status": "delivered"}, status_code=202)

    return endpoint


def _find_visit(state: SandboxState, tenant: str, pid: str, visit_id: str) -> dict[str, Any] | None:
    visits = state.world.visits.get(tenant, {}).get(pid, [])
    return next((v for v in visits if v["id"] == visit_id), None)


def municipal_cancel(state: SandboxState) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        tenant, pid, visit_id = (request.path_params[k] for k in ("tenant", "pid", "visit"))
        visit = _find_visit(state, tenant, pid, visit_id)
        if visit is None:
            return JSONResponse({"error": "unknown visit"}, status_code=404)
        try:
            body = await request.json()
            request_id = str(body["requestId"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "requestId is required"}, status_code=400)
        known = state.desk.requests.get(request_id)
        if known is None and visit["status"] != "planned":
            return JSONResponse({"error": "Besøket er allerede avlyst eller utført."}, status_code=409)
        entry = state.desk.receive(tenant, visit, request_id, str(body.get("reason") or ""))
        return JSONResponse({"requestId": request_id, "status": entry["status"]}, status_code=202)

    return endpoint


def municipal_request_status(state: SandboxState) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        entry = state.desk.requests.get(request.path_params["rid"])
        if entry is None or entry["tenant"] != request.path_params["tenant"]:
            return JSONResponse({"error": "unknown request"}, status_code=404)
        return JSONResponse({k: entry[k] for k in ("requestId", "status", "message")})

    return endpoint


def _fhir_find(state: SandboxState, tenant: str, appointment_id: str) -> Any:
    return next((a for a in state.world.fhir.get(tenant, []) if a.resource["id"] == appointment_id), None)


def fhir_read(state: SandboxState) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        tenant, appointment_id = request.path_params["tenant"], request.path_params["id"]
        found = _fhir_find(state, tenant, appointment_id)
        if found is None:
            return _outcome(404, "Appointment not found")
        version = state.fhir_versions.get(appointment_id, 1)
        return JSONResponse(found.resource, media_type=FHIR_JSON, headers={"ETag": f'W/"{version}"'})

    return endpoint


def fhir_update(state: SandboxState) -> Callable[[Request], Any]:
    """Accepts a cancellation (status cancelled) of a booked appointment whose flags allow
    it; 412 when If-Match is stale, 422 when the appointment may not be cancelled."""

    async def endpoint(request: Request) -> Response:
        tenant, appointment_id = request.path_params["tenant"], request.path_params["id"]
        found = _fhir_find(state, tenant, appointment_id)
        if found is None:
            return _outcome(404, "Appointment not found")
        version = state.fhir_versions.get(appointment_id, 1)
        if request.headers.get("if-match") not in (None, f'W/"{version}"'):
            return _outcome(412, "Timen er endret siden du så den. Last listen på nytt.")
        try:
            body = await request.json()
        except ValueError:
            return _outcome(400, "body is not JSON")
        if body.get("status") != "cancelled":
            return _outcome(422, "Bare avbestilling er støttet.")
        if found.resource["status"] not in ("booked", "pending", "proposed"):
            return _outcome(409, "Timen kan ikke avbestilles i sin nåværende status.")
        if not _allows_cancel(found.resource):
            return _outcome(422, "Denne timen kan ikke avbestilles på nett. Kontakt behandlingsstedet.")
        found.resource["status"] = "cancelled"
        found.resource["cancelationReason"] = body.get("cancelationReason")
        state.fhir_versions[appointment_id] = version + 1
        return JSONResponse(found.resource, media_type=FHIR_JSON, headers={"ETag": f'W/"{version + 1}"'})

    return endpoint


def _allows_cancel(resource: dict[str, Any]) -> bool:
    codes = {c.get("code") for r in resource.get("contained", []) if r.get("resourceType") == "Flag"
             for c in r.get("code", {}).get("coding", [])}
    return "cancel" in codes


def admin_routes(state: SandboxState) -> list[Route]:
    async def set_fault(request: Request) -> Response:
        state.faults[request.path_params["target"]] = Fault.parse(await request.json())
        return JSONResponse({"ok": True})

    async def clear_faults(request: Request) -> Response:
        state.faults.clear()
        return JSONResponse({"ok": True})

    async def reset(request: Request) -> Response:
        """Fresh data and no recorded requests: each test starts from the same world."""
        for task in list(state.desk.tasks):
            task.cancel()
        state.world = build_world(today())
        state.desk = CancellationDesk(policies=state.desk.policies)
        state.notifications.clear()
        state.notification_keys.clear()
        state.fhir_versions.clear()
        state.helseid.reset()
        return JSONResponse({"ok": True})

    async def calls(request: Request) -> Response:
        return JSONResponse({"calls": dict(state.log.calls), "mostAtOnce": dict(state.log.most_at_once),
                             "traces": dict(state.log.traces),
                             "patientsPerSearch": [list(x) for x in state.log.patients_per_search]})

    async def reset_calls(request: Request) -> Response:
        state.log.reset()
        return JSONResponse({"ok": True})

    async def notifications(request: Request) -> Response:
        return JSONResponse({"notifications": state.notifications})

    async def municipal_policy(request: Request) -> Response:
        state.desk.policy(request.path_params["tenant"]).update(await request.json())
        return JSONResponse({"ok": True})

    async def municipal_requests(request: Request) -> Response:
        return JSONResponse({"requests": list(state.desk.requests.values()), "webhooks": state.desk.webhooks_sent})

    return [
        Route("/_admin/faults/{target}", set_fault, methods=["PUT", "POST"]),
        Route("/_admin/faults", clear_faults, methods=["DELETE"]),
        Route("/_admin/reset", reset, methods=["POST"]),
        Route("/_admin/calls", calls, methods=["GET"]),
        Route("/_admin/calls", reset_calls, methods=["DELETE"]),
        Route("/_admin/notifications", notifications, methods=["GET"]),
        Route("/_admin/municipal/{tenant}", municipal_policy, methods=["PUT"]),
        Route("/_admin/cancellation-requests", municipal_requests, methods=["GET"]),
    ]


@dataclass
class Sandbox:
    """The sandbox's ASGI app and the state tests may inspect."""

    app: ASGIApp
    state: SandboxState


def create_sandbox(day: date | None = None, clients: Mapping[str, Mapping[str, Any]] | None = None) -> Sandbox:
    """The sandbox providers, their data laid out around `day` (today in Oslo by default);
    `clients`: the HelseID clients its token server knows (client id → public JWK)."""
    state = SandboxState(world=build_world(day or today()))
    for client_id, jwk in (clients or {}).items():
        state.helseid.register(client_id, jwk)
    routes = [
        Route("/fhir/{tenant}/Appointment", fhir_search(state), methods=["GET"], name="fhir_search"),
        Route("/fhir/{tenant}/Appointment/{id}", fhir_read(state), methods=["GET"]),
        Route("/fhir/{tenant}/Appointment/{id}", fhir_update(state), methods=["PUT"]),
        Route("/kommune/{tenant}/citizens/{pid}/visits", municipal_visits(state), methods=["GET"]),
        Route("/kommune/{tenant}/citizens/{pid}/visits/{visit}/cancellation-requests", municipal_cancel(state),
              methods=["POST"]),
        Route("/kommune/{tenant}/cancellation-requests/{rid}", municipal_request_status(state), methods=["GET"]),
        Route("/persons/{pid}", person(state), methods=["GET"]),
        Route("/varsel/notifications", notify(state), methods=["POST"]),
        *admin_routes(state),
        *helseid_routes(state.helseid),
    ]
    guarded = DPoPGuard(Starlette(routes=routes), state.helseid)
    return Sandbox(FaultMiddleware(guarded, state.faults, state.log), state)
