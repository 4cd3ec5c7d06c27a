"""The application factory: explicit wiring, everything built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, cast

import orjson
import structlog
from cross_web import HTTPException
from jwt import PyJWKSet
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.typevars import RootValue
from strawberry.types.execution import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from bff.cancellation.events import EventHub
from bff.cancellation.inbox import Inbox
from bff.cancellation.service import CancellationService
from bff.cancellation.store import CancellationStore
from bff.cancellation.worker import CancellationWorker
from bff.domain.ids import Ids
from bff.domain.sources import SourcesFile, SourcesFileError, load_sources
from bff.domain.timez import today
from bff.readpath.breakers import Breakers
from bff.readpath.gateway import Gateway
from bff.readpath.people import Admission, People
from bff.readpath.response_cache import Lookup, ResponseCache
from bff.runtime import tracing
from bff.runtime.answer_first import answer_first
from bff.runtime.metrics import Metrics
from bff.services import Services
from bff.settings import DEMO_PERSON, DEV_ISSUER, Profile, Settings
from bff.store.audit import AuditLog
from bff.store.cache import AppointmentCache, Limited
from bff.store.connection import open_redis
from bff.store.durability import persistence
from bff.store.ratelimit import RateLimiter
from bff.store.tokens import RedisTokenStore
from bff.web.auth import (
    KeySet,
    TokenError,
    TokenVerifier,
    Viewer,
    bearer_token,
    dev_jwks,
    load_dev_client_key,
    load_dev_key,
    mint_dev_token,
)
from bff.web.calendar import calendar_endpoint
from bff.web.citizen import CitizenPage
from bff.web.edge import Edge
from bff.web.graphql_http import (
    SUBSCRIPTION_OVER_HTTP,
    SpecCompliantGraphQL,
    is_request_error,
    is_subscription,
    preferred_media,
)
from bff.web.ide import IdePage
from bff.web.trusted import TrustedDocuments, operations_dir
from bff.web.webhooks import webhook
from connectors import registry
from connectors.helseid import HelseIdClients, Observe
from connectors.http import Auth, ProviderClient
from connectors.notifier import HttpNotifier
from connectors.persons import HttpPersonDirectory
from resolvers.appointments.early import EarlyLists, start_own_list
from resolvers.context import ANONYMOUS, Context
from resolvers.schema import build_schema

log = structlog.get_logger(__name__)
GC_YOUNG_THRESHOLD = 25_000
"""Allocations between young-generation collections, once the process serves (default 700).
Under 16 concurrent cold lists a young collection walks the lists in flight (~15,000 live
objects at 10,000; ~8 ms each, 0.7–0.9 ms of collector CPU per list); at 25,000 it runs
a seventh as often, ~30 ms each, 0.4–0.5 ms per list (bench/results/NOTES.md). Higher
saves little more and pauses longer (50,000: ~90 ms)."""
POOL_CONNECTIONS = 50
CONNECT_TIMEOUT = 1.0
TOKEN_TIMEOUT = 5.0
"""Token endpoints (HelseID) and the inbound token issuer's JWKS: calls without a credential."""
READY_TIMEOUT = 1.0


def _client(timeout: float, auth: Auth | None = None) -> ProviderClient:
    """One client (its own pool) per upstream: a bulkhead, so one slow provider cannot
    take every connection. Cookie-free: it serves every citizen. `auth`: the upstream's
    credential (a HelseID token with DPoP proofs), if its entry has one."""
    return ProviderClient(timeout=timeout, connect=CONNECT_TIMEOUT, connections=POOL_CONNECTIONS, auth=auth)


def _observe_auth(metrics: Metrics) -> Observe:
    """HelseID events: counted per upstream; failures logged (reason only, never a secret)."""

    def observe(upstream: str, event: str, detail: str | None) -> None:
        metrics.upstream_auth.labels(upstream, event).inc()
        if event == "token_refused":
            log.error("helseid.token_refused", source=upstream, reason=detail)
        elif event == "token_failed":
            log.warning("helseid.token_failed", source=upstream, reason=detail)

    return observe


def _with_dev_client_key(settings: Settings, variables: Mapping[str, str] | None) -> dict[str, str]:
    """The sandbox profile fills `${HELSEID_KEY}` with the development HelseID client key
    (created on first use, registered by `bff sandbox` and the embedded sandbox) unless
    the environment or the caller sets it."""
    filled = dict(variables or {})
    if settings.profile is Profile.SANDBOX and "HELSEID_KEY" not in filled and "HELSEID_KEY" not in os.environ:
        filled["HELSEID_KEY"] = json.dumps(load_dev_client_key(settings.dev_client_key_file))
    return filled


