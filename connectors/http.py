"""The HTTP client every connector calls providers with (aiohttp), and the one way to send
a request through it: transport failures become `SourceUnavailable`.

aiohttp directly, not httpx: the connectors read every answer whole, and httpx's client
(URL model, request and response models, its auth, redirect and streaming machinery, over
aiohttp underneath) cost about 250 µs of CPU per provider call on top of aiohttp's own
200 — for a cold list of seven calls about a tenth of its CPU (bench/results/NOTES.md).
What the connectors need of a client is small and is all here: a request (method, URL,
headers, body), a response read whole (status, headers, bytes), an auth flow that may
send a request again (HelseID's DPoP), timeouts, a bounded pool, no cookies."""

from __future__ import annotations

import codecs
import ssl
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from opentelemetry import propagate, trace

from connectors.base import SourceRejected, SourceUnavailable

_tracer = trace.get_tracer("timeavtaler-bff.connectors")

DEFAULT_TIMEOUT = 5.0
DEFAULT_CONNECTIONS = 100
KEEPALIVE = 15.0
"""Seconds an idle pooled connection is kept."""
USER_AGENT = "timeavtaler-bff"


class HttpError(Exception):
    """A call that got no answer: the connection failed, or (`timed_out`) the clock ran out."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(slots=True)
class Request:
    """One request: headers are this request's own (an auth flow may add to them)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    timeout: float | None = None
    """The whole call's limit in seconds, instead of the client's (token endpoints)."""


class Response:
    """An answer, read whole."""

    __slots__ = ("content", "headers", "request", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str] | CIMultiDictProxy[str] | None = None,
                 content: bytes = b"", request: Request | None = None) -> None:
        self.status_code = status_code
        self.headers: CIMultiDictProxy[str] = headers if isinstance(headers, CIMultiDictProxy) else \
            CIMultiDictProxy(CIMultiDict(headers or {}))
        self.content = content
        self.request = request or Request("GET", "")

    @property
    def charset_encoding(self) -> str | None:
        """The `charset` of the Content-Type header, if it names one."""
        for param in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip('"')
        return None

    @property
    def text(self) -> str:
        """The body as text: its charset, else UTF-8 (undecodable bytes replaced)."""
        try:
            return self.content.decode(self.charset_encoding or "utf-8", errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class Auth(Protocol):
    """A credential flow (HelseID's DPoP): given the request, it yields the request to
    send (signed), receives the response, and may yield the request once more."""

    def flow(self, request: Request) -> AsyncGenerator[Request, Response]: ...


class ProviderClient:
    """One client (its own pool) per upstream; cookie-free, since it serves every citizen:
    a cookie a provider sets while answering for one person (a gateway's session or
    affinity cookie, say) must not go out with the next person's request. Redirects are
    not followed. `timeout`: seconds for the whole call (`connect`: for a connection);
    `auth`: the upstream's credential flow, if it takes one."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, connect: float | None = None,
                 connections: int = DEFAULT_CONNECTIONS, auth: Auth | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(connect or timeout, timeout))
        self._connections = connections
        self._ssl = ssl_context
        self._auth = auth
        self._session: aiohttp.ClientSession | None = None
        self._proxies = {scheme: url for scheme, url in getproxies().items() if scheme in ("http", "https")}
        """`HTTP_PROXY`/`HTTPS_PROXY` as read at start, honouring `NO_PROXY` per host (`_proxy`):
        aiohttp's own `trust_env` looks them up in a worker thread on every request."""
        self._proxy_for: dict[tuple[str, str], str | None] = {}

    async def __aenter__(self) -> ProviderClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def build_request(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None, json: Any = None,
                      data: Mapping[str, str] | None = None, timeout: float | None = None) -> Request:
        """A request; `json` or `data` (a form) is its body."""
        own = dict(headers or {})
        content = None
        if json is not None:
            content = orjson.dumps(json)
            own.setdefault("Content-Type", "application/json")
        elif data is not None:
            content = urlencode(data).encode()
            own.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        return Request(method, url, own, content, timeout)

    async def get(self, url: str, **options: Any) -> Response:
        return await self.send(self.build_request("GET", url, **options))

    async def post(self, url: str, **options: Any) -> Response:
        return await self.send(self.build_request("POST", url, **options))

    async def send(self, request: Request) -> Response:
        """Send `request` (through the auth flow, if any). Raises `HttpError`."""
        if self._auth is None:
            return await self._send(request)
        flow = self._auth.flow(request)
        outgoing = await anext(flow)
        while True:
            response = await self._send(outgoing)
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return response

    async def _send(self, request: Request) -> Response:
        session = self._session or self._open()
        timeout = self._timeout if request.timeout is None else aiohttp.ClientTimeout(total=request.timeout)
        try:
            async with session.request(request.method, request.url, headers=request.headers, data=request.content,
                                       allow_redirects=False, timeout=timeout,
                                       proxy=self._proxy(request.url) if self._proxies else None) as answer:
                body = await answer.read()
        except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too
            raise HttpError(f"timed out ({type(exc).__name__})", timed_out=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise HttpError(f"transport error: {type(exc).__name__}") from exc
        return Response(answer.status, answer.headers, body, request)

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=KEEPALIVE,
                                         ssl=self._ssl if self._ssl is not None else True)
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              headers={"User-Agent": USER_AGENT})
        return self._session

    def _proxy(self, url: str) -> str | None:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxy_for:
            bypass = proxy_bypass(key[1])
            self._proxy_for[key] = None if bypass else self._proxies.get(key[0])
        return self._proxy_for[key]


async def send(source: str, client: ProviderClient, request: Request) -> Response:
    """Send one request, mapping transport failures to `SourceUnavailable`. Inside a trace
    (every request and cancellation step has one while traces are recorded) it is a client
    span (source, method, host, status; never the URL, which names a person) and carries
    the W3C `traceparent` to the provider. Outside one it is sent as it is: asking the
    current span is a context lookup (~0.4 µs), where asking for the tracer provider reads
    the environment on every call (~2 µs)."""
    if not trace.get_current_span().get_span_context().is_valid or \
            isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return await _send(source, client, request)
    with _tracer.start_as_current_span(f"{request.method} {source}", kind=trace.SpanKind.CLIENT, attributes={
            "bff.source": source, "http.request.method": request.method,
            "server.address": urlsplit(request.url).hostname or ""}) as current:
        propagate.inject(request.headers)
        response = await _send(source, client, request)
        current.set_attribute("http.response.status_code", response.status_code)
        return response


async def _send(source: str, client: ProviderClient, request: Request) -> Response:
    try:
        return await client.send(request)
    except HttpError as exc:
        if exc.timed_out:
            raise SourceUnavailable(source, "timed out", "timeout") from exc
        raise SourceUnavailable(source, str(exc), "transport") from exc


RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def raise_for_status(source: str, response: Response, message: str | None = None) -> None:
    """The one status-to-error table: map a non-2xx answer to our error hierarchy."""
    status = response.status_code
    if status < 400:
        return
    if status in RETRIABLE_STATUSES or status >= 500:
        raise SourceUnavailable(source, f"HTTP {status}", "http_5xx" if status >= 500 else "http_retry")
    raise SourceRejected(source, f"HTTP {status}", status, message)


UTF8_LABELS = frozenset({"utf-8", "utf8"})


def read_json(source: str, response: Response) -> Any:
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
