"""Provider calls never carry cookies: one client serves every citizen, so a cookie a
provider sets while answering for one person must not go out with the next one's request."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bff.web.serving import start_server
from connectors.base import SourceUnavailable
from connectors.http import ProviderClient, send
from tests.redis_process import free_port


async def answer(request: Request) -> JSONResponse:
    """Echo the Cookie header, and set a session cookie as some gateways do."""
    response = JSONResponse({"cookie": request.headers.get("cookie")})
    response.set_cookie("session", f"for-{request.query_params['person']}", path="/")
    return response


async def test_a_cookie_set_for_one_person_is_not_sent_for_the_next() -> None:
    server = await start_server(Starlette(routes=[Route("/Appointment", answer)]))
    try:
        url = server.url.replace("127.0.0.1", "localhost")  # a host name: cookie jars refuse IP addresses
        async with httpx.AsyncClient() as plain, ProviderClient() as provider:
            for client, kept in ((plain, True), (provider, False)):
                first = await client.get(f"{url}/Appointment", params={"person": "a"})
                assert first.headers["set-cookie"].startswith("session=for-a")
                second = await client.get(f"{url}/Appointment", params={"person": "b"})
                # The plain client shows what is at stake; the provider client keeps nothing.
                assert (second.json()["cookie"] == "session=for-a") is kept
    finally:
        await server.stop()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then close the connection without an answer."""
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then wait (answering nothing) until the caller gives up."""
    await reader.readuntil(b"\r\n\r\n")
    await reader.read()
    writer.close()


async def failure(server: Any, timeout: float = 5.0) -> SourceUnavailable:
    port = server.sockets[0].getsockname()[1] if server else free_port()
    async with ProviderClient(timeout=timeout) as client:
        with pytest.raises(SourceUnavailable) as raised:
            await send("helse-vest", client, client.build_request("GET", f"http://127.0.0.1:{port}/Appointment"))
    return raised.value


@pytest.mark.parametrize(("handler", "timeout", "kind"), [
    (hang_up, 5.0, "transport"),
    (say_nothing, 0.2, "timeout"),
    (None, 5.0, "transport"),
], ids=["hung-up", "no-answer-in-time", "connection-refused"])
async def test_failures_are_told_apart_for_the_metrics(handler: Any, timeout: float, kind: str) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0) if handler else None
    try:
        error = await failure(server, timeout)
    finally:
        if server:
            server.close()
    assert error.kind == kind, error.reason


async def test_a_proxy_in_the_environment_is_used_except_for_the_hosts_no_proxy_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.readline())
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{"via": "proxy"}\n')
        await writer.drain()
        writer.close()

    relay = await asyncio.start_server(proxy, "127.0.0.1", 0)
    direct = await start_server(Starlette(routes=[Route("/Appointment", answer)]))
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{relay.sockets[0].getsockname()[1]}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")
    try:
        async with ProviderClient(timeout=2) as client:
            through = await client.get("http://provider.test/fhir/Appointment?patient=x")
            assert through.json() == {"via": "proxy"}
            assert asked == [b"GET http://provider.test/fhir/Appointment?patient=x HTTP/1.1\r\n"]
            around = await client.get(f"{direct.url}/Appointment", params={"person": "a"})
            assert around.json() == {"cookie": None} and len(asked) == 1
    finally:
        relay.close()
        await direct.stop()
