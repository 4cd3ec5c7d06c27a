"""Logs as operators read them: one JSON object per line, always; a client's mistake is
an INFO line with its code, never an ERROR with a traceback."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx

from bff.settings import DEV_ISSUER
from bff.web.auth import load_dev_key, mint_dev_token
from tests.conftest import PEOPLE, Bff, Sandbox, redis_url_for_tests
from tests.redis_process import free_port

MISTAKES = [
    {"query": "{ appointments { nodes { id } "},                      # syntax
    {"query": "{ appointmnts { totalCount } }"},                       # validation
    {"query": "{ appointments(first: 1000) { totalCount } }"},         # BAD_USER_INPUT
    {"query": '{ appointments(onBehalfOf: "nobody") { totalCount } }'},  # NOT_FOUND
    {"query": '{ appointments(filter: {from: "9999-12-31T23:59:59-12:00"}) { totalCount } }'},
    {"query": "subscription { cancellationUpdates { cursor } }"},      # over HTTP
]


async def test_every_line_is_json_and_no_client_mistake_is_logged_above_info(bff: Bff, sandbox: Sandbox) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url_for_tests(), "BFF_SANDBOX_URL": sandbox.url,
           "BFF_DEV_KEY_FILE": str(bff.key_file), "BFF_REDIS_PREFIX": f"{bff.settings.redis_prefix}-logs"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "--factory", "bff.asgi:app", "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    token = mint_dev_token(load_dev_key(bff.key_file), PEOPLE["asane"].pid, issuer=DEV_ISSUER,
                           audience=bff.settings.oidc_audience, acr="idporten-loa-high")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(100):
                try:
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            for body in MISTAKES:
                await http.post(f"{url}/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
            await http.post(f"{url}/graphql", json={"query": "{ me { name } }"},
                            headers={"Authorization": "Bearer not-a-token"})
            await http.get(f"{url}/nowhere")
    finally:
        process.terminate()
        output, _ = await process.communicate()
    lines = [line for line in output.decode().splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not_json == [], not_json
    events = [json.loads(line) for line in lines]
    client = [e for e in events if e.get("event") == "graphql.client_error"]
    assert len(client) >= len(MISTAKES) - 1, lines  # the subscription over HTTP is a 405 before execution
    assert all(e["level"] == "info" and e["code"] for e in client)
    assert not [e for e in events if e.get("level") in ("error", "critical")], lines
    assert not any("Traceback" in line for line in lines)
