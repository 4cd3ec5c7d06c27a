"""HTTP-level protections: the security headers every response carries and the request-body
limit (both applied by `bff.web.edge`), and the answer to a body over it."""

from __future__ import annotations

from starlette.types import Send

API_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
"""JSON answers need nothing; the GraphiQL page (HTML) sets its own policy."""
DEFAULT_MAX_BODY = 64 * 1024


async def too_large(send: Send) -> None:
    body = b'{"errors": [{"message": "Request body is too large.", "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
