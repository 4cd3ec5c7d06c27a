"""Bench providers: five FHIR servers and one municipality that answer for *any* person
with `PER_SOURCE` appointments each (generated from the pid, so no data set has to be
loaded), after a fixed latency with jitter; a person directory that places everyone in
Frogner with a pilot GP (no added latency: an internal, fast service). Calls are counted
per provider for scenario (d).

    python -m bench.providers --port 8901 --latency-ms 50 --jitter-ms 5 --per-source 30
    python -m bench.providers --port 8902 --per-source 6 --page-size 5   # scenario (p)'s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections import Counter
from datetime import timedelta

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bff.domain.timez import start_of_day, today
from bff.domain.wire import FNR_SYSTEM
from bff.sandbox.cast import GP_OFFICE, HAUKELAND, ST_OLAV_ORTO, UNN_CANCER
from bff.sandbox.fhir_builder import build

PLACEHOLDER = "99999999999"
FHIR_TENANTS = {"hv": HAUKELAND, "hn": UNN_CANCER, "hm": ST_OLAV_ORTO, "hso": HAUKELAND, "gp": GP_OFFICE}
BIG_PIDS = frozenset(filter(None, os.environ.get("BENCH_BIG_PIDS", "").split(",")))
"""These persons get `big_per_source` rows per source (scenario c)."""


class Providers:
    def __init__(self, latency_ms: float, jitter_ms: float, per_source: int, big_per_source: int,
                 directory_ms: float = 0, page_size: int = 0) -> None:
        self.latency = latency_ms / 1000
        self.directory_latency = directory_ms / 1000
        self.jitter = jitter_ms / 1000
        self.per_source = per_source
        self.big_per_source = big_per_source
        self.page_size = page_size
        """FHIR searchset pages of this many entries, followed by `link[next]` (0: one page)."""
        self.calls: Counter[str] = Counter()
        self.timeline: list[tuple[str, float, float, str]] = []
        """(provider, arrived, answered, first pid asked for), times in epoch seconds, for
        `bench.timeline` and scenario (a)'s slowest upstream per request."""
        self._templates: dict[tuple[str, int], str] = {}

    async def delay(self) -> None:
        await asyncio.sleep(max(0.0, self.latency + random.uniform(-self.jitter, self.jitter)))

    def count(self, pid: str) -> int:
        return self.big_per_source if pid in BIG_PIDS else self.per_source

    def bundle(self, tenant: str, pids: list[str], page: int = 1, next_url: str = "") -> bytes:
        """Page `page` of a searchset Bundle, from JSON templates with the pid filled in
        (cheap, so the providers' own CPU does not distort the measurement); `next_url`
        names the next page when there is one."""
        entries = [(pid, n) for pid in pids for n in range(self.count(pid))]
        total = len(entries)
        if self.page_size:
            entries = entries[(page - 1) * self.page_size:page * self.page_size]
        more = bool(self.page_size) and page * self.page_size < total
        link = f'"link":[{{"relation":"next","url":{json.dumps(next_url)}}}],' if more else ""
        return (f'{{"resourceType":"Bundle","type":"searchset","total":{total},{link}"entry":['
                + ",".join(self._entry(tenant, n).replace(PLACEHOLDER, pid) for pid, n in entries) + "]}").encode()

    def _entry(self, tenant: str, n: int) -> str:
        if (tenant, n) not in self._templates:
            start = start_of_day(today()) + timedelta(days=1 + n % 60, hours=8 + n % 8)
            resource = build(f"{tenant}-{n}", PLACEHOLDER, FHIR_TENANTS[tenant], start, start + timedelta(minutes=30),
                             title=f"Time {n}").resource
            resource["id"] = f"{PLACEHOLDER}-{n}"
            entry = {"fullUrl": f"http://bench/{tenant}/Appointment/{PLACEHOLDER}-{n}", "resource": resource}
            self._templates[(tenant, n)] = json.dumps(entry)
        return self._templates[(tenant, n)]


def app(providers: Providers) -> Starlette:
    async def fhir(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        providers.calls[tenant] += 1
        arrived = time.time()
        await providers.delay()
        tokens = request.query_params.get("patient:identifier", "")
        pids = [t.split("|", 1)[1] for t in tokens.split(",") if t.startswith(f"{FNR_SYSTEM}|")]
        page = int(request.query_params.get("_page", "1"))
        body = providers.bundle(tenant, pids, page, str(request.url.include_query_params(_page=page + 1)))
        providers.timeline.append((tenant, arrived, time.time(), pids[0] if pids else ""))
        return Response(body, media_type="application/fhir+json")

    async def visits(request: Request) -> Response:
        providers.calls["oslo"] += 1
        arrived = time.time()
        await providers.delay()
        pid = request.path_params["pid"]
        base = start_of_day(today())
        providers.timeline.append(("oslo", arrived, time.time(), pid))
        return JSONResponse({"visits": [
            {"id": f"v{n}", "service": "home_nursing", "kind": "regular", "status": "planned", "cancelledBy": None,
             "start": (base + timedelta(days=1 + n % 30, hours=9)).isoformat(),
             "end": (base + timedelta(days=1 + n % 30, hours=9, minutes=30)).isoformat(),
             "employee": None, "district": "Frogner"} for n in range(providers.count(pid))]})

    async def person(request: Request) -> Response:
        providers.calls["persons"] += 1
        arrived = time.time()
        if providers.directory_latency:
            await asyncio.sleep(max(0.0, providers.directory_latency + random.uniform(-providers.jitter,
                                                                                      providers.jitter)))
        pid = request.path_params["pid"]
        providers.timeline.append(("persons", arrived, time.time(), pid))
        return JSONResponse({"pid": pid, "name": "Bench Person", "birthDate": "1980-01-01", "confidential": False,
                             "address": {"municipality": "0301", "district": "Frogner"},
                             "gp": {"herId": "8094711", "name": "Bench legesenter"}, "mayActFor": []})

    async def calls(request: Request) -> Response:
        if request.method == "DELETE":
            providers.calls.clear()
        return JSONResponse(dict(providers.calls))

    async def timeline(request: Request) -> Response:
        seen, providers.timeline = providers.timeline, []
        return JSONResponse(seen)

    async def notify(request: Request) -> Response:
        return JSONResponse({"status": "delivered"}, status_code=202)

    return Starlette(routes=[
        Route("/fhir/{tenant}/Appointment", fhir), Route("/kommune/oslo/citizens/{pid}/visits", visits),
        Route("/persons/{pid}", person), Route("/_admin/calls", calls, methods=["GET", "DELETE"]),
        Route("/_admin/timeline", timeline, methods=["POST"]),
        Route("/varsel/notifications", notify, methods=["POST"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8901)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--jitter-ms", type=float, default=5)
    parser.add_argument("--per-source", type=int, default=30)
    parser.add_argument("--big-per-source", type=int, default=84)
    parser.add_argument("--directory-ms", type=float, default=0, help="the person directory's latency (default none)")
    parser.add_argument("--page-size", type=int, default=0, help="FHIR searchset pages of this many (default one page)")
    args = parser.parse_args()
    providers = Providers(args.latency_ms, args.jitter_ms, args.per_source, args.big_per_source, args.directory_ms,
                          args.page_size)
    uvicorn.run(app(providers), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

