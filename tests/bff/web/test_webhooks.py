"""POST /webhooks/{sourceId}: Standard Webhooks signatures, replays, forgeries and
malformed input — never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from standardwebhooks import Webhook

from tests.conftest import BERGEN_SECRET, CLUSTER, Bff, Sandbox
from tests.resolvers.test_cancellation import REQUEST, bergen_visit, cancel, wait_for

assert BERGEN_SECRET is not None


def signed(body: str, secret: str = BERGEN_SECRET or "", message_id: str | None = None,
           at: datetime | None = None) -> dict[str, str]:
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, at, body), "content-type": "application/json"}


def decision(request_id: str, status: str = "accepted", message: str | None = "OK fra bydelen") -> str:
    return json.dumps({"type": "cancellation.decided", "data": {"requestId": request_id, "status": status,
                                                                 "message": message}})


async def pending_request(bff: Bff, sandbox: Sandbox) -> str:
    """A Bergen request the sandbox will not answer by itself (it decides too late)."""
    await sandbox.municipal("bergen", delay_ms=60_000)
    visit = await bergen_visit(bff)
    request = (await cancel(bff, visit["id"]))["request"]
    assert request["status"] == "PENDING"
    ids = bff.settings.secret_for_ids
    from bff.domain.ids import Ids

    parts = Ids(ids).decode("C", request["id"])
    assert parts is not None
    return parts[0]


async def post(bff: Bff, body: str | bytes, headers: dict[str, str], source: str = "bergen-kommune") -> Any:
    return await bff.http.post(f"{bff.url}/webhooks/{source}", content=body, headers=headers)


async def test_a_signed_decision_is_recorded_once_and_a_replay_is_ignored(bff: Bff, sandbox: Sandbox) -> None:
    request_id = await pending_request(bff, sandbox)
    body = decision(request_id)
    headers = signed(body)
    first = await post(bff, body, headers)
    replay = await post(bff, body, headers)
    assert (first.status_code, first.json()["status"]) == (200, "recorded")
    assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")
    # The same decision again under a new message id changes nothing either.
    assert (await post(bff, body, signed(body))).status_code == 200
    await wait_for(sandbox.notifications)
    await asyncio.sleep(1.0)  # time for any second notification the worker might wrongly send
    notes = await sandbox.notifications()
    assert len(notes) == 1 and "OK fra bydelen" in notes[0]["text"]


async def test_a_later_contradicting_decision_does_not_change_the_first(bff: Bff, sandbox: Sandbox) -> None:
    request_id = await pending_request(bff, sandbox)
    assert (await post(bff, decision(request_id, "rejected", "Nei"), signed(decision(request_id, "rejected", "Nei")))
            ).status_code == 200
    body = decision(request_id, "accepted")
    assert (await post(bff, body, signed(body))).status_code == 200
    from bff.domain.ids import Ids

    answer = await bff.query(REQUEST, {"id": Ids(bff.settings.secret_for_ids).encode(
        "C", request_id, Ids(bff.settings.secret_for_ids).pseudonym(_pid("asane")))}, who="asane")
    assert answer["cancellationRequest"]["status"] == "REJECTED"


def _pid(handle: str) -> str:
    from tests.conftest import PEOPLE

    return PEOPLE[handle].pid


@pytest.mark.parametrize("forgery", ["wrong-secret", "tampered-body", "old", "future", "no-signature",
                                     "garbage-signature", "bad-timestamp", "v2-only"])
async def test_forged_or_malformed_signatures_are_401(bff: Bff, sandbox: Sandbox, forgery: str) -> None:
    request_id = await pending_request(bff, sandbox)
    body = decision(request_id)
    headers = signed(body)
    if forgery == "wrong-secret":
        headers = signed(body, secret="whsec_" + "QUJD" * 8)
    elif forgery == "tampered-body":
        body = decision(request_id, "rejected")
    elif forgery == "old":
        headers = signed(body, at=datetime.now(UTC) - timedelta(minutes=6))
    elif forgery == "future":
        headers = signed(body, at=datetime.now(UTC) + timedelta(minutes=6))
    elif forgery == "no-signature":
        del headers["webhook-signature"]
    elif forgery == "garbage-signature":
        headers["webhook-signature"] = "v1,%%%not-base64"
    elif forgery == "bad-timestamp":
        headers["webhook-timestamp"] = "nan"
    else:
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    response = await post(bff, body, headers)
    assert response.status_code == 401
    from bff.domain.ids import Ids

    ids = Ids(bff.settings.secret_for_ids)
    answer = await bff.query(REQUEST, {"id": ids.encode("C", request_id, ids.pseudonym(_pid("asane")))}, who="asane")
    assert answer["cancellationRequest"]["status"] == "PENDING"


@pytest.mark.parametrize(("body", "expected"), [
    ("not json", 400),
    ('{"type": "something.else", "data": {}}', 400),
    ('{"type": "cancellation.decided", "data": {"requestId": 5, "status": "accepted"}}', 400),
    ('{"type": "cancellation.decided", "data": {"requestId": "x", "status": "maybe"}}', 400),
    ('{"type": "cancellation.decided", "data": {"requestId": "x", "status": ["accepted"]}}', 400),
    ('{"type": "cancellation.decided", "data": {"requestId": "x", "status": {"a": 1}}}', 400),
    ('{"type": "cancellation.decided", "data": {"requestId": "x", "status": "accepted", "message": 7}}', 400),
    ('{"type": "cancellation.decided", "data": {"requestId": "", "status": "accepted"}}', 400),
    ("[]", 400),
    ("\u00ff\u00fe", 400),
])
async def test_malformed_bodies_get_a_clear_4xx(bff: Bff, body: str, expected: int) -> None:
    response = await post(bff, body, signed(body))
    assert response.status_code == expected
    assert response.json()["status"] == "error"


async def test_an_answer_about_an_unknown_request_is_kept_and_acknowledged(bff: Bff) -> None:
    """The provider is the truth: an answer about a request this BFF lost (or never made)
    is kept for operators and acknowledged, so the provider does not keep sending it."""
    body = decision(str(uuid.uuid4()))
    response = await post(bff, body, signed(body))
    assert response.status_code == 202, response.text
    metrics = (await bff.http.get(f"{bff.url}/metrics")).text
    assert 'bff_webhook_unknown_requests_total{source="bergen-kommune"}' in metrics


async def test_unknown_source_and_oversized_body(bff: Bff) -> None:
    body = decision("x")
    assert (await post(bff, body, signed(body), source="helse-vest")).status_code == 404
    assert (await post(bff, body, signed(body), source="nowhere")).status_code == 404
    huge = "x" * (70 * 1024)
    assert (await post(bff, huge, signed(huge))).status_code == 413


async def test_raw_garbage_headers_never_cause_a_500(bff: Bff) -> None:
    for headers in ({}, {"webhook-id": "", "webhook-timestamp": "", "webhook-signature": ""},
                    {"webhook-id": "a", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1"},
                    {"webhook-id": "a", "webhook-timestamp": "1e309", "webhook-signature": "v1,AAAA v1,,,"}):
        response = await bff.http.post(f"{bff.url}/webhooks/bergen-kommune", content=b"{}", headers=headers)
        assert response.status_code == 401


@pytest.mark.skipif(CLUSTER, reason="a cluster client's pools are per node and fail instead of waiting: "
                                     "there is no one shared pool to exhaust")
async def test_webhooks_are_answered_while_every_shared_redis_connection_is_busy(bff: Bff, sandbox: Sandbox) -> None:
    """Webhooks have Redis connections of their own: with the shared pool held by a burst
    (here: every connection blocked until the answers are in), 200 provider answers are still taken —
    none gets a 503 that the provider would have to send again."""
    from bff.store.connection import POOL_SIZE

    request_id = await pending_request(bff, sandbox)
    shared = bff.app.state.services.redis

    answered = asyncio.Event()

    async def hold() -> None:
        # Until the webhooks are answered (30 s at most): BLPOPs of 0.4 s back to back. One
        # that finds no free connection (the worker holds some too) waits a second for one,
        # or its BLPOP outlasts the socket timeout on a busy machine: the pool is exhausted
        # either way.
        for _ in range(75):
            if answered.is_set():
                return
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                await shared.blpop([f"{uuid.uuid4().hex}:never"], timeout=0.4)

    holders = [asyncio.create_task(hold()) for _ in range(POOL_SIZE)]
    await asyncio.sleep(0.1)
    bodies = [decision(request_id)] + [decision(str(uuid.uuid4())) for _ in range(199)]
    answers = await asyncio.gather(*(post(bff, body, signed(body)) for body in bodies))
    still_busy = not all(h.done() for h in holders)
    answered.set()
    await asyncio.gather(*holders)
    assert still_busy, "the shared pool was released before the webhooks were answered"
    assert sorted({a.status_code for a in answers}) == [200, 202], [a.text for a in answers if a.status_code >= 300]
    record = await bff.app.state.services.cancellations.store.get(request_id)
    assert record is not None and record.status == "ACCEPTED"