def _verifier(settings: Settings, client: ProviderClient) -> TokenVerifier:
    if settings.uses_dev_issuer:
        keys = KeySet(PyJWKSet.from_dict(dev_jwks(load_dev_key(settings.dev_key_file))))
        return TokenVerifier(keys, DEV_ISSUER, settings.oidc_audience, settings.oidc_require_at_jwt)
    if settings.oidc_jwks_file:
        keys = KeySet.from_file(settings.oidc_jwks_file)
    else:
        keys = KeySet(url=settings.oidc_jwks_url, client=client)
    if not settings.oidc_issuer:
        raise ValueError("BFF_OIDC_ISSUER is required with an external token issuer")
    return TokenVerifier(keys, settings.oidc_issuer, settings.oidc_audience, settings.oidc_require_at_jwt)


class BffGraphQL(SpecCompliantGraphQL[Context, RootValue]):
    """Strawberry's ASGI view with our context: the viewer, per-request loaders, deadline;
    documents resolved (and, in production, restricted) through the trusted-documents
    manifest, over POST, GET and WebSocket alike."""

    def __init__(self, schema: Any, trusted: TrustedDocuments, **options: Any) -> None:
        super().__init__(schema, **options)
        self.trusted = trusted
        self.early = EarlyLists(schema._schema)

    def decode_json(self, data: str | bytes) -> object:
        # Strawberry answers JSONDecodeError with 400. orjson raises it for bodies that are
        # not UTF-8 too (json.loads raised UnicodeDecodeError: a 500), and a body that is
        # JSON but not an object (`null`, `5`) is no GraphQL request either.
        decoded = orjson.loads(data)
        if not isinstance(decoded, dict | list):
            raise json.JSONDecodeError("a GraphQL request is a JSON object", str(decoded)[:20], 0)
        if isinstance(decoded, dict) and decoded.get("type") in ("subscribe", "start"):
            payload = decoded.get("payload")
            return {**decoded, "payload": self.trusted.resolve(payload)} if isinstance(payload, dict) else decoded
        if isinstance(decoded, dict) and "type" not in decoded:
            return self.trusted.resolve(decoded)
        return decoded

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any, context: Context,
                             root_value: Any, request_data: GraphQLRequestData) -> ExecutionResult:
        """Reuse the answer to a query document while nothing it reads changed."""
        if request_data.protocol != "http":
            return await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                                request_data)
        if is_subscription(request_data.query, request_data.operation_name):
            context.release()
            raise HTTPException(405, SUBSCRIPTION_OVER_HTTP)
        try:
            return await self._answer(request, request_adapter, sub_response, context, root_value, request_data)
        finally:
            context.release()  # an HTTP request's context ends with its answer

    async def kept_answer(self, scope: Scope, receive: Receive) -> tuple[Receive, Response | None]:
        """A JSON POST whose answer is kept (`ResponseCache`): its response at once, without
        the GraphQL view (which costs a reused answer most of its CPU). Otherwise None, and
        a `receive` that gives the view the body again; a miss leaves where to keep the
        answer in the request's state, so the view does not ask Redis a second time."""
        headers = dict(scope.get("headers") or [])
        if scope.get("method") != "POST" or not headers.get(b"content-type", b"").startswith(b"application/json"):
            return receive, None
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"".join(chunks), message, receive), None
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replay = _replay(body, None, receive)
        services: Services = scope["app"].state.services
        try:
            asked = self.trusted.resolve(orjson.loads(body))
        except (orjson.JSONDecodeError, HTTPException, TypeError, AttributeError):
            return replay, None  # the view answers it, with the error it deserves
        query, variables = asked.get("query"), asked.get("variables")
        if not isinstance(query, str) or not (variables is None or isinstance(variables, dict)):
            return replay, None
        operation = asked.get("operationName") if isinstance(asked.get("operationName"), str) else None
        place = services.responses.place(scope["state"]["viewer"].pid, query, variables, operation)
        if place is None:
            return replay, None
        viewer = scope["state"]["viewer"]
        early = None
        if place.personal and not services.responses.holds(place):
            # To be computed (no answer is kept here): the viewer's record is read beside the
            # rate count (its lease taken where it is missing), and the directory asked once
            # the view has validated the request — or, for the viewer's own list from a
            # document known to be valid, once the rate count admits it (below) — so a cold
            # viewer's directory call waits for no round trip of its own. A request refused
            # (by the rate limit here, or by validation) asks no one and lets go of the lease.
            deadline = asyncio.get_running_loop().time() + services.settings.request_deadline
            admission = Admission()
            early = (services.people.start(viewer.pid, deadline, admission), admission)
        try:
            kept, lookup, counted = await services.responses.reuse(place, services.audit,
                                                                   services.rate_limiter.count(viewer.pid))
        except Limited:
            if early is not None:
                early[1].refuse()
            return replay, _too_many(services.rate_limiter.retry_after())
        scope["state"]["counted"] = counted
        if kept is None:
            scope["state"]["kept_lookup"] = (query, lookup)
            if early is not None and self.early.applies(query, operation, variables, services.ids):
                context = Context(services=services, viewer=viewer)
                context.persons.begin(viewer.pid, *early)
                scope["state"]["early_context"] = context
                services.metrics.early_lists.inc()
                await start_own_list(context)
            elif early is not None:
                scope["state"]["viewer_lookup"] = early
            return replay, None
        services.metrics.of(services.metrics.responses, "hit").inc()
        media = preferred_media(headers.get(b"accept", b"").decode("latin-1"))
        return replay, Response(orjson.dumps({"data": kept.data}), media_type=f"{media}; charset=utf-8")

    async def _answer(self, request: Any, request_adapter: Any, sub_response: Any, context: Context,
                      root_value: Any, request_data: GraphQLRequestData) -> ExecutionResult:
        responses = context.services.responses
        asked = request.scope.get("state", {}).pop("kept_lookup", None)
        if asked is not None and asked[0] == request_data.query:  # `kept_answer` looked already: a miss
            context.services.metrics.of(context.services.metrics.responses, "miss").inc()
            return await self._compute(request, request_adapter, sub_response, context, root_value, request_data,
                                       asked[1], time.monotonic())
        if not responses.applies(request_data.query):
            return await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                                request_data)
        started = time.monotonic()
        place = responses.place(context.viewer.pid, str(request_data.query), request_data.variables,
                                request_data.operation_name)
        kept, lookup, _ = await responses.reuse(place, context.services.audit) if place is not None else \
            (None, None, False)
        context.services.metrics.of(context.services.metrics.responses, "hit" if kept else "miss").inc()
        if kept is not None:  # audited again by `reuse`
            return ExecutionResult(data=kept.data, errors=None)
        return await self._compute(request, request_adapter, sub_response, context, root_value, request_data,
                                   lookup, started)

    async def _compute(self, request: Any, request_adapter: Any, sub_response: Any, context: Context,
                       root_value: Any, request_data: GraphQLRequestData, lookup: Lookup | None,
                       started: float) -> ExecutionResult:
        """Execute the operation, and keep its answer at `lookup` if it may be reused."""
        result = await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                              request_data)
        if request_data.query and not is_request_error(result):
            self.early.validated(request_data.query)
        if lookup is not None and not result.errors and not context.degraded and result.data is not None:
            context.services.responses.put(lookup, result.data, tuple(context.audited), started)
        return result

    def should_render_graphql_ide(self, request: Any) -> bool:
        return False  # AuthenticatedGraphQL serves our own IDE page, and only when asked for HTML

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        parsed: dict[str, Any] = super().parse_query_params(params)
        return self.trusted.resolve(parsed)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: over a WebSocket Strawberry sends bytes as binary frames, which
        # GraphQL WebSocket clients do not read.
        return orjson.dumps(data).decode()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        services: Services = request.app.state.services
        state = request.scope.get("state", {})
        early = state.pop("early_context", None)
        if early is not None:  # `kept_answer` made it, and started the list
            return cast(Context, early)
        viewer: Viewer = state.get("viewer", ANONYMOUS)
        context = Context(services=services, viewer=viewer)
        started = state.pop("viewer_lookup", None)
        if started is not None:  # `kept_answer` started it
            context.persons.begin(viewer.pid, *started)
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a WebSocket in `connection_init`: `{"Authorization": "Bearer …"}`
        (or `authorization`, or `token`) with the same rules as an HTTP request."""
        params = context.connection_params or {}
        raw = params.get("Authorization") or params.get("authorization")
        if raw is None and isinstance(params.get("token"), str):
            raw = f"Bearer {params['token']}"
        try:
            token = bearer_token(raw if isinstance(raw, str) else None)
            context.viewer = await context.services.verifier.verify(token)
        except TokenError as exc:
            raise ConnectionRejectionError({"message": exc.citizen_message, "code": exc.error,
                                            "reason": exc.message}) from exc
        return cast(UnsetType, UNSET)


def _replay(body: bytes, then: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives `body` once, then `then` (a disconnect that came instead of
    the rest of the body) or what the client sends next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return then if then is not None else await receive()

    return replay


def _dev_token(settings: Settings, handle: str) -> tuple[str, str] | None:
    """A fresh development token for a sandbox person, and their name (dev issuer only)."""
    from bff.sandbox.cast import cast

    member = cast(today()).get(handle)
    if member is None:
        return None
    return mint_dev_token(load_dev_key(settings.dev_key_file), member.pid, issuer=DEV_ISSUER,
                          audience=settings.oidc_audience), member.name


def _ide_token(settings: Settings) -> Callable[[], str | None]:
    """A fresh dev token for the demo person on every page load (dev issuer only)."""
    if not settings.uses_dev_issuer:
        return lambda: None
    return lambda: (_dev_token(settings, DEMO_PERSON) or (None, None))[0]


def _citizen_page(settings: Settings, trusted: TrustedDocuments) -> CitizenPage | None:
    """The citizen's page (`Settings.serves_web_client`); the sandbox's people and their
    tokens only with the dev issuer."""
    if not settings.serves_web_client:
        return None
    if not settings.uses_dev_issuer:
        return CitizenPage(trusted.documents)
    from bff.sandbox.cast import cast

    people = [{"handle": handle, "name": member.name} for handle, member in cast(today()).items()]
    return CitizenPage(trusted.documents, people, lambda handle: _dev_token(settings, handle), DEMO_PERSON)


def _wants_ide(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    query_string = scope.get("query_string", b"")
    return scope["method"] == "GET" and b"text/html" in headers.get(b"accept", b"") and \
        b"query=" not in query_string and b"documentId=" not in query_string and b"extensions=" not in query_string


class AuthenticatedGraphQL:
    """Verifies the bearer token before any GraphQL work: no token, no answer (401).
    A browser asking for HTML gets the GraphiQL page instead (sandbox profile)."""

    def __init__(self, view: BffGraphQL, ide: IdePage | None) -> None:
        self.view = view
        self.ide = ide

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.ide is not None and _wants_ide(scope):
            await self.ide.render()(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.view(scope, receive, send)
            return
        kept_path = not tracing.on()  # with traces on, every answer goes through the traced view
        # On the kept path, the script that confirms a kept answer counts the request for the
        # rate limit in the same round trip; what it does not count is counted below.
        refusal = await authenticate(scope, count=not kept_path)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        with answer_first():  # cache writes wait until the answer is sent
            if kept_path:
                receive, kept = await self.view.kept_answer(scope, receive)
                if kept is None and not scope["state"].get("counted"):
                    kept = await rate_limited(scope)
                if kept is not None:
                    await kept(scope, receive, send)
                    return
            try:
                await self.view(scope, receive, send)
            finally:
                unused = scope["state"].pop("early_context", None)
                if unused is not None:  # the view ended before it took it
                    unused.release()


async def authenticate(scope: Scope, *, count: bool = True) -> Response | None:
    """Verify the bearer token and (unless `count` is false: the caller does it) the
    person's rate limit; on success the viewer is put in the request's state and None
    returned, else the refusal to send."""
    services: Services = scope["app"].state.services
    try:
        headers = dict(scope.get("headers") or [])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        viewer = await services.verifier.verify(token)
    except TokenError as exc:
        return _refuse(exc)
    scope.setdefault("state", {})["viewer"] = viewer
    return await rate_limited(scope) if count else None


async def rate_limited(scope: Scope) -> Response | None:
    """Count the request against the viewer's limit: the 429 to send when it is over."""
    services: Services = scope["app"].state.services
    allowed, retry_after = await services.rate_limiter.allow(scope["state"]["viewer"].pid)
    return None if allowed else _too_many(retry_after)


