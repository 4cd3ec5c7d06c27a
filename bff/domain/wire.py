"""Names the upstream contracts fix, shared by the connectors that read them and the
sandbox that writes them: the national identifier systems and Helsenorge's FHIR flag and
extension URLs; and the JOSE helpers HelseID's DPoP needs on both sides."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
"""Fødselsnummer."""
DNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.2"
"""D-nummer."""
FLAG_SYSTEM = "http://helsenorge.no/fhir/CodeSystem/hn-appointment-flag-code-cs"
VIRTUAL_SERVICE_URL = "http://hl7.no/fhir/StructureDefinition/no-basis-virtual-service"
CANCEL_FLAG = "cancel"
"""The Helsenorge flag code that lets the citizen cancel an appointment."""

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
"""OAuth's `client_assertion_type` for a signed JWT (RFC 7523), as HelseID takes it."""
THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


def b64url(data: bytes) -> str:
    """Base64url without padding (JOSE's encoding)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """A key's RFC 7638 SHA-256 thumbprint: what a DPoP-bound token's `cnf.jkt` names."""
    members = {k: jwk[k] for k in THUMBPRINT_MEMBERS[str(jwk["kty"])]}
    return b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


def public_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """A JWK's public members (and its `kid`): what a DPoP proof's header carries and a
    token server registers."""
    return {k: jwk[k] for k in (*THUMBPRINT_MEMBERS[str(jwk["kty"])], "kid") if k in jwk}


def token_hash(token: str) -> str:
    """A DPoP proof's `ath`: the access token's SHA-256, base64url."""
    return b64url(hashlib.sha256(token.encode()).digest())
