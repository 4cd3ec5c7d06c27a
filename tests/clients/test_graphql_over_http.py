"""GraphQL-over-HTTP compliance: the graphql-http audit suite against the running server,
and the media types and status codes a spec-following client relies on."""

from __future__ import annotations

import asyncio
import json

from tests.clients.node import NODE_DIR, require_node
from tests.conftest import Bff

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def test_graphql_http_server_audits_report_no_errors_and_no_warnings(bff: Bff) -> None:
    node = require_node()
    process = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "audit.mjs"), f"{bff.url}/graphql", bff.token("nobody"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=NODE_DIR)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-2000:]
    results = json.loads(out)
    assert len(results) > 50
    failing = [f"{r['status']}: {r['name']} ({r['reason']})" for r in results if r["status"] != "ok"]
    assert failing == []


async def test_request_errors_are_400_without_data_under_the_new_media_type(bff: Bff) -> None:
    headers = {"Accept": GRAPHQL_RESPONSE}
    invalid = await bff.post("{ nothingHere }", headers=headers)
    assert invalid.status_code == 400
    assert invalid.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "data" not in invalid.json() and invalid.json()["errors"]
    legacy = await bff.post("{ nothingHere }")
    assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("application/json")
    ok = await bff.post("{ sources { id } }", headers=headers)
    assert ok.status_code == 200 and ok.json()["data"]["sources"]


async def test_an_execution_error_keeps_200_and_data(bff: Bff) -> None:
    response = await bff.post("{ sources { id } appointments(first: 500) { totalCount } }",
                              headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 200
    assert response.json()["data"] is None and response.json()["errors"][0]["path"] == ["appointments"]


async def test_a_mutation_over_get_is_405(bff: Bff) -> None:
    mutation = 'mutation { requestCancellation(input: {appointmentId: "x", idempotencyKey: "k"}) { errors { code } } }'
    response = await bff.http.get(f"{bff.url}/graphql", params={"query": mutation},
                                  headers={"Authorization": f"Bearer {bff.token('asane')}"})
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    query = await bff.http.get(f"{bff.url}/graphql", params={"query": "{ sources { id } }"},
                               headers={"Authorization": f"Bearer {bff.token('asane')}"})
    assert query.status_code == 200
