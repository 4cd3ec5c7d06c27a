"""Cancellation end to end over real HTTP/WebSocket and real Redis: request, the
provider's answer (webhook or poll), live push, notification and the updated list."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.conftest import Bff, Sandbox
from tests.resolvers.queries import LIST, rows
from tests.ws_client import GraphQLWebSocket

CANCEL = """
mutation Cancel($input: RequestCancellationInput!) {
  requestCancellation(input: $input) {
    request { id status reason providerMessage requestedAt decidedAt appointment { id title status } }
    errors { code message }
  }
}
"""
UPDATES = """
subscription Updates($after: String) {
  cancellationUpdates(after: $after) {
    cursor
    request { id status providerMessage decidedAt appointment { title status cancelledBy } }
  }
}
"""
REQUEST = "query R($id: ID!) { cancellationRequest(id: $id) { id status providerMessage } }"


async def bergen_visit(bff: Bff, title: str = "Praktisk bistand", status: str = "BOOKED", index: int = 0) -> dict:
    data = await bff.query(LIST, {"filter": {"sourceIds": ["bergen-kommune"]}}, who="asane")
    visits = [r for r in rows(data) if r["title"] == title and r["status"] == status and r["canCancel"]]
    return visits[index]


async def cancel(bff: Bff, appointment_id: str, key: str | None = None, reason: str | None = "Er bortreist",
                 who: str = "asane") -> dict[str, Any]:
    given = {"appointmentId": appointment_id, "idempotencyKey": key or str(uuid.uuid4()), "reason": reason}
    data = await bff.query(CANCEL, {"input": given}, who=who)
    return dict(data["requestCancellation"])


async def subscribe(bff: Bff, after: str | None = None, who: str = "asane") -> GraphQLWebSocket:
    ws = GraphQLWebSocket(bff.url)
    ack = await ws.connect({"Authorization": f"Bearer {bff.token(who)}"})
    assert ack["type"] == "connection_ack"
    await ws.subscribe("1", UPDATES, {"after": after})
    await asyncio.sleep(0.2)  # let the server register the subscription before anything happens
    return ws


async def wait_for(check: Any, timeout: float = 8.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def test_accepted_flow_from_mutation_to_event_to_notification_to_list(bff: Bff, sandbox: Sandbox) -> None:
    visit = await bergen_visit(bff, index=1)
    ws = await subscribe(bff)
    try:
        payload = await cancel(bff, visit["id"])
        assert payload["errors"] == []
        request = payload["request"]
        assert request["status"] == "PENDING" and request["reason"] == "Er bortreist"
        assert request["appointment"]["id"] == visit["id"]
        event = (await ws.next())["data"]["cancellationUpdates"]
    finally:
        await ws.close()
    assert event["request"]["id"] == request["id"]
    assert event["request"]["status"] == "ACCEPTED"
    assert event["request"]["providerMessage"] == "Avbestillingen er registrert."
    assert event["request"]["appointment"] == {"title": "Praktisk bistand", "status": "CANCELLED",
                                               "cancelledBy": "PATIENT"}
    notes = await wait_for(sandbox.notifications)
    assert len(notes) == 1
    note = notes[0]
    assert note["kind"] == "cancellation.decided" and note["outcome"] == "accepted"
    assert note["title"] == "Avbestillingen er godtatt"
    start = datetime.fromisoformat(visit["start"])
    assert "Bergen kommune har godtatt avbestillingen av praktisk bistand" in note["text"]
    assert f"{start.day}. " in note["text"] and f"kl. {start.hour:02d}.{start.minute:02d}" in note["text"]
    listed = next(r for r in rows(await bff.query(LIST, who="asane")) if r["id"] == visit["id"])
    assert (listed["status"], listed["cancelledBy"], listed["canCancel"]) == ("CANCELLED", "PATIENT", False)
    again = await bff.query(REQUEST, {"id": request["id"]}, who="asane")
    assert again["cancellationRequest"]["status"] == "ACCEPTED"


async def test_rejected_flow_keeps_the_appointment_with_the_rejected_request(bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.municipal("bergen", notice_hours=24 * 30)
    visit = await bergen_visit(bff)
    ws = await subscribe(bff)
    try:
        request = (await cancel(bff, visit["id"]))["request"]
        event = (await ws.next())["data"]["cancellationUpdates"]
    finally:
        await ws.close()
    assert event["request"]["status"] == "REJECTED"
    assert "kan ikke avbestilles" in event["request"]["providerMessage"]
    notes = await wait_for(sandbox.notifications)
    assert [n["outcome"] for n in notes] == ["rejected"]
    assert notes[0]["title"] == "Avbestillingen er avslått"
    assert "Avtalen gjelder fortsatt" in notes[0]["text"] and "Melding:" in notes[0]["text"]
    listed = next(r for r in rows(await bff.query(LIST, who="asane")) if r["id"] == visit["id"])
    assert listed["status"] == "BOOKED" and listed["canCancel"] is True
    detail = await bff.query("query($id: ID!) { appointment(id: $id) { cancellation { id status } } }",
                             {"id": visit["id"]}, who="asane")
    assert detail["appointment"]["cancellation"] == {"id": request["id"], "status": "REJECTED"}


async def test_the_same_key_and_input_return_the_same_request_and_send_once(bff: Bff, sandbox: Sandbox) -> None:
    visit = await bergen_visit(bff)
    first = await cancel(bff, visit["id"], key="key-1")
    second = await cancel(bff, visit["id"], key="key-1")
    assert first["request"]["id"] == second["request"]["id"]
    other = await cancel(bff, visit["id"], key="key-1", reason="En annen grunn")
    assert other["request"] is None and other["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(await sandbox.cancellation_requests()) == 1


async def test_fifty_concurrent_duplicates_make_one_upstream_request(bff: Bff, sandbox: Sandbox, make_bff: Any) -> None:
    other = await make_bff()
    visit = await bergen_visit(bff)
    key = str(uuid.uuid4())
    answers = await asyncio.gather(*((bff, other)[i % 2].query(CANCEL, {"input": {
        "appointmentId": visit["id"], "idempotencyKey": key, "reason": None}}, who="asane") for i in range(50)))
    ids = {a["requestCancellation"]["request"]["id"] for a in answers}
    assert len(ids) == 1
    assert all(a["requestCancellation"]["errors"] == [] for a in answers)
    assert len(await sandbox.cancellation_requests()) == 1


async def test_a_second_request_while_one_is_pending_is_refused(bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.municipal("bergen", delay_ms=5000)
    visit = await bergen_visit(bff)
    assert (await cancel(bff, visit["id"]))["errors"] == []
    second = await cancel(bff, visit["id"])
    assert second["errors"][0]["code"] == "REQUEST_PENDING"
    listed = next(r for r in rows(await bff.query(LIST, who="asane")) if r["id"] == visit["id"])
    assert listed["canCancel"] is False


async def test_clear_user_errors_with_stable_codes(bff: Bff) -> None:
    data = await bff.query(LIST, who="asane")
    by_title = {(r["title"], r["status"]): r for r in rows(data)}
    hospital = by_title[("Kontroll etter grå stær", "BOOKED")]
    cancelled = by_title[("Praktisk bistand", "CANCELLED")]
    tonight = by_title[("Hjemmesykepleie", "BOOKED")]
    # The sandbox's "tonight" visit is at 23:30 today in Oslo: inside Bergen's 24-hour notice
    # until then, and in the past for the rest of the evening (when CI may well run).
    started = datetime.fromisoformat(tonight["start"]) <= datetime.now(UTC)
    cases = {
        "NOT_FOUND": "not-an-id",
        "SOURCE_CANNOT_CANCEL": hospital["id"],
        "ALREADY_CANCELLED": cancelled["id"],
        "IN_THE_PAST" if started else "TOO_CLOSE_TO_START": tonight["id"],
    }
    for code, appointment_id in cases.items():
        answer = await cancel(bff, appointment_id)
        assert answer["request"] is None
        assert answer["errors"][0]["code"] == code, code
        assert answer["errors"][0]["message"]
    frogner = rows(await bff.query(LIST, who="frogner"))[0]["id"]
    assert (await cancel(bff, frogner, who="asane"))["errors"][0]["code"] == "NOT_FOUND"
    blank = await cancel(bff, hospital["id"], key="   ")
    assert blank["errors"][0]["code"] == "INVALID_INPUT"


async def test_a_lost_webhook_is_recovered_by_polling(bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.municipal("bergen", drop_webhooks=True, delay_ms=100)
    visit = await bergen_visit(bff)
    request = (await cancel(bff, visit["id"]))["request"]

    async def decided() -> Any:
        answer = await bff.query(REQUEST, {"id": request["id"]}, who="asane")
        return answer["cancellationRequest"]["status"] != "PENDING" and answer

    answer = await wait_for(decided)
    assert answer["cancellationRequest"]["status"] == "ACCEPTED"
    assert len(await wait_for(sandbox.notifications)) == 1


async def test_resume_with_after_replays_history_and_continues_after_a_cursor(bff: Bff) -> None:
    first_visit = await bergen_visit(bff, index=0)
    second_visit = await bergen_visit(bff, index=1)
    ws = await subscribe(bff)
    try:
        await cancel(bff, first_visit["id"])
        first = (await ws.next())["data"]["cancellationUpdates"]
        await cancel(bff, second_visit["id"])
        second = (await ws.next())["data"]["cancellationUpdates"]
    finally:
        await ws.close()
    replay = await subscribe(bff, after="0")
    try:
        cursors = [(await replay.next())["data"]["cancellationUpdates"]["cursor"] for _ in range(2)]
    finally:
        await replay.close()
    assert cursors == [first["cursor"], second["cursor"]]
    resumed = await subscribe(bff, after=first["cursor"])
    try:
        assert (await resumed.next())["data"]["cancellationUpdates"]["request"]["id"] == second["request"]["id"]
    finally:
        await resumed.close()


async def test_an_outcome_recorded_on_one_instance_reaches_a_subscriber_on_another(
        bff: Bff, make_bff: Any) -> None:
    other = await make_bff()
    visit = await bergen_visit(bff)
    ws = await subscribe(other)
    try:
        request = (await cancel(bff, visit["id"]))["request"]
        event = (await ws.next())["data"]["cancellationUpdates"]
    finally:
        await ws.close()
    assert event["request"]["id"] == request["id"] and event["request"]["status"] == "ACCEPTED"


async def test_legacy_graphql_ws_protocol_delivers_outcomes(bff: Bff) -> None:
    visit = await bergen_visit(bff)
    ws = GraphQLWebSocket(bff.url, protocol="graphql-ws")
    assert (await ws.connect({"Authorization": f"Bearer {bff.token('asane')}"}))["type"] == "connection_ack"
    await ws.subscribe("1", UPDATES, {"after": None})
    await asyncio.sleep(0.2)
    try:
        request = (await cancel(bff, visit["id"]))["request"]
        assert (await ws.next())["data"]["cancellationUpdates"]["request"]["id"] == request["id"]
    finally:
        await ws.close()


async def test_a_connection_without_a_valid_token_is_refused(bff: Bff) -> None:
    ws = GraphQLWebSocket(bff.url)
    from websockets.exceptions import ConnectionClosed

    try:
        reply = await ws.connect({"Authorization": "Bearer nonsense"})
        raise AssertionError(f"expected the server to close, got {reply}")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 4403
