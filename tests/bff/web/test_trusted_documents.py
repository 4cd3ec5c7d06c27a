"""Trusted documents: the manifest matches the operation files, every document is valid,
production runs only manifest documents (POST, GET and WebSocket), the sandbox runs any."""

from __future__ import annotations

import json
from typing import Any

from graphql import parse, validate

from bff.domain.ids import document_hash
from bff.web.trusted import build_manifest, default_manifest_path, operations_dir, render_manifest
from resolvers.schema import build_schema
from tests.bff.web.test_limits import production  # noqa: F401  (fixture)
from tests.conftest import Bff
from tests.ws_client import GraphQLWebSocket

MANIFEST = json.loads(default_manifest_path().read_text("utf-8"))
SOURCES_ID = next(k for k, v in MANIFEST.items() if "query Sources" in v)
UPDATES_ID = next(k for k, v in MANIFEST.items() if "subscription CancellationUpdates" in v)


def test_the_committed_manifest_matches_the_operation_files() -> None:
    assert default_manifest_path().read_text("utf-8") == render_manifest(build_manifest(operations_dir())), (
        "bff/trusted/manifest.json is out of date: run `bff manifest`")


def test_every_trusted_document_is_valid_against_the_schema() -> None:
    schema = build_schema()._schema
    for text in MANIFEST.values():
        assert validate(schema, parse(text)) == [], text[:60]
    assert len(MANIFEST) == len(list(operations_dir().glob("*.graphql"))) == 11


async def test_production_runs_documents_by_id_over_post_and_get(production: Bff) -> None:  # noqa: F811
    headers = {"Authorization": f"Bearer {production.token('asane')}"}
    for body in ({"documentId": f"sha256:{SOURCES_ID}"},
                 {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": SOURCES_ID}}}):
        response = await production.http.post(f"{production.url}/graphql", json=body, headers=headers)
        assert response.status_code == 200 and len(response.json()["data"]["sources"]) == 6
    cached = await production.http.get(f"{production.url}/graphql", params={"documentId": f"sha256:{SOURCES_ID}"},
                                       headers=headers)
    assert cached.status_code == 200 and cached.json()["data"]["sources"]


async def test_production_refuses_other_documents_clearly(production: Bff) -> None:  # noqa: F811
    headers = {"Authorization": f"Bearer {production.token('asane')}"}
    raw = await production.http.post(f"{production.url}/graphql", json={"query": "{ sources { id } }"},
                                     headers=headers)
    assert raw.status_code == 400 and "trusted documents" in raw.json()["errors"][0]["message"]
    unknown = await production.http.post(f"{production.url}/graphql", json={"documentId": "sha256:" + "0" * 64},
                                         headers=headers)
    assert unknown.status_code == 400 and "documentId" in unknown.json()["errors"][0]["message"]
    exact = MANIFEST[SOURCES_ID]
    assert (await production.http.post(f"{production.url}/graphql", json={"query": exact}, headers=headers)
            ).status_code == 200


async def test_production_subscriptions_too_are_trusted_documents_only(production: Bff) -> None:  # noqa: F811
    ws = GraphQLWebSocket(production.url)
    assert (await ws.connect({"Authorization": f"Bearer {production.token('asane')}"}))["type"] == "connection_ack"
    await ws.subscribe("1", "subscription { cancellationUpdates { cursor } }")
    refused: Any = None
    try:
        refused = await ws.receive(timeout=5)
    except Exception as exc:  # the server may close the socket instead of answering
        refused = {"closed": str(exc)}
    finally:
        await ws.close()
    assert refused.get("type") != "next"


async def test_the_sandbox_runs_any_query_and_resolves_ids_too(bff: Bff) -> None:
    assert (await bff.query("{ sources { id } }"))["sources"]
    response = await bff.http.post(f"{bff.url}/graphql", json={"documentId": f"sha256:{SOURCES_ID}"},
                                   headers={"Authorization": f"Bearer {bff.token('asane')}"})
    assert response.json()["data"]["sources"]
    assert document_hash(MANIFEST[UPDATES_ID]) == UPDATES_ID
