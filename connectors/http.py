"""The HTTP client every connector calls providers with, and the one way to send a
request through it: transport failures become `SourceUnavailable`."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from httpx_aiohttp.transport import AiohttpTransport
from opentelemetry import propagate, trace

from connectors.base import SourceUnavailable

_tracer = trace.get_tracer("timeavtaler-bff.connectors")

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
    """Send one request, mapping transport failures to `SourceUnavailable`. While traces
    are recorded it is a client span (source, method, host, status; never the URL, which
    names a person) and carries the W3C `traceparent` to the provider."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return await _send(source, client, request)
    with _tracer.start_as_current_span(f"{request.method} {source}", kind=trace.SpanKind.CLIENT, attributes={
            "bff.source": source, "http.request.method": request.method,
            "server.address": request.url.host}) as current:
        propagate.inject(request.headers)
        response = await _send(source, client, request)
        current.set_attribute("http.response.status_code", response.status_code)
        return response


async def _send(source: str, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        return await client.send(request)
    except httpx.HTTPError as exc:
        if timed_out(exc):
            raise SourceUnavailable(source, "timed out", "timeout") from exc
        cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
        raise SourceUnavailable(source, f"transport error: {type(cause).__name__}", "transport") from exc


def timed_out(exc: httpx.HTTPError) -> bool:
    """Whether a failed call timed out. httpx-aiohttp reports every lost connection (a reset, a server that hung up) as
    `ConnectTimeout`; only a cause that is itself a timeout is one. (httpx's own
    transport chains its httpcore exceptions, which are neither.)"""
    if not isinstance(exc, httpx.TimeoutException):
        return False
    cause = exc.__cause__
    return isinstance(cause, TimeoutError) or not isinstance(cause, OSError | aiohttp.ClientError)
