"""`POST /webhooks/{sourceId}`: a provider's answer to a cancellation request.

Verified per the Standard Webhooks scheme with the source's own secret (constant-time
compare, 5-minute timestamp tolerance); a replayed `webhook-id` is acknowledged and
ignored. Bad signatures get 401, malformed bodies 400, unknown sources 404, a body over
`MAX_BODY` 413, and Redis trouble 503 (so the provider sends it again) — never a 500. An
answer about a request this BFF does not know is kept and acknowledged (202), never
refused: the provider is the truth, and a refusal would only make it send again."""

from __future__ import annotations

from typing import Any, Protocol

import orjson
import structlog
from redis.exceptions import RedisError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from bff.cancellation.inbox import Inbox, Taken
from bff.domain.models import DECISIONS, CancellationStatus
from bff.domain.sources import SourcesFile

log = structlog.get_logger(__name__)
MAX_BODY = 64 * 1024
MAX_REQUEST_ID = 200


def _answer(status: int, message: str, background: BackgroundTask | None = None) -> JSONResponse:
    return JSONResponse({"status": "error" if status >= 400 else message, "message": message}, status_code=status,
                        background=background)


async def _body(request: Request) -> bytes | None:
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        return None
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY:
            return None
    return bytes(chunks)


def _decision(body: bytes) -> tuple[str, CancellationStatus, str | None] | None:
    try:
        event: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict) or event.get("type") != "cancellation.decided":
        return None
    request_id, status, message = data.get("requestId"), data.get("status"), data.get("message")
    decided = CancellationStatus.from_provider(status, DECISIONS)
    if not isinstance(request_id, str) or decided is None:
        return None
    if not (message is None or isinstance(message, str)) or not 0 < len(request_id) <= MAX_REQUEST_ID:
        return None
    return request_id, decided, message


class WebhookServices(Protocol):
    """What the endpoint uses of the running BFF's services."""

    catalogue: SourcesFile
    inbox: Inbox


async def webhook(request: Request) -> Response:
    services: WebhookServices = request.app.state.services
    source = services.catalogue.by_id(request.path_params["source_id"])
    if source is None or not source.webhook_secret:
        return _answer(404, "unknown source")
    try:
        body = await _body(request)
    except ClientDisconnect:
        return _answer(400, "incomplete body")
    if body is None:
        return _answer(413, "body too large")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        Webhook(source.webhook_secret).verify(body, headers, json_parse=False)
    except (WebhookVerificationError, ValueError, TypeError, UnicodeDecodeError):
        return _answer(401, "signature not valid")
    decision = _decision(body)
    if decision is None:
        return _answer(400, "expected a cancellation.decided event with requestId, status and message")
    try:
        receipt = await services.inbox.take(source.id, headers["webhook-id"], *decision)
    except (RedisError, OSError) as exc:
        log.warning("webhook.redis_failed", error=type(exc).__name__)
        return _answer(503, "try again later")
    if receipt.taken is Taken.UNKNOWN_REQUEST:
        return _answer(202, "recorded; no such request here")
    if receipt.taken is Taken.DUPLICATE:
        return _answer(200, "duplicate")
    follow_up = BackgroundTask(services.inbox.follow_up, receipt.decided) if receipt.decided else None
    return _answer(200, "recorded", follow_up)
