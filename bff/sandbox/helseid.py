"""A HelseID-like token server for the sandbox, and the check its providers make of
every call: a DPoP-bound access token and a valid proof, or `401`.

The token server knows its registered clients by their public JWKs. It takes the
client-credentials grant with a `private_key_jwt` client assertion (signature, `iss` =
`sub` = client id, `aud` = its issuer or token endpoint, at most 60 s long, a `jti` never
seen before) and a DPoP proof, and issues a JWT access token bound to the proof's key
(`cnf.jkt`). A provider then wants `Authorization: DPoP <token>` with the scope of its
API and a `DPoP` proof signed by that key, for this method and URL (`htm`, `htu`), made
within a minute (`iat`), never used before (`jti`), and naming the token (`ath`).

The admin API (`/_admin/helseid`) sets the token lifetime, asks for DPoP nonces, revokes
the tokens issued so far, or treats the next proofs as replayed, and reports what was
issued and refused — so tests can drive expiry, nonce challenges and replay."""

from __future__ import annotations

import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bff.domain.wire import CLIENT_ASSERTION_TYPE, jwk_thumbprint, public_jwk, token_hash

SANDBOX_CLIENT_ID = "timeavtaler-bff-sandbox"
ASSERTION_MAX_LIFETIME = 60
PROOF_WINDOW = 60
"""Seconds a DPoP proof's `iat` may be from the server's clock."""
TOKEN_TTL = 300
ALGORITHMS = ["RS256", "PS256", "ES256"]
API_SCOPES = {
    "fhir": "sandbox:fhir/appointments",
    "kommune": "sandbox:kommune/hjemmetjenester",
    "persons": "sandbox:folkeregister/person",
    "varsel": "sandbox:varsel/send",
}
"""The scope each sandbox API wants, by its path's first segment."""
TOKEN_PATH = "/helseid/connect/token"


