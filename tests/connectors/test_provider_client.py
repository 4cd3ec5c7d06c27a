"""Provider calls never carry cookies: one client serves every citizen, so a cookie a
provider sets while answering for one person must not go out with the next one's request."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bff.serving import start_server
from connectors.base import ProviderClient


async def answer(request: Request) -> JSONResponse:
    """Echo the Cookie header, and set a session cookie as some gateways do."""
    response = JSONResponse({"cookie": request.headers.get("cookie")})
    response.set_cookie("session", f"for-{request.query_params['person']}", path="/")
    return response


async def test_a_cookie_set_for_one_person_is_not_sent_for_the_next() -> None:
    server = await start_server(Starlette(routes=[Route("/Appointment", answer)]))
    try:
        async with httpx.AsyncClient() as plain, ProviderClient() as provider:
            for client, kept in ((plain, True), (provider, False)):
                first = await client.get(f"{server.url}/Appointment", params={"person": "a"})
                assert first.headers["set-cookie"].startswith("session=for-a")
                second = await client.get(f"{server.url}/Appointment", params={"person": "b"})
                # The plain client shows what is at stake; the provider client keeps nothing.
                assert (second.json()["cookie"] == "session=for-a") is kept
                assert bool(client.cookies) is kept
    finally:
        await server.stop()


async def test_cookies_cannot_be_given_to_it() -> None:
    with pytest.raises(ValueError, match="never carry cookies"):
        ProviderClient(cookies={"session": "x"})
    assert not ProviderClient().cookies
