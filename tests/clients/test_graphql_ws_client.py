"""The npm graphql-ws client (Node, ws) against the running server: connect with a token
in connectionParams, subscribe, receive an outcome, complete cleanly."""

from __future__ import annotations

import asyncio
import json

from tests.clients.node import NODE_DIR, require_node
from tests.conftest import Bff
from tests.resolvers.test_cancellation import bergen_visit, cancel


async def _line(stream: asyncio.StreamReader) -> dict:
    raw = await asyncio.wait_for(stream.readline(), 15)
    assert raw, "the client ended early"
    return dict(json.loads(raw))


async def test_graphql_ws_client_receives_an_outcome_and_completes(bff: Bff) -> None:
    node = require_node()
    visit = await bergen_visit(bff)
    process = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "subscribe.mjs"), bff.url.replace("http", "ws") + "/graphql", bff.token("asane"), "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=NODE_DIR)
    assert process.stdout is not None
    try:
        assert (await _line(process.stdout))["event"] == "connected"
        await asyncio.sleep(0.3)
        await cancel(bff, visit["id"])
        event = await _line(process.stdout)
        assert event["event"] == "next"
        update = event["value"]["data"]["cancellationUpdates"]
        assert update["request"]["status"] == "ACCEPTED"
        assert update["request"]["appointment"]["status"] == "CANCELLED"
        assert (await _line(process.stdout))["event"] == "complete"
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
