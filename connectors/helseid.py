"""Outbound identity: HelseID machine tokens, bound to the client's key with DPoP.

System-to-system calls in the Norwegian health sector carry an access token from HelseID
(Norsk Helsenett's OAuth 2.0 server). The BFF gets one with the client-credentials grant,
authenticating with a client assertion signed by its own key (`private_key_jwt`,
RFC 7523), and binds it to that key with DPoP (RFC 9449): each request carries
`Authorization: DPoP <token>` and a fresh `DPoP` proof (method, URL, time, a unique id,
and the token's hash) signed with the same key, so a token copied off the wire is
worthless without the key.

A `HelseIdClient` holds one token per (token server, client, scope) for the whole
process, shares it with the other processes through a `TokenStore` (Redis), and renews
it shortly before it expires — once across all processes (`TokenStore.claim`).
`DPoPAuth` is the auth flow each upstream's client sends with: it signs the
request, and answers a `401` once: `use_dpop_nonce` with the server's nonce, an
`invalid_token` with a renewed token, an `invalid_dpop_proof` with a fresh proof.

Tokens, assertions and proofs are never logged or put in an error message: errors name
the upstream, the token server's `error` code and what failed.

JOSE: PyJWT signs and verifies (it is already the inbound token library); what no JOSE
library ships as such — the DPoP proof's claims and the RFC 7638 key thumbprint — is the
few lines below.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard
from urllib.parse import urlsplit

import jwt

from bff.domain.sources import UpstreamAuth
from bff.domain.wire import CLIENT_ASSERTION_TYPE, jwk_thumbprint, public_jwk, token_hash
from connectors.base import SourceUnavailable
from connectors.http import HttpError, ProviderClient, Request, Response

ASSERTION_LIFETIME = 60
"""Seconds a client assertion is valid (HelseID takes at most 60)."""
RENEW_BEFORE = 30.0
"""A token is renewed this many seconds before it expires (at most a tenth of its life)."""
FAILURE_HOLD = 2.0
"""After a failed token request, this process answers its callers with the failure for
this long instead of asking the token server again for each (it is down)."""
REFUSED_HOLD = 30.0
"""The same after the token server refused the client (a wrong key, client or scope: it
will not change until an operator acts, so it is asked twice a minute, not for each call)."""
CLAIM_POLL = 0.05

Observe = Callable[[str, str, str | None], None]
"""`(upstream, event, detail)`: token_fetched, token_failed, token_refused, nonce_retry,
token_retry (a 401 invalid_token answered with a renewed token), proof_retry."""


class TokenUnavailable(Exception):
    """The token server could not be asked or did not give a token; `reason` says why
    without any secret, `refused` when it answered that it will not (wrong key, client
    or scope: an operator must act)."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


@dataclass(frozen=True, slots=True)
class Token:
    value: str = ""
    expires_at: float = 0.0
    """Epoch seconds after which this process no longer uses the token (renewal margin included)."""

    def usable(self) -> bool:
        return time.time() < self.expires_at


class TokenStore(Protocol):
    """Where processes share a token and agree who renews it. A store that cannot be
    reached reads as empty and lets every claim through: each process then asks the
    token server itself, which costs a token each and loses nothing."""

    async def read(self, name: str) -> Token | None: ...

    async def write(self, name: str, token: Token) -> None: ...

    async def claim(self, name: str, seconds: float) -> bool:
        """True when this process may renew `name` now (no other process is at it)."""
        ...

    async def release(self, name: str) -> None: ...


def _good(token: Token | None, stale: str | None) -> TypeGuard[Token]:
    """`token` is there, is not `stale` and has not reached its renewal time."""
    return token is not None and token.value != stale and token.usable()


