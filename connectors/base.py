"""The ports every upstream adapter implements, and the one error table they share.

Nothing outside `connectors/` sees an `httpx.Response` or upstream JSON: adapters return
frozen domain objects or raise `SourceUnavailable` (worth retrying, or serving stale data)
or `SourceRejected` (the upstream refused; retrying will not help).
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
import httpx
import orjson
from httpx_aiohttp.transport import AiohttpTransport

from bff.domain.models import Appointment, CancellationStatus, PersonRecord


class UpstreamError(Exception):
    """Base of every failure an adapter reports; `kind` is a short label for metrics
    (timeout, transport, http_5xx, malformed, rejected)."""

    def __init__(self, source: str, reason: str, kind: str = "unavailable") -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.kind = kind


class SourceUnavailable(UpstreamError):
    """Transient: timeout, connection failure, 5xx, 429, or a body we cannot read."""


class SourceRejected(UpstreamError):
    """Permanent: the upstream understood and refused (4xx other than 404/408/429)."""

    def __init__(self, source: str, reason: str, status: int, message: str | None = None) -> None:
        super().__init__(source, reason, "rejected")
        self.status = status
        self.message = message


RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def raise_for_status(source: str, response: httpx.Response, message: str | None = None) -> None:
    """The one status-to-error table: map a non-2xx answer to our error hierarchy."""
    status = response.status_code
    if status < 400:
        return
    if status in RETRIABLE_STATUSES or status >= 500:
        raise SourceUnavailable(source, f"HTTP {status}", "http_5xx" if status >= 500 else "http_retry")
    raise SourceRejected(source, f"HTTP {status}", status, message)


UTF8_LABELS = frozenset({"utf-8", "utf8"})


def read_json(source: str, response: httpx.Response) -> Any:
    """Decode a JSON body, treating an unreadable one as the source being unavailable.

    orjson, not `response.json()`: a person's FHIR searches are a few hundred kB, and the
    standard library's decoder is the largest single cost of a cold list with it
    (bench/results/NOTES.md). JSON is UTF-8 (RFC 8259; FHIR requires it); a leading byte order mark is
    allowed, and a body labelled with another charset is decoded as labelled (an unknown
    label as UTF-8)."""
    body = response.content
    try:
        if "charset" in response.headers.get("content-type", "").lower() and \
                (response.charset_encoding or "").lower() not in UTF8_LABELS:
            return orjson.loads(response.text)
        return orjson.loads(body[len(codecs.BOM_UTF8):] if body.startswith(codecs.BOM_UTF8) else body)
    except (ValueError, LookupError) as exc:
        raise SourceUnavailable(source, "response body is not JSON", "malformed") from exc


DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
"""httpx's own default pool limits."""
KEEPALIVE_FALLBACK = 15.0
"""Seconds an idle pooled connection is kept when the limits do not say (aiohttp's default)."""


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing and adds nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class ProviderClient(httpx.AsyncClient):
    """The httpx client for calls to providers: aiohttp underneath, and no cookies.

    The connectors speak httpx (requests, responses, timeouts, errors); the bytes go
    through aiohttp's transport (httpx-aiohttp), whose C parser and lighter connection
    pool cost a fraction of the CPU of httpx's own stack for a person's FHIR searches
    (bench/results/NOTES.md).

    One client serves every citizen's requests to a provider, so a cookie a provider
    sets while answering for one person (a gateway's session or affinity cookie, say)
    must not go out with the next person's request. httpx and aiohttp each keep cookies
    per client by default; here neither does. Skipping httpx's jar also saves the two
    urllib objects it built on every response."""

    _none = _NoCookies()

    def __init__(self, **options: Any) -> None:
        if options.get("cookies"):
            raise ValueError("provider calls never carry cookies")
        super().__init__(**options)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        if cookies:
            raise ValueError("provider calls never carry cookies")

    def _init_transport(self, verify: Any = True, cert: Any = None, trust_env: bool = True,
                        http1: bool = True, http2: bool = False,
                        limits: httpx.Limits = DEFAULT_LIMITS, transport: httpx.AsyncBaseTransport | None = None,
                        **_: Any) -> httpx.AsyncBaseTransport:
        if transport is not None:
            return transport
        return _aiohttp_transport(verify, cert, trust_env, limits, None)

    def _init_proxy_transport(self, proxy: httpx.Proxy, verify: Any = True, cert: Any = None,
                              trust_env: bool = True, http1: bool = True, http2: bool = False,
                              limits: httpx.Limits = DEFAULT_LIMITS, **_: Any) -> httpx.AsyncBaseTransport:
        return _aiohttp_transport(verify, cert, trust_env, limits, proxy)


