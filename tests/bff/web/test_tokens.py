"""Access-token validation against an external JWKS (RFC 9068 / RFC 8725 rules)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bff.web.serving import start_server
from tests.conftest import PEOPLE, Bff
from tests.ws_client import GraphQLWebSocket

ISSUER = "https://idporten.test"
AUDIENCE = "timeavtaler-bff"
ME = "{ me { name } }"


class Idp:
    """A test identity provider: signing keys and a JWKS endpoint that counts fetches."""

    def __init__(self) -> None:
        self.keys = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        self.published = ["k1"]
        self.fetches = 0
        self.url = ""

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, *, kid: str = "k1", typ: str = "at+jwt", alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"pid": PEOPLE["asane"].pid, "acr": "idporten-loa-high", "iss": ISSUER, "aud": AUDIENCE,
                "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.keys[kid], algorithm=alg, headers={"kid": kid, "typ": typ})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
async def idp() -> AsyncIterator[Idp]:
    provider = Idp()

    async def jwks(request: Request) -> JSONResponse:
        provider.fetches += 1
        return JSONResponse(provider.jwks())

    running = await start_server(Starlette(routes=[Route("/jwks", jwks)]))
    provider.url = f"{running.url}/jwks"
    yield provider
    await running.stop()


@pytest.fixture
async def guarded(idp: Idp, make_bff: Any) -> Bff:
    return await make_bff(oidc_jwks_url=idp.url, oidc_issuer=ISSUER, oidc_audience=AUDIENCE)  # type: ignore[no-any-return]


async def ask(bff: Bff, token: str) -> Any:
    return await bff.http.post(f"{bff.url}/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"})


async def test_a_valid_access_token_is_accepted(guarded: Bff, idp: Idp) -> None:
    response = await ask(guarded, idp.token())
    assert response.status_code == 200 and response.json()["data"]["me"]["name"] == "Kari Nordmann"
    legacy = await ask(guarded, idp.token(acr="Level4", typ="JWT"))
    assert legacy.status_code == 200


async def test_a_token_accepted_once_vouches_for_itself_only(guarded: Bff, idp: Idp) -> None:
    token = idp.token()
    assert (await ask(guarded, token)).status_code == 200
    header, payload, signature = token.split(".")
    altered = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    other_claims = idp.token(acr="idporten-loa-substantial")
    for response in [await ask(guarded, f"{header}.{payload}.{altered}"), await ask(guarded, other_claims)]:
        assert response.status_code in (401, 403)
    assert (await ask(guarded, token)).status_code == 200


def _forge(idp: Idp, case: str) -> str:
    if case == "bad-signature":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode({"pid": PEOPLE["asane"].pid, "acr": "idporten-loa-high", "iss": ISSUER, "aud": AUDIENCE,
                           "iat": int(time.time()), "exp": int(time.time()) + 300}, other, algorithm="RS256",
                          headers={"kid": "k1", "typ": "at+jwt"})
    claims = {"pid": PEOPLE["asane"].pid, "acr": "idporten-loa-high", "iss": ISSUER, "aud": AUDIENCE,
              "iat": int(time.time()), "exp": int(time.time()) + 300}
    payload = _b64(json.dumps(claims).encode())
    if case == "not-a-jwt":
        return "not-a-jwt"
    if case == "header-not-json":
        return f"{_b64(b'nope')}.{payload}.{idp.token().rsplit('.', 1)[1]}"
    if case == "header-not-an-object":
        return f"{_b64(b'[1]')}.{payload}.{idp.token().rsplit('.', 1)[1]}"
    if case == "junk-in-header":  # a header that reads (base64 skips junk) but is not base64url
        return "!!" + idp.token()
    if case == "alg-none":
        return f"{_b64(json.dumps({'alg': 'none', 'kid': 'k1'}).encode())}.{payload}."
    if case == "hmac-with-public-key":
        header = _b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}).encode())
        public = idp.keys["k1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        signature = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"
    tokens = {
        "wrong-issuer": lambda: idp.token(iss="https://evil.test"),
        "wrong-audience": lambda: idp.token(aud="someone-else"),
        "expired": lambda: idp.token(exp=int(time.time()) - 120, iat=int(time.time()) - 600),
        "not-yet-valid": lambda: idp.token(nbf=int(time.time()) + 600),
        "issued-in-the-future": lambda: idp.token(iat=int(time.time()) + 600),
        "id-token": lambda: idp.token(typ="JWT", nonce="abc"),
        "wrong-typ": lambda: idp.token(typ="application/jwt+secevent"),
        "no-pid": lambda: idp.token(pid=None),
        "bad-pid": lambda: idp.token(pid="12345"),
        "no-exp": lambda: idp.token(exp=None),
    }
    return tokens[case]()


@pytest.mark.parametrize("case", ["not-a-jwt", "header-not-json", "header-not-an-object", "junk-in-header",
                                  "bad-signature", "alg-none", "hmac-with-public-key", "wrong-issuer",
                                  "wrong-audience", "expired", "not-yet-valid", "issued-in-the-future", "id-token",
                                  "wrong-typ", "no-pid", "bad-pid", "no-exp"])
async def test_bad_tokens_are_401_with_invalid_token(guarded: Bff, idp: Idp, case: str) -> None:
    response = await ask(guarded, _forge(idp, case))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "data" not in response.json()


async def test_low_assurance_is_403(guarded: Bff, idp: Idp) -> None:
    response = await ask(guarded, idp.token(acr="idporten-loa-substantial"))
    assert response.status_code == 403
    assert 'error="insufficient_user_authentication"' in response.headers["www-authenticate"]
    assert "høyt sikkerhetsnivå" in response.json()["errors"][0]["message"]
    assert "idporten-loa-high" in response.json()["errors"][0]["extensions"]["reason"]


async def test_an_unknown_kid_triggers_one_rate_limited_refetch_and_rotation_works(guarded: Bff, idp: Idp) -> None:
    assert (await ask(guarded, idp.token())).status_code == 200
    fetched = idp.fetches
    idp.keys["k2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    idp.published = ["k1", "k2"]
    assert (await ask(guarded, idp.token(kid="k2"))).status_code == 200  # rotated in: one refetch
    assert idp.fetches == fetched + 1
    idp.keys["k3"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for _ in range(3):  # unknown kid again within the minute: refused without hammering the IdP
        assert (await ask(guarded, idp.token(kid="k3"))).status_code == 401
    assert idp.fetches == fetched + 1


async def test_typ_at_jwt_can_be_required(make_bff: Any, idp: Idp) -> None:
    strict = await make_bff(oidc_jwks_url=idp.url, oidc_issuer=ISSUER, oidc_require_at_jwt=True)
    assert (await ask(strict, idp.token(typ="JWT"))).status_code == 401
    assert (await ask(strict, idp.token())).status_code == 200


@pytest.mark.parametrize("params", [{}, {"Authorization": "Bearer nope"}, {"token": 42}, {"authorization": "Basic x"}])
async def test_websocket_connection_init_follows_the_same_rules(guarded: Bff, idp: Idp, params: dict) -> None:
    from websockets.exceptions import ConnectionClosed

    ws = GraphQLWebSocket(guarded.url)
    with pytest.raises(ConnectionClosed) as closed:
        await ws.connect(params)
        await ws.receive(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    good = GraphQLWebSocket(guarded.url)
    assert (await good.connect({"Authorization": f"Bearer {idp.token()}"}))["type"] == "connection_ack"
    await good.close()
    low = GraphQLWebSocket(guarded.url)
    with pytest.raises(ConnectionClosed):
        await low.connect({"Authorization": f"Bearer {idp.token(acr='idporten-loa-substantial')}"})
        await low.receive(timeout=5)
