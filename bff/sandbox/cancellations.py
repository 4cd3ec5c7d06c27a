"""The sandbox's cancellation behaviour: municipalities decide asynchronously and push
the answer to the BFF's webhook (signed, Standard Webhooks); FHIR servers decide at once.

Per municipal tenant, `PUT /_admin/municipal/{tenant}` sets the decision `delay_ms`, the
`rule` (`notice`: reject inside `notice_hours` of the start, else accept; `accept`;
`reject`), `webhook_url`, `webhook_secret`, and `drop_webhooks` (decide, but never call
the BFF: a lost webhook)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson
from standardwebhooks import Webhook

from bff.domain.timez import now, parse_instant

DEFAULT_DELAY_MS = 300
DEFAULT_NOTICE_HOURS = 48
REJECTION_TEXT = "Besøket er nær forestående og kan ikke avbestilles nå. Ring bydelen."


@dataclass
class MunicipalPolicy:
    """How one sandbox municipality decides and answers."""

    delay_ms: float = DEFAULT_DELAY_MS
    rule: str = "notice"
    notice_hours: float = DEFAULT_NOTICE_HOURS
    webhook_url: str | None = None
    webhook_secret: str | None = None
    drop_webhooks: bool = False

    def update(self, body: dict[str, Any]) -> None:
        for name in ("delay_ms", "rule", "notice_hours", "webhook_url", "webhook_secret", "drop_webhooks"):
            if name in body:
                setattr(self, name, body[name])


@dataclass
class CancellationDesk:
    """Cancellation requests a sandbox municipality has received, and its decisions."""

    policies: dict[str, MunicipalPolicy] = field(default_factory=dict)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks_sent: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def policy(self, tenant: str) -> MunicipalPolicy:
        return self.policies.setdefault(tenant, MunicipalPolicy())

    def receive(self, tenant: str, visit: dict[str, Any], request_id: str, reason: str) -> dict[str, Any]:
        """Record a request (the same requestId again is the same request) and schedule its decision."""
        if request_id in self.requests:
            return self.requests[request_id]
        entry = {"requestId": request_id, "status": "pending", "message": None, "tenant": tenant,
                 "visit": visit["id"], "reason": reason}
        self.requests[request_id] = entry
        task = asyncio.create_task(self._decide_later(tenant, visit, entry))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return entry

    async def _decide_later(self, tenant: str, visit: dict[str, Any], entry: dict[str, Any]) -> None:
        policy = self.policy(tenant)
        await asyncio.sleep(policy.delay_ms / 1000)
        starts_in = parse_instant(visit["start"]) - now()
        reject = policy.rule == "reject" or (
            policy.rule == "notice" and starts_in < timedelta(hours=policy.notice_hours))
        if reject:
            entry.update(status="rejected", message=REJECTION_TEXT)
        else:
            entry.update(status="accepted", message="Avbestillingen er registrert.")
            visit.update(status="cancelled", cancelledBy="citizen")
        if not policy.drop_webhooks and policy.webhook_url and policy.webhook_secret:
            await self._push(policy, entry)

    async def _push(self, policy: MunicipalPolicy, entry: dict[str, Any]) -> None:
        body = orjson.dumps({"type": "cancellation.decided", "data": {
            "requestId": entry["requestId"], "status": entry["status"], "message": entry["message"]}}).decode()
        message_id = f"msg_{uuid.uuid4().hex}"
        at = datetime.now().astimezone()
        signature = Webhook(policy.webhook_secret or "").sign(message_id, at, body)
        headers = {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": signature, "content-type": "application/json"}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client, \
                    client.post(policy.webhook_url or "", data=body.encode(), headers=headers) as answer:
                await answer.read()
            self.webhooks_sent.append(entry["requestId"])
        except (aiohttp.ClientError, TimeoutError):
            pass
