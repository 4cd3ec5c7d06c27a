"""The baseline the BFF is measured against: a plain Starlette endpoint that does the same
work by hand — verify the token, ask the directory (and, beside it, the hospitals, which
apply to everyone), fan out to the same providers with the same client and connectors, apply
the same rules — and returns the same JSON, with no GraphQL, no DataLoaders and no cache.
`/list-cached` serves the same JSON from the very Redis entries the BFF wrote (scenario b's
baseline).

    BENCH_PROVIDERS=http://127.0.0.1:8901 REDIS_URL=… uvicorn --factory bench.baseline:app --port 8903
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import orjson
from jwt import PyJWKSet
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bff.app import tune_gc
from bff.domain.access import seen
from bff.domain.ids import Ids
from bff.domain.models import Appointment, PersonRecord
from bff.domain.rules import ALL_KINDS, TimeFilter, applies_to, applies_to_everyone, sort_key
from bff.domain.sources import SourceConfig, load_sources
from bff.domain.timez import today
from bff.readpath.codec import load_entry, load_person
from bff.readpath.gateway import fetch_window
from bff.runtime.metrics import Metrics
from bff.settings import DEV_ISSUER, Settings
from bff.store.cache import AppointmentCache
from bff.web.auth import KeySet, TokenError, TokenVerifier, bearer_token, dev_jwks, load_dev_key
from connectors.base import FetchResult
from connectors.fhir.connector import FhirConnector
from connectors.http import ProviderClient
from connectors.municipal import MunicipalConnector
from connectors.persons import HttpPersonDirectory

PAGE = 50


def node(ids: Ids, source: SourceConfig, a: Appointment) -> dict[str, Any]:
    location = {"name": a.location_name, "address": a.location_address} \
        if a.location_name or a.location_address else None
    return {"id": ids.encode("A", source.id, a.upstream_id, ids.pseudonym(a.patient_pid)), "title": a.title,
            "status": a.status.value, "start": a.start.isoformat(), "end": a.end.isoformat() if a.end else None,
            "kind": a.kind.value, "organization": a.organization, "department": a.department, "location": location,
            "source": {"id": source.id, "name": source.name}}


def answer(ids: Ids, rows: list[tuple[SourceConfig, Appointment]]) -> Response:
    rows.sort(key=lambda r: sort_key(r[1]))
    body = {"data": {"appointments": {"totalCount": len(rows), "nodes": [node(ids, s, a) for s, a in rows[:PAGE]]}}}
    return Response(orjson.dumps(body), media_type="application/json")


def visible(source: SourceConfig, appts: tuple[Appointment, ...],
            person: PersonRecord | None) -> list[tuple[SourceConfig, Appointment]]:
    """The BFF's own access policy for the person themself, the default window."""
    return [(source, a) for a in seen(source, appts, ALL_KINDS, person, TimeFilter(), today())]


def app() -> Starlette:
    settings = Settings()
    catalogue = load_sources(settings.sources, {"SANDBOX_URL": os.environ["BENCH_PROVIDERS"]})
    ids = Ids(settings.secret_for_ids)
    keys = KeySet(PyJWKSet.from_dict(dev_jwks(load_dev_key(settings.dev_key_file))))
    verifier = TokenVerifier(keys, DEV_ISSUER, settings.oidc_audience)
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        tune_gc()  # the same collector settings as the BFF's process: a like-for-like runtime
        async with ProviderClient(timeout=5, connections=200) as client:
            redis = Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
            state.update(client=client, redis=redis,
                         cache=AppointmentCache(redis, settings.redis_prefix, ids, Metrics()),
                         directory=HttpPersonDirectory(catalogue.directory.url, client),
                         connectors={s.id: FhirConnector(s.id, s.base_url, client) if s.protocol == "fhir"
                                     else MunicipalConnector(s.id, s.base_url, client, "Oslo kommune")
                                     for s in catalogue.sources})
            yield
            await redis.aclose()

    async def viewer(request: Request) -> str | None:
        try:
            return (await verifier.verify(bearer_token(request.headers.get("authorization")))).pid
        except TokenError:
            return None

    async def listing(request: Request) -> Response:
        pid = await viewer(request)
        if pid is None:
            return Response(status_code=401)
        def ask(source: SourceConfig) -> Awaitable[FetchResult]:
            return asyncio.ensure_future(state["connectors"][source.id].fetch([pid], fetch_window(source, False, day)))

        day = today()
        # The hospitals apply to everyone: asked beside the directory, as the BFF asks them.
        everyone = [s for s in catalogue.sources if applies_to_everyone(s)]
        early = [ask(s) for s in everyone]
        person = await state["directory"].get(pid)
        chosen = everyone + [s for s in catalogue.sources if not applies_to_everyone(s) and applies_to(s, person)]
        results = await asyncio.gather(*early, *(ask(s) for s in chosen[len(everyone):]))
        rows = [r for s, result in zip(chosen, results, strict=True)
                for r in visible(s, result.by_patient.get(pid, ()), person)]
        return answer(ids, rows)

    async def listing_cached(request: Request) -> Response:
        pid = await viewer(request)
        if pid is None:
            return Response(status_code=401)
        cache: AppointmentCache = state["cache"]
        person_raw = (await cache.get_many([cache.person_key(pid)]))[0]
        person: PersonRecord | None = load_person(person_raw, pid)[0] if person_raw else None
        chosen = [s for s in catalogue.sources if applies_to(s, person)]
        raws = await cache.get_many([cache.key(s.id, "future", today(), pid) for s in chosen])
        rows = [r for s, raw in zip(chosen, raws, strict=True) if raw
                for r in visible(s, load_entry(raw, pid)[0], person)]
        return answer(ids, rows)

    return Starlette(routes=[Route("/list", listing, methods=["POST"]),
                             Route("/list-cached", listing_cached, methods=["POST"])], lifespan=lifespan)
