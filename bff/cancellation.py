"""Cancelling an appointment: the request, the provider's answer, and what follows it.

Nothing is lost: a request is stored (PENDING) before it is sent; sending is retried
with the same request id (providers are idempotent on it) until the provider takes it;
it ends FAILED only when the provider refuses it outright. A decision — from the
provider's synchronous answer, its webhook or the poller — is recorded once, then
appended to the requester's event stream, notified (varsel) once, and the cached list
invalidated; the worker finishes any of these a crash left undone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from bff.cache import AppointmentCache
from bff.cancel_store import (
    ACCEPTED,
    FAILED,
    PENDING,
    REJECTED,
    CancellationRecord,
    CancellationStore,
    digest,
)
from bff.domain import Appointment
from bff.notifications import decision_notification
from bff.rules import cancel_refusal
from bff.sources import SourceConfig
from bff.timez import now, today
from connectors.base import (
    CancelAnswer,
    CancelConnector,
    CancelStatus,
    SourceRejected,
    SourceUnavailable,
    UpstreamError,
)
from connectors.notifier import HttpNotifier

log = structlog.get_logger(__name__)
SEND_ATTEMPTS = 3
REPLAY_WAIT = 3.0
"""Seconds a duplicate request waits for the first one's record to appear."""
NOTIFY_LEASE_MS = 30_000
REFUSED_TEXT = "Tilbyderen tok ikke imot avbestillingen."
STATUS_OF = {CancelStatus.ACCEPTED: ACCEPTED, CancelStatus.REJECTED: REJECTED}

MESSAGES = {
    "NOT_FOUND": "Fant ikke avtalen.",
    "SOURCE_CANNOT_CANCEL": "Denne tilbyderen tar ikke imot avbestillinger her ennå.",
    "NOT_CANCELLABLE": "Denne avtalen kan ikke avbestilles her. Kontakt tilbyderen.",
    "ALREADY_CANCELLED": "Avtalen er allerede avlyst.",
    "IN_THE_PAST": "Avtalen har allerede startet eller er forbi.",
    "TOO_CLOSE_TO_START": "Det er for kort tid til avtalen til å avbestille her. Kontakt tilbyderen.",
    "REQUEST_PENDING": "Det er allerede sendt en avbestilling som venter på svar.",
    "IDEMPOTENCY_KEY_REUSED": "Denne idempotensnøkkelen er brukt for en annen forespørsel.",
    "IN_PROGRESS": "Forespørselen med denne nøkkelen behandles fortsatt. Prøv igjen om litt.",
    "INVALID_INPUT": "Ugyldig forespørsel.",
}


@dataclass(frozen=True, slots=True)
class Target:
    """The appointment to cancel, as the viewer may see it."""

    subject_pid: str
    source: SourceConfig
    appointment: Appointment


@dataclass(frozen=True, slots=True)
class Outcome:
    """The mutation's answer: a request, or a refusal with a stable code."""

    record: CancellationRecord | None = None
    code: str | None = None

    @property
    def message(self) -> str | None:
        return MESSAGES.get(self.code) if self.code else None