def htu(url: str) -> str:
    """The request URL as a DPoP proof names it: without query and fragment (scheme and
    host in lower case, as RFC 9449's comparison normalizes them)."""
    return origin(url) + urlsplit(url).path


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class HelseIdClient:
    """One HelseID client and scope: its token (shared across processes), its client
    assertions and its DPoP proofs. One instance per (token server, client, scope, key)
    in a process; every upstream configured with them uses it."""

    def __init__(self, auth: UpstreamAuth, http: ProviderClient, store: TokenStore, observe: Observe) -> None:
        self.auth = auth
        self.http = http
        self.store = store
        self.observe = observe
        jwk = json.loads(auth.key)
        self._signing_key = jwt.PyJWK(jwk, auth.algorithm).key
        self._header_jwk = public_jwk(jwk)
        self.jkt = jwk_thumbprint(jwk)
        scope = " ".join(sorted(auth.scope))
        self.name = hashlib.sha256(f"{auth.token_url}|{auth.client_id}|{scope}|{self.jkt}".encode()).hexdigest()[:24]
        """The shared token's name in the store: no client id or scope in Redis keys."""
        self._token = Token()
        self._lock = asyncio.Lock()
        self._failure: tuple[float, TokenUnavailable] | None = None
        self._nonces: dict[str, str] = {}
        self._scope = scope

    @property
    def scheme(self) -> str:
        return "DPoP" if self.auth.dpop else "Bearer"

    async def token(self, upstream: str, stale: str | None = None) -> str:
        """A token that is valid now (from memory, the store, or the token server), and
        not `stale`, a token an upstream refused (revoked, or expired early); `upstream` is
        the caller, named in metrics."""
        if _good(self._token, stale):
            return self._token.value
        return await self._obtain(upstream, stale)

    async def _obtain(self, upstream: str, stale: str | None) -> str:
        async with self._lock:
            if _good(self._token, stale):
                return self._token.value
            if self._failure is not None and time.monotonic() < self._failure[0]:
                raise self._failure[1]
            try:
                self._token = await self._shared(upstream, stale)
            except TokenUnavailable as exc:
                self._failure = (time.monotonic() + (REFUSED_HOLD if exc.refused else FAILURE_HOLD), exc)
                self.observe(upstream, "token_refused" if exc.refused else "token_failed", exc.reason)
                raise
            self._failure = None
            return self._token.value

    async def _shared(self, upstream: str, stale: str | None) -> Token:
        """The store's token when it is another than `stale` and still good; else this
        process renews it if no other process is doing so, or waits for that one."""
        claim_for = self.auth.timeout * 2 + 1
        waited = 0.0
        while True:
            shared = await self.store.read(self.name)
            if _good(shared, stale):
                return shared
            if await self.store.claim(self.name, claim_for):
                try:
                    shared = await self.store.read(self.name)
                    if _good(shared, stale):
                        return shared
                    fetched = await self._fetch()
                    self.observe(upstream, "token_fetched", None)
                    await self.store.write(self.name, fetched)
                    return fetched
                finally:
                    await self.store.release(self.name)
            if waited > claim_for:
                raise TokenUnavailable("another process's token request did not finish")
            await asyncio.sleep(CLAIM_POLL)
            waited += CLAIM_POLL

    async def _fetch(self) -> Token:
        """Ask the token server (client credentials, `private_key_jwt`, DPoP), answering a
        nonce challenge once."""
        url = self.auth.token_url
        for attempt in range(2):
            form = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
                    "client_assertion": self._assertion(), "scope": self._scope}
            headers = {"DPoP": self.proof("POST", url)} if self.auth.dpop else {}
            try:
                response = await self.http.post(url, data=form, headers=headers, timeout=self.auth.timeout)
            except HttpError as exc:
                kind = "timed out" if exc.timed_out else "could not be reached"
                raise TokenUnavailable(f"token endpoint {kind} ({type(exc.__cause__ or exc).__name__})") from None
            self.remember_nonce(response)
            error = _oauth_error(response)
            if response.status_code == 400 and error == "use_dpop_nonce" and attempt == 0 and \
                    "dpop-nonce" in response.headers:
                continue
            return self._token_from(response, error)
        raise TokenUnavailable("token endpoint asked for a new DPoP nonce twice")

    def _token_from(self, response: Response, error: str | None) -> Token:
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise TokenUnavailable(f"token endpoint answered HTTP {status}")
        if status >= 400:
            raise TokenUnavailable(f"token endpoint refused the client (HTTP {status}, error={error or 'none'})",
                                   refused=True)
        try:
            body = response.json()
            value, token_type, lifetime = str(body["access_token"]), str(body.get("token_type", "")), \
                float(body.get("expires_in", 60))
        except (ValueError, KeyError, TypeError):
            raise TokenUnavailable("token endpoint answered without a readable token") from None
        if token_type.lower() != self.scheme.lower():
            raise TokenUnavailable(f"token endpoint issued a {token_type or 'untyped'} token, "
                                   f"not {self.scheme}", refused=True)
        margin = min(RENEW_BEFORE, lifetime / 10)
        return Token(value, time.time() + lifetime - margin)

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {"iss": self.auth.client_id, "sub": self.auth.client_id, "aud": self.auth.issuer,
                  "iat": now, "nbf": now, "exp": now + ASSERTION_LIFETIME, "jti": uuid.uuid4().hex}
        headers = {"typ": "client-authentication+jwt"}
        if "kid" in self._header_jwk:
            headers["kid"] = self._header_jwk["kid"]
        return jwt.encode(claims, self._signing_key, algorithm=self.auth.algorithm, headers=headers)

    def proof(self, method: str, url: str, token: str | None = None) -> str:
        """A DPoP proof for one request (with the server's latest nonce, if it gave one)."""
        claims: dict[str, Any] = {"htm": method, "htu": htu(url), "iat": int(time.time()), "jti": uuid.uuid4().hex}
        if token is not None:
            claims["ath"] = token_hash(token)
        nonce = self._nonces.get(origin(url))
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(claims, self._signing_key, algorithm=self.auth.algorithm,
                          headers={"typ": "dpop+jwt", "jwk": self._header_jwk})

    def remember_nonce(self, response: Response) -> bool:
        """Keep the `DPoP-Nonce` a server sent (per server). True when it is a new one."""
        nonce = response.headers.get("dpop-nonce")
        where = origin(response.request.url)
        if nonce is None or self._nonces.get(where) == nonce:
            return False
        self._nonces[where] = nonce
        return True