def _calendar(view: BffGraphQL) -> Callable[[Request], Awaitable[Response]]:
    async def execute(request: Request, query: str, variables: dict[str, Any]) -> Any:
        context = await view.get_context(request, Response())
        context.channel = "calendar"
        return await view.schema.execute(query, variable_values=variables, context_value=context)

    async def endpoint(request: Request) -> Response:
        refusal = await authenticate(request.scope)
        return refusal or await calendar_endpoint(request, execute)

    return endpoint


def _refuse(exc: TokenError) -> Response:
    """401, 403 or 503: a bokmål message for people, the code and the (English, ASCII, as
    RFC 6750 wants it in the challenge) reason for programs."""
    challenge = f'Bearer error="{exc.error}", error_description="{exc.message}"'
    code = {401: "UNAUTHENTICATED", 403: "FORBIDDEN"}.get(exc.status, "UNAVAILABLE")
    return JSONResponse({"errors": [{"message": exc.citizen_message, "extensions": {"code": code,
                                                                                 "reason": exc.message}}]},
                        status_code=exc.status, headers={"WWW-Authenticate": challenge})


def _too_many(retry_after: int) -> Response:
    return JSONResponse({"errors": [{"message": "For mange forespørsler. Vent litt og prøv igjen.",
                                     "extensions": {"code": "RATE_LIMITED"}}]},
                        status_code=429, headers={"Retry-After": str(retry_after)})


