"""GraphQL over HTTP (the GraphQL Foundation's spec) on top of Strawberry's ASGI view:
`application/graphql-response+json` when the client accepts it (with 400 and no `data`
for request errors: parse, validation, variable coercion), `application/json` otherwise
(200); request-level failures as JSON error bodies; a mutation over GET is 405."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http.typevars import Context, RootValue
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def preferred_media(accept: str | None) -> str:
    """The response media type for an `Accept` header (application/json when unsure)."""
    ranked = []
    for part in (accept or "").split(","):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((quality, media.strip().lower()))
    for _, media in sorted(ranked, key=lambda r: -r[0]):
        if media == GRAPHQL_RESPONSE:
            return GRAPHQL_RESPONSE
        if media in (JSON, "application/*", "*/*"):
            return JSON
    return JSON


def _code(status: int) -> str:
    return {405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}.get(
        status, "BAD_REQUEST")


def is_request_error(result: ExecutionResult) -> bool:
    """Parse, validation and variable errors: nothing was executed, so there is no data."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(e.path is None for e in errors)


SUBSCRIPTION_OVER_HTTP = ("Abonnementer (subscription) går over WebSocket: koble til /graphql med "
                          "graphql-transport-ws eller graphql-ws.")


def is_subscription(query: str | None, operation_name: str | None) -> bool:
    """Whether the operation a document runs is a subscription. Parsed only when the text
    names one: a query pays for one substring search."""
    if not query or "subscription" not in query:
        return False
    try:
        operation = get_operation_ast(parse(query), operation_name)
    except GraphQLError:
        return False  # the schema's own parse reports it
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


class SpecCompliantGraphQL(GraphQL[Context, RootValue]):
    """Strawberry's view with the GraphQL-over-HTTP media types and status codes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        media = preferred_media(request.headers.get("accept"))
        scope.setdefault("state", {})["graphql_media"] = media
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = self._http_error(exc, request.method, media)
        await response(scope, receive, send)

    def _http_error(self, exc: HTTPException, method: str, media: str) -> Response:
        status, headers = exc.status_code, {}
        if isinstance(exc.__cause__, InvalidOperationTypeError) and method == "GET":
            status, headers = 405, {"Allow": "POST"}
        elif exc.reason == SUBSCRIPTION_OVER_HTTP:
            headers = {"Allow": "GET"}  # the WebSocket handshake
        return JSONResponse({"errors": [{"message": exc.reason, "extensions": {"code": _code(status)}}]},
                            status_code=status, headers=headers, media_type=media)

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        processed = await super().process_result(request, result)
        if is_request_error(result):
            processed.pop("data", None)
            if request.scope.get("state", {}).get("graphql_media") == GRAPHQL_RESPONSE:
                request.scope["state"]["graphql_status"] = 400
        return processed

    async def get_sub_response(self, request: Any) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = request.scope.get("state", {}).get("graphql_media", JSON)
        sub_response.request_scope = request.scope  # type: ignore[attr-defined]
        return sub_response

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        media = sub_response.media_type or JSON
        response.headers["content-type"] = f"{media}; charset=utf-8"
        scope = getattr(sub_response, "request_scope", {})
        status = scope.get("state", {}).get("graphql_status")
        if status and not sub_response.status_code:
            response.status_code = status
        return response
