"""Bearer tokens: verification against a JWKS, and the sandbox's development issuer.

Verification uses PyJWT with an algorithm allow-list (asymmetric only, so neither `none`
nor an HMAC keyed with a public key is ever accepted), exact issuer, our audience,
`exp`/`iat`/`nbf` with a small leeway, and a minimum assurance level (`acr`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK, PyJWKSet

from bff.runtime.lru import Lru
from connectors.base import UpstreamError
from connectors.http import HttpError, ProviderClient, raise_for_status

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
HIGH_ASSURANCE = frozenset({"idporten-loa-high", "Level4"})
LEEWAY_SECONDS = 30
VERIFIED_TOKENS = 10_000
VERIFIED_FOR = 60.0
"""A verified token is taken as verified again, without checking its signature, for this
long (never past its `exp`): the web client sends the same token with every request, and
checking the signature was a tenth of a warm answer's time. A token whose signing key is
withdrawn from the JWKS is therefore refused at most this much later."""
JWKS_REFETCH_INTERVAL = 60.0
JWKS_LIFESPAN = 3600.0
DEV_KEY_ID = "bff-dev-issuer-1"
DEV_TOKEN_TTL = 12 * 3600
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_PID = re.compile(r"^\d{11}$")


@dataclass(frozen=True, slots=True)
class Viewer:
    """The logged-in citizen."""

    pid: str = field(repr=False)  # a repr (a log line, a test failure) never shows a pid
    acr: str


CITIZEN_MESSAGES = {
    401: "Innloggingen er ikke gyldig lenger. Logg inn på nytt.",
    403: "Denne tjenesten krever innlogging med høyt sikkerhetsnivå (for eksempel BankID). Logg inn på nytt med det.",
    503: "Vi får ikke sjekket innloggingen akkurat nå. Prøv igjen om litt.",
}


class TokenError(Exception):
    """A token was refused; `status` is 401 (invalid) or 403 (too low assurance)."""

    def __init__(self, message: str, status: int = 401, error: str = "invalid_token") -> None:
        super().__init__(message)
        self.message = message
        """Why, in English, for the developer (and the WWW-Authenticate challenge)."""
        self.status = status
        self.error = error

    @property
    def citizen_message(self) -> str:
        """What a person is told, in bokmål."""
        return CITIZEN_MESSAGES.get(self.status, CITIZEN_MESSAGES[401])


class KeySet:
    """Signing keys by `kid`: from a file, a fixed set, or a JWKS URL. A URL's keys are
    cached for `JWKS_LIFESPAN`; a token with an unknown `kid` triggers one refetch, at most
    once per `JWKS_REFETCH_INTERVAL`, so a key rotation is picked up at once and a flood of
    tokens with made-up `kid`s cannot hammer the identity provider."""

    def __init__(self, keys: PyJWKSet | None = None, url: str | None = None,
                 client: ProviderClient | None = None) -> None:
        self._keys = keys
        self._url = url
        self._client = client
        self._loaded_at = 0.0
        self._forced_at = -JWKS_REFETCH_INTERVAL
        self._lock = asyncio.Lock()

    @classmethod
    def from_file(cls, path: Path) -> KeySet:
        return cls(PyJWKSet.from_dict(json.loads(path.read_text("utf-8"))))

    async def get(self, kid: str | None) -> PyJWK:
        if self._url is not None and (self._keys is None or time.monotonic() - self._loaded_at > JWKS_LIFESPAN):
            await self._refresh(forced=False)
        key = self._find(kid)
        if key is None and self._url is not None and time.monotonic() - self._forced_at >= JWKS_REFETCH_INTERVAL:
            await self._refresh(forced=True)
            key = self._find(kid)
        if key is None:
            raise TokenError("token is signed with an unknown key")
        return key

    def _find(self, kid: str | None) -> PyJWK | None:
        keys = list(self._keys.keys) if self._keys else []
        if kid is None and len(keys) == 1:
            return keys[0]
        return next((k for k in keys if k.key_id == kid), None)

    async def _refresh(self, forced: bool) -> None:
        async with self._lock:
            now = time.monotonic()
            if forced and now - self._forced_at < JWKS_REFETCH_INTERVAL:
                return
            if not forced and self._keys is not None and now - self._loaded_at <= JWKS_LIFESPAN:
                return
            if forced:
                self._forced_at = now
            if self._client is None or self._url is None:
                return
            try:
                response = await self._client.get(self._url)
                raise_for_status("token issuer keys", response)
                self._keys = PyJWKSet.from_dict(response.json())
                self._loaded_at = now
            except (HttpError, UpstreamError, ValueError, jwt.PyJWKSetError) as exc:
                if self._keys is None:
                    raise TokenError("signing keys are unavailable", status=503,
                                     error="temporarily_unavailable") from exc


def _unverified_header(token: str) -> dict[str, Any]:
    """The token's JOSE header, read only to choose the key and algorithm: its first segment
    decoded, not the whole token — `jwt.decode` checks every segment (the header too) right
    after, and pyjwt's own header reader checked all three character by character as well,
    about a third of a new token's cost (bench/results/NOTES.md)."""
    head, dot, _ = token.partition(".")
    try:
        if not dot:
            raise ValueError("no segments")
        header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError as exc:  # binascii.Error and orjson's JSONDecodeError are ValueErrors
        raise TokenError("token is not a JWT") from exc
    if not isinstance(header, dict):
        raise TokenError("token is not a JWT")
    return header


