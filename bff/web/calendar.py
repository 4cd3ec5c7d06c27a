"""`GET /calendar.ics`: the viewer's (or, with `onBehalfOf`, a represented person's)
coming appointments as an RFC 5545 calendar (icalendar), with a VTIMEZONE for
Europe/Oslo so every calendar app shows the right local time, UIDs that stay the same
from one download to the next, and cancelled appointments as STATUS:CANCELLED.

It runs the same GraphQL query the web client would, so every rule — routing,
visibility, representation, audit — applies unchanged."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from icalendar import Calendar, Event
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bff.domain.timez import OSLO, now

MAX_PAGES = 10
DEFAULT_DURATION = timedelta(minutes=30)
UID_DOMAIN = "timeavtaler.helsenorge.invalid"
QUERY = """query Calendar($on: ID, $after: String) {
  appointments(first: 100, after: $after, onBehalfOf: $on) {
    pageInfo { hasNextPage endCursor }
    nodes { id title status confirmed start end kind organization department practitioner cancelledBy
            location { name address } source { name } }
  }
}"""
STATUS = {"CANCELLED": "CANCELLED"}
Execute = Callable[[Request, str, dict[str, Any]], Awaitable[Any]]


def _event(node: dict[str, Any], stamp: datetime) -> Event:
    event = Event()
    event.add("uid", f"{hashlib.sha256(node['id'].encode()).hexdigest()[:32]}@{UID_DOMAIN}")
    event.add("dtstamp", stamp)
    start = datetime.fromisoformat(node["start"]).astimezone(OSLO)
    end = datetime.fromisoformat(node["end"]).astimezone(OSLO) if node.get("end") else start + DEFAULT_DURATION
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", node.get("title") or "Timeavtale")
    place = ", ".join(p for p in ((node.get("location") or {}).get("name"), (node.get("location") or {}).get("address"))
                      if p)
    if place:
        event.add("location", place)
    details = [node.get("organization"), node.get("department"), node.get("practitioner"),
               f"Kilde: {node['source']['name']}"]
    event.add("description", "\n".join(d for d in details if d))
    status = STATUS.get(node["status"]) or ("TENTATIVE" if not node.get("confirmed", True) else "CONFIRMED")
    event.add("status", status)
    return event


def render(nodes: list[dict[str, Any]]) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Timeavtaler BFF//timeavtaler//NO")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", "Timeavtaler")
    calendar.add("x-wr-timezone", "Europe/Oslo")
    stamp = now().astimezone(OSLO)
    for node in nodes:
        calendar.add_component(_event(node, stamp))
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


async def calendar_endpoint(request: Request, execute: Execute) -> Response:
    """Page through the list and answer with the calendar (or the GraphQL error, as JSON)."""
    on_behalf_of = request.query_params.get("onBehalfOf")
    nodes: list[dict[str, Any]] = []
    after = None
    for _ in range(MAX_PAGES):
        result = await execute(request, QUERY, {"on": on_behalf_of, "after": after})
        if result.errors:
            error = result.errors[0]
            code = (error.extensions or {}).get("code", "BAD_REQUEST")
            status = 404 if code == "NOT_FOUND" else 503 if code == "UNAVAILABLE" else 400
            return JSONResponse({"errors": [{"message": error.message, "extensions": {"code": code}}]},
                                status_code=status)
        page = result.data["appointments"]
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    return Response(render(nodes), media_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="timeavtaler.ics"'})
