"""Fault injection and call counting for the sandbox providers.

Every request is attributed to a *target*: a FHIR or municipal tenant (`helse-vest`,
`oslo`, …), `persons`, `varsel` or `helseid` (the token server). Per target the admin API
can add latency (with jitter), answer with an HTTP status, hang (a timeout for the
caller) or send a malformed body —
for every request, or for the next `times` requests only (a passing failure).
Calls are counted per target, with how many patients a FHIR search named (never who) and
the most requests the target had in progress at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

HANG_SECONDS = 30.0
MALFORMED_BODY = b'{"resourceType": "Bundle", "entry": [{"resource": '


@dataclass
class Fault:
    """What to do to a target's requests."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    status: int | None = None
    hang: bool = False
    malformed: bool = False
    times: int | None = None
    """Requests still to treat so (then the target heals); None: all of them."""

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Fault:
        return cls(
            latency_ms=float(body.get("latency_ms", 0)),
            jitter_ms=float(body.get("jitter_ms", 0)),
            status=int(body["status"]) if body.get("status") is not None else None,
            hang=bool(body.get("timeout", False)),
            malformed=bool(body.get("malformed", False)),
            times=int(body["times"]) if body.get("times") is not None else None,
        )


@dataclass
class CallLog:
    """Counts of calls per target, and patients named per FHIR search."""

    calls: Counter[str] = field(default_factory=Counter)
    patients_per_search: list[tuple[str, int]] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_at_once: Counter[str] = field(default_factory=Counter)
    """The most requests a target had in progress at the same time."""
    traces: Counter[str] = field(default_factory=Counter)
    """Calls per W3C trace id their `traceparent` named."""

    def reset(self) -> None:
        self.calls.clear()
        self.traces.clear()
        self.patients_per_search.clear()
        self.most_at_once.clear()


def target_of(path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] in ("fhir", "kommune"):
        return parts[1]
    if parts and parts[0] in ("persons", "varsel", "helseid"):
        return parts[0]
    return None


class FaultMiddleware:
    """Applies the configured fault of a request's target and counts the call."""

    def __init__(self, app: ASGIApp, faults: dict[str, Fault], log: CallLog) -> None:
        self.app = app
        self.faults = faults
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = target_of(scope.get("path", "")) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        self.log.calls[target] += 1
        traceparent = dict(scope.get("headers") or []).get(b"traceparent", b"").decode("latin-1").split("-")
        if len(traceparent) == 4:
            self.log.traces[traceparent[1]] += 1
        if scope["path"].endswith("/Appointment") and scope["method"] == "GET":
            query = scope.get("query_string", b"").decode()
            self.log.patients_per_search.append((target, _patients_in(query)))
        self.log.in_flight[target] += 1
        self.log.most_at_once[target] = max(self.log.most_at_once[target], self.log.in_flight[target])
        try:
            fault = self.faults.get(target)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[target]
            if fault is None:
                await self.app(scope, receive, send)
            else:
                await self._apply(fault, scope, receive, send)
        finally:
            self.log.in_flight[target] -= 1

    async def _apply(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        delay = fault.latency_ms + (random.uniform(-fault.jitter_ms, fault.jitter_ms) if fault.jitter_ms else 0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if fault.hang:
            await _hang(receive)
        if fault.status is not None:
            await _respond(send, fault.status, b'{"error": "injected failure"}')
        elif fault.malformed:
            await _respond(send, 200, MALFORMED_BODY)
        else:
            await self.app(scope, receive, send)


async def _hang(receive: Receive) -> None:
    """Say nothing until the caller gives up (disconnects) or HANG_SECONDS pass."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), HANG_SECONDS)


def _patients_in(query: str) -> int:
    from urllib.parse import parse_qs

    values = parse_qs(query).get("patient:identifier", [""])
    return len([v for v in values[0].split(",") if v])


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
