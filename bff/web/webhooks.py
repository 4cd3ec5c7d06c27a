"""`POST /webhooks/{sourceId}`: a provider's answer to a cancellation request.

Verified per the Standard Webhooks scheme with the source's own secret (constant-time
compare, 5-minute timestamp tolerance); a replayed `webhook-id` is acknowledged and
ignored. Bad signatures get 401, malformed bodies 400, unknown sources 404, a body over
`MAX_BODY` 413, and Redis trouble 503 (so the provider sends it again) — never a 500. An
answer about a request this BFF does not know is kept and acknowledged (202), never
refused: the provider is the truth, and a refusal would only make it send again."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from redis.exceptions import RedisError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from bff.cancellation.store import ACCEPTED, REJECTED, CancellationRecord
from bff.domain.timez import now
from bff.services import Services

log = structlog.get_logger(__name__)
MAX_BODY = 64 * 1024
REPLAY_WINDOW = 15 * 60
"""Seconds a webhook-id is remembered: longer than the 5-minute tolerance either side."""
DECISIONS = {"accepted": ACCEPTED, "rejected": REJECTED}
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


def _decision(body: bytes) -> tuple[str, str, str | None] | None:
    try:
        event: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict) or event.get("type") != "cancellation.decided":
        return None
    request_id, status, message = data.get("requestId"), data.get("status"), data.get("message")
    if not isinstance(request_id, str) or not isinstance(status, str) or status not in DECISIONS:
        return None
    if not (message is None or isinstance(message, str)) or not 0 < len(request_id) <= MAX_REQUEST_ID:
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
    """Record the decision on the webhooks' own Redis connections (a burst of reads cannot
    starve them); its follow-ups run after the answer, on the shared ones, and the worker
    finishes what they leave undone."""
    decision = _decision(body)
    if decision is None:
        return _answer(400, "expected a cancellation.decided event with requestId, status and message")
    request_id, status, message = decision
    store = services.webhook_store
    if not await store.first_delivery(source_id, message_id, REPLAY_WINDOW):
        return _answer(200, "duplicate")
    try:
        record = await store.get(request_id)
        if record is None or record.source_id != source_id:
            await store.record_orphan(source_id, request_id, status, message)
            log.warning("webhook.unknown_request", source=source_id)
            services.metrics.webhook_orphans.labels(source_id).inc()
            return _answer(202, "recorded; no such request here")
        decided = await store.decide(record, status, message, now())
    except BaseException:
        await store.forget_delivery(source_id, message_id)
        raise
    if decided is None:
        return _answer(200, "recorded")
    log.info("cancellation.decided", source=source_id, status=status)
    return _answer(200, "recorded", BackgroundTask(_finish, services, decided))


async def _finish(services: Services, record: CancellationRecord) -> None:
    try:
        await services.cancellations.finish(record)
    except (RedisError, OSError) as exc:
        log.warning("webhook.follow_up_deferred", error=type(exc).__name__)