def _aiohttp_transport(verify: Any, cert: Any, trust_env: bool, limits: httpx.Limits,
                       proxy: httpx.Proxy | None) -> AiohttpTransport:
    """httpx-aiohttp's transport, on a session without a cookie jar (its default session
    has one) and with httpx's TLS settings and pool limits."""
    ssl_context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=limits.max_connections or 0, ssl=ssl_context,
                                         keepalive_timeout=limits.keepalive_expiry or KEEPALIVE_FALLBACK)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return AiohttpTransport(limits=limits, proxy=proxy, client=session)


async def send(source: str, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send one request, mapping transport failures to `SourceUnavailable`."""
    try:
        return await client.send(request)
    except httpx.HTTPError as exc:
        if isinstance(exc, httpx.TimeoutException) and _timed_out(exc):
            raise SourceUnavailable(source, "timed out", "timeout") from exc
        cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
        raise SourceUnavailable(source, f"transport error: {type(cause).__name__}", "transport") from exc


def _timed_out(exc: httpx.TimeoutException) -> bool:
    """httpx-aiohttp reports every lost connection (a reset, a server that hung up) as
    `ConnectTimeout`; only a cause that is itself a timeout is one. (httpx's own
    transport chains its httpcore exceptions, which are neither.)"""
    cause = exc.__cause__
    return isinstance(cause, TimeoutError) or not isinstance(cause, OSError | aiohttp.ClientError)


@dataclass(frozen=True, slots=True)
class Window:
    """The time span asked of a provider; `end` None means no upper bound."""

    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a provider answered for a batch of patients.

    `skipped` counts rows that could not be read and were left out, so the answer can
    say so instead of hiding it.
    """

    by_patient: Mapping[str, tuple[Appointment, ...]]
    skipped: int = 0


class AppointmentConnector(Protocol):
    """A provider of appointments (hospital or GP FHIR server, municipal API)."""

    source_id: str

    async def fetch(self, patients: Sequence[str], window: Window) -> FetchResult:
        """All appointments of `patients` that start within `window`."""
        ...


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """What the provider said about a cancellation request, with its message if any."""

    status: CancellationStatus
    """PENDING, ACCEPTED or REJECTED (`models.ANSWERS`)."""
    message: str | None = None


class CancelConnector(Protocol):
    """A provider that takes cancellation requests.

    `cancel` is idempotent on `request_id`: sending the same request again gives the same
    answer and never a second cancellation. Raises `SourceRejected` when the provider
    refuses the request as such (it will never be decided), `SourceUnavailable` when it
    should be sent again later."""

    async def cancel(self, pid: str, upstream_id: str, request_id: str, reason: str | None) -> CancelAnswer:
        ...

    async def poll(self, pid: str, upstream_id: str, request_id: str) -> CancelAnswer:
        """Ask again about a request sent earlier (for answers whose push was lost)."""
        ...


class Notifier(Protocol):
    """The notification service (varsel)."""

    async def send(self, payload: dict[str, str], idempotency_key: str) -> None:
        """Deliver one notification; a repeat of the same `idempotency_key` is the same one."""
        ...


class PersonDirectory(Protocol):
    """The national person directory."""

    async def get(self, pid: str) -> PersonRecord | None:
        """The person's record, or None when the directory does not know them."""
        ...
