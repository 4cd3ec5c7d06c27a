"""`POST /webhooks/{sourceId}`: a provider's answer to a cancellation request.

Verified per the Standard Webhooks scheme with the source's own secret (constant-time
compare, 5-minute timestamp tolerance); a replayed `webhook-id` is acknowledged and
ignored. Bad signatures get 401, malformed bodies 400, unknown sources or requests 404,
a body over `MAX_BODY` 413, and Redis trouble 503 (so the provider sends it again) —
never a 500."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from redis.exceptions import RedisError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from bff.cancel_store import ACCEPTED, REJECTED
from bff.services import Services

log = structlog.get_logger(__name__)
MAX_BODY = 64 * 1024
REPLAY_WINDOW = 15 * 60
"""Seconds a webhook-id is remembered: longer than the 5-minute tolerance either side."""
DECISIONS = {"accepted": ACCEPTED, "rejected": REJECTED}


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error" if status >= 400 else message, "message": message}, status_code=status)


async def _body(request: Request) -> bytes | None:
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        return None
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY:
            return None
    return bytes(chunks)


def _decision(body: bytes) -> tuple[str, str, str | None] | None:
    try:
        event: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict) or event.get("type") != "cancellation.decided":
        return None
    request_id, status, message = data.get("requestId"), data.get("status"), data.get("message")
    if not isinstance(request_id, str) or status not in DECISIONS or not (message is None or isinstance(message, str)):
        return None
    return request_id, DECISIONS[status], message


async def webhook(request: Request) -> Response:
    services: Services = request.app.state.services
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
    try:
        return await _record(services, source.id, headers["webhook-id"], body)
    except (RedisError, OSError) as exc:
        log.warning("webhook.redis_failed", error=type(exc).__name__)
        return _answer(503, "try again later")


async def _record(services: Services, source_id: str, message_id: str, body: bytes) -> Response:
    decision = _decision(body)
    if decision is None:
        return _answer(400, "expected a cancellation.decided event with requestId, status and message")
    request_id, status, message = decision
    record = await services.cancellations.store.get(request_id)
    if record is None or record.source_id != source_id:
        return _answer(404, "unknown request")
    if not await services.cancellations.store.first_delivery(source_id, message_id, REPLAY_WINDOW):
        return _answer(200, "duplicate")
    try:
        await services.cancellations.decide(request_id, status, message)
    except BaseException:
        await services.cancellations.store.forget_delivery(source_id, message_id)
        raise
    return _answer(200, "recorded")