class CancellationService:
    """Takes cancellation requests and records providers' decisions."""

    def __init__(self, store: CancellationStore, cancellers: Mapping[str, CancelConnector],
                 notifier: HttpNotifier | None, cache: AppointmentCache) -> None:
        self._store = store
        self._cancellers = cancellers
        self._notifier = notifier
        self._cache = cache

    @property
    def store(self) -> CancellationStore:
        return self._store

    async def request(self, actor_pid: str, appointment_id: str, key: str, reason: str | None,
                      find: Callable[[], Awaitable[Target | None]]) -> Outcome:
        fingerprint = digest(f"{appointment_id}\0{reason or ''}")
        existing = await self._store.peek_idempotency(actor_pid, key)
        if existing is not None:
            return await self._replay(existing, fingerprint)
        target = await find()
        if target is None:
            return Outcome(code="NOT_FOUND")
        refusal = cancel_refusal(target.source, target.appointment, now())
        if refusal is not None:
            return Outcome(code=refusal)
        record = _new_record(actor_pid, target, reason)
        taken = await self._store.claim_idempotency(actor_pid, key, record.request_id, fingerprint)
        if taken is not None:
            return await self._replay(taken, fingerprint)
        if await self._store.claim_slot(record) is not None:
            await self._store.release_idempotency(actor_pid, key)
            return Outcome(code="REQUEST_PENDING")
        await self._store.create(record)
        await self._cache.bump([record.subject_pid, record.actor_pid])
        return Outcome(record=await self.send(record))

    async def _replay(self, existing: str, fingerprint: str) -> Outcome:
        request_id, _, stored = existing.partition("|")
        if stored != fingerprint:
            return Outcome(code="IDEMPOTENCY_KEY_REUSED")
        loop = asyncio.get_running_loop()
        until = loop.time() + REPLAY_WAIT
        while loop.time() < until:
            record = await self._store.get(request_id)
            if record is not None:
                return Outcome(record=record)
            await asyncio.sleep(0.02)
        return Outcome(code="IN_PROGRESS")

    async def send(self, record: CancellationRecord) -> CancellationRecord:
        """Send a stored request; a provider that is down leaves it PENDING for the worker."""
        canceller = self._cancellers[record.source_id]
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(SEND_ATTEMPTS), reraise=True,
                                               retry=retry_if_exception_type(SourceUnavailable),
                                               wait=wait_exponential_jitter(multiplier=0.1, max=1.0, jitter=0.1)):
                with attempt:
                    answer = await canceller.cancel(record.subject_pid, record.upstream_id, record.request_id,
                                                    record.reason)
        except SourceRejected as exc:
            log.info("cancellation.refused", source=record.source_id, status=exc.status)
            return await self.decide(record.request_id, FAILED, exc.message or REFUSED_TEXT) or record
        except UpstreamError as exc:
            log.warning("cancellation.send_failed", source=record.source_id, kind=exc.kind)
            return record
        await self._store.mark(record.request_id, "sent")
        return await self._apply(record, answer)

    async def poll(self, record: CancellationRecord) -> CancellationRecord:
        """Ask the provider about a request still pending (its webhook may have been lost)."""
        try:
            answer = await self._cancellers[record.source_id].poll(record.subject_pid, record.upstream_id,
                                                                   record.request_id)
        except UpstreamError as exc:
            log.warning("cancellation.poll_failed", source=record.source_id, kind=exc.kind)
            return record
        return await self._apply(record, answer)

    async def _apply(self, record: CancellationRecord, answer: CancelAnswer) -> CancellationRecord:
        if answer.status is CancelStatus.PENDING:
            return await self._store.get(record.request_id) or record
        return await self.decide(record.request_id, STATUS_OF[answer.status], answer.message) or record

    async def decide(self, request_id: str, status: str, message: str | None) -> CancellationRecord | None:
        """Record a decision once; every later call for the same request changes nothing."""
        decided = await self._store.decide(request_id, status, message, now())
        if decided is None:
            return await self._store.get(request_id)
        await self._cache.bump([decided.subject_pid, decided.actor_pid])
        log.info("cancellation.decided", source=decided.source_id, status=status)
        await self.finish(decided)
        return decided

    async def finish(self, record: CancellationRecord) -> None:
        """The follow-ups of a decision, each done once; what fails is left for the worker."""
        if not record.settled:
            await self._cache.invalidate(record.source_id, record.subject_pid, today())
            await self._store.mark(record.request_id, "settled")
        if not record.evented:
            await self._store.append_event(record)
            await self._store.mark(record.request_id, "evented")
        if record.status in (ACCEPTED, REJECTED) and not record.notified and not await self._notify(record):
            return
        await self._store.done(record.request_id)

    async def _notify(self, record: CancellationRecord) -> bool:
        if self._notifier is None:
            return True
        lock = f"notify:{record.request_id}"
        token = await self._store.try_lock(lock, NOTIFY_LEASE_MS)
        if token is None:
            return False
        try:
            current = await self._store.get(record.request_id)
            if current is not None and current.notified:
                return True
            await self._notifier.send(decision_notification(record).payload(), record.request_id)
            await self._store.mark(record.request_id, "notified")
            return True
        except UpstreamError as exc:
            log.warning("notification.failed", kind=exc.kind)
            return False
        finally:
            await self._store.unlock(lock, token)


def _new_record(actor_pid: str, target: Target, reason: str | None) -> CancellationRecord:
    appt = target.appointment
    return CancellationRecord(
        request_id=str(uuid.uuid4()), actor_pid=actor_pid, subject_pid=target.subject_pid,
        source_id=target.source.id, upstream_id=appt.upstream_id, status=PENDING,
        requested_at=now().isoformat(), reason=reason, title=appt.title,
        service=appt.service.value if appt.service else None, start=appt.start.isoformat(),
        organization=appt.organization,
    )