class DPoPAuth:
    """The auth flow (`connectors.http.Auth`) of one upstream's client: a HelseID token and a DPoP proof on
    every request; one retry on a `401` that a nonce, a renewed token or a fresh proof
    can fix. A token that cannot be had makes the call fail as the upstream being
    unavailable, so that source answers UNAVAILABLE (or STALE) and the others still answer."""

    def __init__(self, upstream: str, client: HelseIdClient, observe: Observe) -> None:
        self.upstream = upstream
        self.client = client
        self.observe = observe

    async def flow(self, request: Request) -> AsyncGenerator[Request, Response]:
        token = await self._token(None)
        response = yield self._sign(request, token)
        fresh_nonce = self.client.remember_nonce(response)
        if response.status_code != 401:
            return
        error = _challenge_error(response)
        if error == "use_dpop_nonce" and fresh_nonce:
            self.observe(self.upstream, "nonce_retry", None)
        elif error == "invalid_token":
            self.observe(self.upstream, "token_retry", None)
            token = await self._token(token)
        elif error == "invalid_dpop_proof":
            self.observe(self.upstream, "proof_retry", None)
        else:
            return
        yield self._sign(request, token)

    async def _token(self, refused: str | None) -> str:
        try:
            return await self.client.token(self.upstream, refused)
        except TokenUnavailable as exc:
            raise SourceUnavailable(self.upstream, f"HelseID: {exc.reason}", "auth") from None

    def _sign(self, request: Request, token: str) -> Request:
        request.headers["Authorization"] = f"{self.client.scheme} {token}"
        if self.client.auth.dpop:
            request.headers["DPoP"] = self.client.proof(request.method, request.url, token)
        return request


def _oauth_error(response: Response) -> str | None:
    """The `error` code of a token endpoint's JSON error answer."""
    if response.status_code < 400:
        return None
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return str(error)[:64] if error else None


def _challenge_error(response: Response) -> str | None:
    """The `error` of a `WWW-Authenticate: DPoP …` (or Bearer) challenge."""
    for challenge in response.headers.getall("www-authenticate", []):
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() not in ("dpop", "bearer"):
            continue
        for part in params.split(","):
            name, _, value = part.strip().partition("=")
            if name == "error":
                return value.strip('"')
    return None


class HelseIdClients:
    """The process's HelseID clients: one per (token server, client, scope, key), shared
    by every upstream configured with them."""

    def __init__(self, http: ProviderClient, store: TokenStore, observe: Observe) -> None:
        self.http = http
        self.store = store
        self.observe = observe
        self._clients: dict[UpstreamAuth, HelseIdClient] = {}

    def auth(self, upstream: str, auth: UpstreamAuth | None) -> DPoPAuth | None:
        """The auth flow `upstream`'s client sends with; None when it sends no credential."""
        if auth is None or not auth.required:
            return None
        client = self._clients.get(auth)
        if client is None:
            client = self._clients[auth] = HelseIdClient(auth, self.http, self.store, self.observe)
        return DPoPAuth(upstream, client, self.observe)
