"""A small GraphQL-over-WebSocket client for tests: graphql-transport-ws (current) or
graphql-ws (legacy subscriptions-transport-ws), spoken over a real socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class GraphQLWebSocket:
    """One connection; `subscribe` starts an operation, `next` waits for its next result."""

    def __init__(self, url: str, protocol: str = TRANSPORT_WS) -> None:
        self.url = url.replace("http://", "ws://") + "/graphql"
        self.protocol = protocol
        self.ws: ClientConnection | None = None

    async def connect(self, params: dict[str, Any]) -> dict[str, Any]:
        """Open the socket and send connection_init; returns the server's reply (ack or close)."""
        self.ws = await connect(self.url, subprotocols=[self.protocol])  # type: ignore[list-item]
        await self.ws.send(json.dumps({"type": "connection_init", "payload": params}))
        return await self.receive()

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") not in ("ka", "ping", "pong"):
                return message

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        assert self.ws is not None
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.ws.send(json.dumps({"id": op_id, "type": kind,
                                       "payload": {"query": query, "variables": variables or {}}}))

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next `next`/`data` payload (raises on an error message)."""
        message = await self.receive(timeout)
        if message["type"] in ("next", "data"):
            payload: dict[str, Any] = message["payload"]
            return payload
        raise AssertionError(f"expected a result, got {message}")

    async def complete(self, op_id: str) -> None:
        assert self.ws is not None
        kind = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.ws.send(json.dumps({"id": op_id, "type": kind}))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