HTTP_ERRORS = {
    404: ("NOT_FOUND", "Finnes ikke."),
    405: ("METHOD_NOT_ALLOWED", "Metoden er ikke tillatt her."),
}


async def http_error(request: Request, exc: Exception) -> Response:
    """Every route's 404 and 405 (and any other HTTP error Starlette raises) as JSON: a
    stable English code, a Norwegian message, the Allow header kept."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    code, message = HTTP_ERRORS.get(status, ("HTTP_ERROR", "Forespørselen kan ikke besvares."))
    headers = getattr(exc, "headers", None)
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status,
                        headers=headers)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """Ready when Redis answers and — in the production profile — persists what it
    acknowledges (the sources file was read at start-up, or we would not run)."""
    services: Services = request.app.state.services
    body: dict[str, Any] = {"sources": len(services.catalogue.sources)}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await services.redis.ping()
            durable = await persistence(services.redis, services.settings.redis_persistence_guaranteed)
    except (TimeoutError, RedisError, OSError) as exc:
        return JSONResponse({"status": "unavailable", "redis": type(exc).__name__, **body}, status_code=503)
    services.metrics.redis_persistence.set(int(durable.ok))
    body.update(redis="ok", persistence=durable.detail)
    if not durable.ok and services.settings.production:
        return JSONResponse({"status": "unavailable", **body}, status_code=503)
    return JSONResponse({"status": "ready", **body})


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def tune_gc() -> None:
    """Collect once, then move everything startup made (schema, sources, pools: ~100,000
    objects) out of the collector's reach, and collect the young generation less often.
    A cold list allocates a few hundred thousand short-lived containers (decoded FHIR);
    with the defaults the collector runs many times per request, walking long-lived
    objects each time (bench/results/NOTES.md). For a process that serves only
    this app (`bff serve`, `bff.asgi`); tests running many apps in one process keep the
    defaults, since frozen objects are never reclaimed."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def create_app(settings: Settings, variables: Mapping[str, str] | None = None, *,
               own_process: bool = False) -> Starlette:
    """The BFF as a Starlette app. `variables` fill `${…}` in the sources file (the
    embedded default passes the sandbox's address). `own_process`: the app is what this
    process is for, so the garbage collector is tuned for it once started (`tune_gc`)."""
    catalogue = load_sources(settings.sources, _with_dev_client_key(settings, variables))
    if settings.production and catalogue.without_auth():
        raise SourcesFileError("production profile: every upstream needs an auth table (HelseID, or "
                               "auth = { kind = \"none\" } to say it takes none); missing for "
                               + ", ".join(catalogue.without_auth()))
    only_trusted = settings.production if settings.trusted_documents_only is None else settings.trusted_documents_only
    trusted = TrustedDocuments.load(settings.trusted_documents, enforce=only_trusted)
    view = BffGraphQL(build_schema(settings.production, traced=tracing.on()), trusted, graphql_ide=None)
    ide = IdePage(operations_dir(), _ide_token(settings)) if settings.profile is Profile.SANDBOX else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            app.state.services = services = await _services(settings, catalogue, trusted, stack)
            stack.push_async_callback(services.cache.aclose)  # after the gateway's refreshes have stopped
            stack.push_async_callback(services.gateway.aclose)
            services.events.start()
            stack.push_async_callback(services.events.aclose)
            worker = CancellationWorker(services.cancellations, services.cancellations.store,
                                        settings.cancel_poll_interval, settings.cancel_poll_after)
            worker.start()
            stack.push_async_callback(worker.aclose)
            log.info("bff.started", sources=[s.id for s in catalogue.sources], profile=settings.profile.value)
            durable = await persistence(services.redis, settings.redis_persistence_guaranteed)
            services.metrics.redis_persistence.set(int(durable.ok))
            if not durable.ok:
                log.warning("redis.not_persistent", detail=durable.detail, ready=not settings.production)
            if own_process:
                tune_gc()
            yield {}

    endpoint = AuthenticatedGraphQL(view, ide)
    citizen = _citizen_page(settings, trusted)
    ide_assets = [Mount("/graphiql", StaticFiles(packages=[("bff", "static/graphiql")]))] if ide else []
    page = citizen.routes() if citizen else []
    routes = [*page, *ide_assets, Route("/graphql", endpoint, methods=["GET", "POST"]),
              WebSocketRoute("/graphql", endpoint),
              Route("/webhooks/{source_id}", webhook, methods=["POST"]),
              Route("/calendar.ics", _calendar(view), methods=["GET"]),
              Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
    middleware = [Middleware(Edge, cors_origins=settings.cors_origins, max_bytes=settings.max_body_bytes,
                             graphql=endpoint)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={StarletteHTTPException: http_error})


async def _services(settings: Settings, catalogue: SourcesFile, trusted: TrustedDocuments,
                    stack: contextlib.AsyncExitStack) -> Services:
    redis, webhook_redis = await stack.enter_async_context(open_redis(settings.redis_url, settings.redis_cluster))
    metrics = Metrics()
    token_http = await stack.enter_async_context(_client(TOKEN_TIMEOUT))
    helseid = HelseIdClients(token_http, RedisTokenStore(redis, settings.redis_prefix), _observe_auth(metrics))
    clients = {s.id: await stack.enter_async_context(_client(s.timeout, helseid.auth(s.id, s.auth)))
               for s in catalogue.sources}
    directory = catalogue.directory
    directory_client = await stack.enter_async_context(_client(directory.timeout, helseid.auth("directory",
                                                                                              directory.auth)))
    ids = Ids(settings.secret_for_ids)
    cache = AppointmentCache(redis, settings.redis_prefix, ids, metrics)
    connectors = {s.id: registry.reader(s, clients[s.id]) for s in catalogue.sources}
    breakers = Breakers(metrics, settings.breaker_threshold, settings.breaker_cooldown)
    store = CancellationStore(redis, settings.redis_prefix, ids)
    cancellers = {s.id: registry.canceller(s, clients[s.id]) for s in catalogue.sources if s.capabilities.cancel}
    notifier = None
    if catalogue.notifier is not None:
        notifier_client = await stack.enter_async_context(
            _client(catalogue.notifier.timeout, helseid.auth("notifier", catalogue.notifier.auth)))
        notifier = HttpNotifier(catalogue.notifier.url, notifier_client)
    audit = AuditLog(redis, settings.redis_prefix, ids)
    cancellations = CancellationService(store, cancellers, notifier, cache, audit)
    responses = ResponseCache(cache, ids, trusted.documents.values())
    metrics.responses_kept.set_function(lambda: len(responses))
    return Services(
        settings=settings, catalogue=catalogue, ids=ids, redis=redis, cache=cache,
        gateway=Gateway(connectors, cache, breakers, metrics),
        people=People(HttpPersonDirectory(catalogue.directory.url, directory_client), cache),
        verifier=_verifier(settings, token_http), metrics=metrics, breakers=breakers,
        cancellations=cancellations,
        inbox=Inbox(CancellationStore(webhook_redis, settings.redis_prefix, ids), cancellations,
                    lambda source_id: metrics.webhook_orphans.labels(source_id).inc()),
        events=EventHub(redis, store, settings.redis_prefix),
        audit=audit,
        rate_limiter=RateLimiter(redis, settings.redis_prefix, ids, settings.rate_limit_per_minute),
        responses=responses,
    )
