"""The sandbox providers as one Starlette app: FHIR servers, municipal APIs, the person
directory and the notification service, each under its own path prefix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bff.sandbox.cast import World, build_world
from bff.sandbox.faults import CallLog, Fault, FaultMiddleware
from bff.timez import parse_instant, today
from connectors.fhir_mapping import FNR_SYSTEM

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
    async def endpoint(request: Request) -> Response:
        state.notifications.append(await request.json())
        return JSONResponse({"status": "delivered"}, status_code=202)

    return endpoint


def admin_routes(state: SandboxState) -> list[Route]:
    async def set_fault(request: Request) -> Response:
        state.faults[request.path_params["target"]] = Fault.parse(await request.json())
        return JSONResponse({"ok": True})

    async def clear_faults(request: Request) -> Response:
        state.faults.clear()
        return JSONResponse({"ok": True})

    async def calls(request: Request) -> Response:
        return JSONResponse({"calls": dict(state.log.calls),
                             "patientsPerSearch": [list(x) for x in state.log.patients_per_search]})

    async def reset_calls(request: Request) -> Response:
        state.log.reset()
        return JSONResponse({"ok": True})

    async def notifications(request: Request) -> Response:
        return JSONResponse({"notifications": state.notifications})

    return [
        Route("/_admin/faults/{target}", set_fault, methods=["PUT", "POST"]),
        Route("/_admin/faults", clear_faults, methods=["DELETE"]),
        Route("/_admin/calls", calls, methods=["GET"]),
        Route("/_admin/calls", reset_calls, methods=["DELETE"]),
        Route("/_admin/notifications", notifications, methods=["GET"]),
    ]


@dataclass
class Sandbox:
    """The sandbox's ASGI app and the state tests may inspect."""

    app: ASGIApp
    state: SandboxState


def create_sandbox(day: date | None = None) -> Sandbox:
    """The sandbox providers, their data laid out around `day` (today in Oslo by default)."""
    state = SandboxState(world=build_world(day or today()))
    routes = [
        Route("/fhir/{tenant}/Appointment", fhir_search(state), methods=["GET"], name="fhir_search"),
        Route("/kommune/{tenant}/citizens/{pid}/visits", municipal_visits(state), methods=["GET"]),
        Route("/persons/{pid}", person(state), methods=["GET"]),
        Route("/varsel/notifications", notify(state), methods=["POST"]),
        *admin_routes(state),
    ]
    return Sandbox(FaultMiddleware(Starlette(routes=routes), state.faults, state.log), state)
