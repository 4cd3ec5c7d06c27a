"""Logs as operators read them: one JSON object per line, always; a client's mistake is
an INFO line with its code, never an ERROR with a traceback."""

from __future__ import annotations

import json

import httpx

from tests.clients.asgi_process import bff_asgi
from tests.conftest import Bff, Sandbox, redis_url_for_tests

MISTAKES = [
    {"query": "{ appointments { nodes { id } "},                      # syntax
    {"query": "{ appointmnts { totalCount } }"},                       # validation
    {"query": "{ appointments(first: 1000) { totalCount } }"},         # BAD_USER_INPUT
    {"query": '{ appointments(onBehalfOf: "nobody") { totalCount } }'},  # NOT_FOUND
    {"query": '{ appointments(filter: {from: "9999-12-31T23:59:59-12:00"}) { totalCount } }'},
    {"query": "subscription { cancellationUpdates { cursor } }"},      # over HTTP
]


async def test_every_line_is_json_and_no_client_mistake_is_logged_above_info(bff: Bff, sandbox: Sandbox) -> None:
    env = {"REDIS_URL": redis_url_for_tests(), "BFF_SANDBOX_URL": sandbox.url, "BFF_DEV_KEY_FILE": str(bff.key_file),
           "BFF_REDIS_PREFIX": f"{bff.settings.redis_prefix}-logs"}
    kari = {"Authorization": f"Bearer {bff.token('asane')}"}
    async with bff_asgi(env) as running, httpx.AsyncClient(timeout=10) as http:
        for body in MISTAKES:
            await http.post(f"{running.url}/graphql", json=body, headers=kari)
        await http.post(f"{running.url}/graphql", json={"query": "{ me { name } }"},
                        headers={"Authorization": "Bearer not-a-token"})
        await http.get(f"{running.url}/nowhere")
    lines = [line for line in running.output.splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not_json == [], not_json
    events = [json.loads(line) for line in lines]
    client = [e for e in events if e.get("event") == "graphql.client_error"]
    assert len(client) >= len(MISTAKES) - 1, lines  # the subscription over HTTP is a 405 before execution
    assert all(e["level"] == "info" and e["code"] for e in client)
    assert not [e for e in events if e.get("level") in ("error", "critical")], lines
    assert not any("Traceback" in line for line in lines)
