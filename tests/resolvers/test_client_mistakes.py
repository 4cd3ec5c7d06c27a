"""A client's mistake gets a clear, stable answer — never INTERNAL, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Bff
from tests.redis_process import RedisProcess
from tests.resolvers.queries import LIST
from tests.resolvers.test_cancellation import CANCEL, bergen_visit


def codes(body: dict[str, Any]) -> list[str]:
    return [(e.get("extensions") or {}).get("code", "") for e in body.get("errors") or []]


async def test_a_subscription_sent_over_http_post_is_told_to_use_a_websocket(bff: Bff) -> None:
    response = await bff.post("subscription { cancellationUpdates { cursor } }")
    assert response.status_code in (400, 405), response.text
    body = response.json()
    assert "INTERNAL" not in codes(body)
    assert "WebSocket" in body["errors"][0]["message"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
                                  "9999-12-31T23:00:00+00:00"])
async def test_dates_at_the_edge_of_the_calendar_are_bad_input(bff: Bff, when: str) -> None:
    for window in ({"from": when}, {"to": when}, {"from": when, "includePast": True}):
        response = await bff.post(LIST, {"filter": window})
        assert response.status_code in (200, 400), response.text
        body = response.json()
        assert "INTERNAL" not in codes(body), body
        if body.get("errors"):
            assert codes(body) == ["BAD_USER_INPUT"], body


async def test_a_cancellation_while_redis_is_down_says_to_try_again(make_bff: Any) -> None:
    own = RedisProcess().start()
    try:
        isolated = await make_bff(redis_url=own.url)
        visit = await bergen_visit(isolated)
        asked = {"input": {"appointmentId": visit["id"], "idempotencyKey": "k-outage"}}
        own.stop()
        response = await isolated.post(CANCEL, asked)
        assert response.status_code == 200, response.text
        payload = response.json()["data"]["requestCancellation"]
        assert payload["request"] is None
        assert [e["code"] for e in payload["errors"]] == ["TEMPORARILY_UNAVAILABLE"]
        assert "Prøv igjen" in payload["errors"][0]["message"]
        own.start()
        # Nothing was stored: the same key makes the request once Redis is back.
        again = await isolated.query(CANCEL, asked)
        assert again["requestCancellation"]["request"]["status"] == "PENDING"
    finally:
        own.stop()