class TokenVerifier:
    """Turns a bearer token into a `Viewer`, or raises `TokenError`."""

    def __init__(self, keys: KeySet, issuer: str, audience: str, require_at_jwt: bool = False) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._require_at_jwt = require_at_jwt
        self._verified: Lru[bytes, tuple[Viewer, float]] = Lru(VERIFIED_TOKENS)
        """SHA-256 of a verified token → its viewer, and until when (`time.time()`)."""

    async def verify(self, token: str) -> Viewer:
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            self._verified.discard(digest)
        viewer, expires = await self._verify(token)
        self._verified.put(digest, (viewer, min(expires, time.time() + VERIFIED_FOR)))
        return viewer

    async def _verify(self, token: str) -> tuple[Viewer, float]:
        header = _unverified_header(token)
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise TokenError("token algorithm is not allowed")
        self._check_type(header)
        key = await self._keys.get(header.get("kid"))
        claims = self._decode(token, key, str(header["alg"]))
        return self._viewer(claims), float(claims["exp"])

    def _check_type(self, header: dict[str, Any]) -> None:
        typ = str(header.get("typ", "")).lower()
        if typ in ACCESS_TOKEN_TYPES:
            return
        if self._require_at_jwt or typ not in ("", "jwt"):
            raise TokenError("token is not an access token (typ must be at+jwt)")

    def _decode(self, token: str, key: PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], audience=self._audience, issuer=self._issuer,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenError("token is not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError("token is not for this audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenError("token is from an unknown issuer") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError("token is invalid") from exc
        if "nonce" in claims or "at_hash" in claims:
            raise TokenError("an ID token is not an access token")
        return claims

    def _viewer(self, claims: dict[str, Any]) -> Viewer:
        pid = claims.get("pid")
        if not isinstance(pid, str) or not _PID.match(pid):
            raise TokenError("token has no valid pid claim")
        acr = str(claims.get("acr", ""))
        if acr not in HIGH_ASSURANCE:
            raise TokenError(
                "this service needs the high assurance level (idporten-loa-high); log in again with it",
                status=403, error="insufficient_user_authentication",
            )
        return Viewer(pid=pid, acr=acr)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header, or `TokenError`."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("a bearer token is required", error="invalid_request")
    return token.strip()


def load_dev_key(path: Path) -> rsa.RSAPrivateKey:
    """The development issuer's key, created on first use and kept in `path`."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return key


def load_dev_client_key(path: Path) -> dict[str, Any]:
    """The development HelseID client's private key (an ES256 JWK), created on first use
    and kept in `path`: the sandbox's token server registers its public half, the BFF in
    the sandbox profile signs with it. Written to a temporary file and renamed, so two
    processes starting at once end up with one key."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)), "alg": "ES256", "kid": "bff-dev-client-1"}
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        draft.write_text(json.dumps(jwk), "utf-8")
        draft.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def dev_jwks(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The public half of the development key as a JWKS document."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": DEV_KEY_ID, "use": "sig", "alg": "RS256"}]}


def mint_dev_token(key: rsa.RSAPrivateKey, pid: str, *, issuer: str, audience: str,
                   acr: str = "idporten-loa-high", ttl: int = DEV_TOKEN_TTL) -> str:
    """A development access token for `pid` (sandbox only)."""
    now = int(time.time())
    claims = {"pid": pid, "acr": acr, "iss": issuer, "aud": audience, "iat": now, "exp": now + ttl,
              "scope": "timeavtaler"}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": DEV_KEY_ID, "typ": "at+jwt"})
