"""Keyed pseudonyms and opaque, owner-bound IDs.

A national identity number never appears in an ID, a cache key, a log line or a metric:
where a person must be named, it is by `pseudonym()`, a keyed HMAC that cannot be
reversed without the secret. IDs are encrypted with AES-SIV (deterministic authenticated
encryption): stable for the same object, unreadable to clients, and a tampered or
invented ID fails to decode exactly as an unknown one does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from functools import cached_property

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

PSEUDONYM_BYTES = 16
PSEUDONYMS_KEPT = 50_000
"""Pseudonyms remembered (in this process's memory only): a request names its viewer's in
its cache keys, rate-limit window and audit entries, and an HMAC each time cost a reused
answer a tenth of its CPU. Forgotten all at once when full."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Ids:
    """Makes and reads pseudonyms and opaque IDs with one secret."""

    secret: bytes
    _pseudonyms: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def pseudonym(self, pid: str) -> str:
        """A stable, keyed, irreversible name for a person."""
        found = self._pseudonyms.get(pid)
        if found is None:
            if len(self._pseudonyms) >= PSEUDONYMS_KEPT:
                self._pseudonyms.clear()
            digest = hmac.new(self.secret, b"person:" + pid.encode(), hashlib.sha256).digest()
            found = self._pseudonyms[pid] = _b64(digest[:PSEUDONYM_BYTES])
        return found

    def encode(self, kind: str, *parts: str) -> str:
        return _b64(self._cipher().encrypt(orjson.dumps([kind, *parts]), [kind.encode()]))

    def decode(self, kind: str, value: str) -> tuple[str, ...] | None:
        """The parts of an ID of `kind`, or None for anything else (forged, foreign, garbage)."""
        try:
            decoded = orjson.loads(self._cipher().decrypt(_unb64(value), [kind.encode()]))
        except (ValueError, TypeError, InvalidTag, orjson.JSONDecodeError):
            return None
        if not isinstance(decoded, list) or not decoded or decoded[0] != kind:
            return None
        if not all(isinstance(p, str) for p in decoded):
            return None
        return tuple(decoded[1:])

    @cached_property
    def _siv(self) -> AESSIV:
        return AESSIV(hashlib.sha512(b"timeavtaler-id-key:" + self.secret).digest())

    def _cipher(self) -> AESSIV:
        return self._siv


def document_hash(text: str) -> str:
    """A GraphQL document's id (as in a trusted-documents manifest): its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