class Refused(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass
class TokenServer:
    """The sandbox's HelseID: registered clients, the keys it signs tokens with, and the
    knobs the admin API turns."""

    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Client id → its public JWK."""
    signing_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    token_ttl: int = TOKEN_TTL
    require_nonce: bool = False
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    issued_ids: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)
    """`jti`s of the access tokens revoked (the admin API revokes every one issued so far)."""
    replay_next: int = 0
    """The next this-many proofs a provider gets are answered as replayed."""
    seen: dict[str, float] = field(default_factory=dict)
    """`jti`s of assertions and proofs already used, with when they may be forgotten."""
    issued: Counter[str] = field(default_factory=Counter)
    """Tokens issued, by `client_id scope`."""
    refused: Counter[str] = field(default_factory=Counter)
    """Token requests and provider calls refused, by error code."""

    def register(self, client_id: str, jwk: Mapping[str, Any]) -> None:
        """Know a client by its public key (private members are dropped)."""
        self.clients[client_id] = public_jwk(jwk)

    def reset(self) -> None:
        """Default knobs and counters; registered clients stay."""
        self.token_ttl, self.require_nonce, self.replay_next = TOKEN_TTL, False, 0
        self.revoked.clear()
        self.issued.clear()
        self.refused.clear()

    def _once(self, jti: Any, until: float) -> None:
        now = time.time()
        if len(self.seen) > 10_000:
            self.seen = {k: v for k, v in self.seen.items() if v > now}
        if not isinstance(jti, str) or not jti:
            raise Refused("invalid_request", "jti is required")
        if jti in self.seen:
            raise Refused("replayed", "jti was used before")
        self.seen[jti] = until

    def check_proof(self, proof: str | None, method: str, url: str, token: str | None) -> str:
        """The proof's key thumbprint, when the proof is good for this request."""
        if not proof:
            raise Refused("invalid_dpop_proof", "DPoP proof required")
        try:
            header = jwt.get_unverified_header(proof)
            jwk = header.get("jwk")
            if header.get("typ") != "dpop+jwt" or not isinstance(jwk, dict) or "d" in jwk:
                raise Refused("invalid_dpop_proof", "typ must be dpop+jwt with a public jwk")
            key = jwt.PyJWK(jwk, header.get("alg")).key
            claims = jwt.decode(proof, key, algorithms=ALGORITHMS, options={"verify_aud": False})
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Refused("invalid_dpop_proof", f"proof does not verify ({type(exc).__name__})") from None
        now = time.time()
        if claims.get("htm") != method or claims.get("htu") != url:
            raise Refused("invalid_dpop_proof", "htm/htu do not name this request")
        if not isinstance(claims.get("iat"), int) or abs(now - claims["iat"]) > PROOF_WINDOW:
            raise Refused("invalid_dpop_proof", "iat is outside the accepted window")
        if token is not None and claims.get("ath") != token_hash(token):
            raise Refused("invalid_dpop_proof", "ath does not match the access token")
        if self.require_nonce and claims.get("nonce") != self.nonce:
            raise Refused("use_dpop_nonce", "a DPoP nonce is required")
        try:
            self._once(claims.get("jti"), now + 2 * PROOF_WINDOW)
        except Refused as exc:
            raise Refused("invalid_dpop_proof", f"proof {exc.description}") from None
        return jwk_thumbprint(jwk)

    def issue(self, form: Mapping[str, str], issuer: str, token_url: str, proof: str | None) -> dict[str, Any]:
        """The token endpoint's answer to a client-credentials request."""
        if form.get("grant_type") != "client_credentials":
            raise Refused("unsupported_grant_type", "only client_credentials")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not form.get("client_assertion"):
            raise Refused("invalid_client", "a private_key_jwt client assertion is required")
        client_id = self._client(form["client_assertion"], issuer, token_url)
        scopes = form.get("scope", "").split()
        if not scopes or not set(scopes) <= set(API_SCOPES.values()):
            raise Refused("invalid_scope", "unknown scope")
        claims: dict[str, Any] = {}
        if proof is not None:
            claims["cnf"] = {"jkt": self.check_proof(proof, "POST", token_url, None)}
        now = int(time.time())
        scope = " ".join(sorted(scopes))
        claims.update({"iss": issuer, "sub": client_id, "client_id": client_id, "scope": scope, "iat": now,
                       "exp": now + self.token_ttl, "jti": uuid.uuid4().hex})
        self.issued_ids.add(claims["jti"])
        token = jwt.encode(claims, self.signing_key, algorithm="ES256", headers={"typ": "at+jwt"})
        self.issued[f"{client_id} {scope}"] += 1
        return {"access_token": token, "token_type": "DPoP" if proof else "Bearer", "expires_in": self.token_ttl,
                "scope": scope}

    def _client(self, assertion: str, issuer: str, token_url: str) -> str:
        try:
            client_id = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            public = self.clients.get(str(client_id))
            if public is None:
                raise Refused("invalid_client", "unknown client")
            claims = jwt.decode(assertion, jwt.PyJWK(public).key, algorithms=ALGORITHMS, audience=[issuer, token_url],
                                issuer=client_id, options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
        except jwt.PyJWTError as exc:
            raise Refused("invalid_client", f"client assertion does not verify ({type(exc).__name__})") from None
        if claims["sub"] != client_id or claims["exp"] - claims["iat"] > ASSERTION_MAX_LIFETIME:
            raise Refused("invalid_client", "sub must be the client id; the assertion may live 60 s at most")
        try:
            self._once(claims["jti"], claims["exp"] + 60)
        except Refused:
            raise Refused("invalid_client", "client assertion jti was used before") from None
        return str(client_id)

    def check_call(self, authorization: str, proof: str | None, method: str, url: str, scope: str) -> None:
        """A provider's check of one call: the token, its scope, the proof and its binding."""
        scheme, _, token = authorization.partition(" ")
        if scheme != "DPoP" or not token:
            raise Refused("invalid_token", "a DPoP-bound access token is required")
        try:
            claims = jwt.decode(token, self.signing_key.public_key(), algorithms=["ES256"],
                                options={"verify_aud": False, "require": ["exp", "iat", "cnf"]})
        except jwt.PyJWTError as exc:
            raise Refused("invalid_token", f"access token is not valid ({type(exc).__name__})") from None
        if claims.get("jti") in self.revoked:
            raise Refused("invalid_token", "access token was revoked")
        if scope not in str(claims.get("scope", "")).split():
            raise Refused("insufficient_scope", f"{scope} is required")
        if self.replay_next > 0:
            self.replay_next -= 1
            raise Refused("invalid_dpop_proof", "proof jti was used before")
        if self.check_proof(proof, method, url, token) != claims["cnf"].get("jkt"):
            raise Refused("invalid_dpop_proof", "the proof's key is not the one the token is bound to")


def token_endpoint(server: TokenServer) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        issuer = str(request.base_url).rstrip("/") + "/helseid"
        try:
            form = dict(parse_qsl((await request.body()).decode()))
            answer = server.issue(form, issuer, issuer + "/connect/token", request.headers.get("dpop"))
        except Refused as exc:
            server.refused[exc.error] += 1
            headers = {"DPoP-Nonce": server.nonce} if exc.error == "use_dpop_nonce" else {}
            status = 401 if exc.error == "invalid_client" else 400
            return JSONResponse({"error": exc.error, "error_description": exc.description}, status, headers)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    return endpoint


def helseid_routes(server: TokenServer) -> list[Route]:
    async def configure(request: Request) -> Response:
        body = await request.json()
        if "token_ttl" in body:
            server.token_ttl = int(body["token_ttl"])
        if "require_nonce" in body:
            server.require_nonce = bool(body["require_nonce"])
            server.nonce = secrets.token_urlsafe(16)
        if "replay_next" in body:
            server.replay_next = int(body["replay_next"])
        if body.get("revoke"):
            server.revoked |= server.issued_ids
        return JSONResponse({"ok": True})

    async def report(request: Request) -> Response:
        return JSONResponse({"issued": dict(server.issued), "refused": dict(server.refused)})

    async def discovery(request: Request) -> Response:
        issuer = str(request.base_url).rstrip("/") + "/helseid"
        return JSONResponse({"issuer": issuer, "token_endpoint": issuer + "/connect/token",
                             "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                             "dpop_signing_alg_values_supported": ALGORITHMS})

    return [
        Route(TOKEN_PATH, token_endpoint(server), methods=["POST"]),
        Route("/helseid/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/_admin/helseid", configure, methods=["PUT"]),
        Route("/_admin/helseid", report, methods=["GET"]),
    ]


class DPoPGuard:
    """The sandbox providers' gate: each API's calls need the server's DPoP-bound token
    with that API's scope and a good proof, or get `401` with a `WWW-Authenticate: DPoP`
    challenge (`invalid_token`, `invalid_dpop_proof`, `use_dpop_nonce` with a
    `DPoP-Nonce`). Paths outside the APIs (admin, the token server) pass."""

    def __init__(self, app: ASGIApp, server: TokenServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = scope.get("path", "").split("/")[1:2]
        wanted = API_SCOPES.get(api[0]) if scope["type"] == "http" and api else None
        if wanted is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        url = f"{scope['scheme']}://{headers.get('host', '')}{scope['path']}"
        try:
            self.server.check_call(headers.get("authorization", ""), headers.get("dpop"), scope["method"], url,
                                   wanted)
        except Refused as exc:
            self.server.refused[exc.error] += 1
            await _challenge(send, exc, self.server.nonce)
            return
        await self.app(scope, receive, send)


async def _challenge(send: Send, refused: Refused, nonce: str) -> None:
    status = 403 if refused.error == "insufficient_scope" else 401
    error = "invalid_dpop_proof" if refused.error == "replayed" else refused.error
    headers = [(b"content-type", b"application/json"),
               (b"www-authenticate", f'DPoP error="{error}", algs="{" ".join(ALGORITHMS)}"'.encode())]
    if error == "use_dpop_nonce":
        headers.append((b"dpop-nonce", nonce.encode()))
    body = orjson.dumps({"error": error, "error_description": refused.description})
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
