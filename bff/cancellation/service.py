"""Cancelling an appointment: the request, the provider's answer, and what follows it.

Nothing is lost: a request is stored (PENDING) before it is sent; sending is retried
with the same request id (providers are idempotent on it) until the provider takes it;
it ends FAILED only when the provider refuses it outright. A decision — from the
provider's synchronous answer, its webhook or the poller — is recorded once, then
appended to the requester's event stream, notified (varsel) once, and the cached list
invalidated; the worker finishes any of these a crash left undone.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from bff.cancellation.notifications import decision_notification
from bff.cancellation.store import (
    REPAIR_AFTER,
    CancellationRecord,
    CancellationStore,
    Created,
    digest,
    new_request_id,
)
from bff.domain.access import CancelRefusal, cancel_refusal
from bff.domain.errors import Coded
from bff.domain.models import DECISIONS, Appointment, CancellationStatus
from bff.domain.rules import settled_by_provider
from bff.domain.sources import SourceConfig
from bff.domain.timez import now, today
from bff.runtime import tracing
from bff.store.audit import SELF, Actor, AuditLog
from bff.store.cache import AppointmentCache
from connectors.base import CancelAnswer, CancelConnector, Notifier, SourceRejected, SourceUnavailable, UpstreamError

log = structlog.get_logger(__name__)
SEND_ATTEMPTS = 3
CREATE_TRIES = 3
"""Tries to create a request when the first finds a half-made key and repairs it."""
NOTIFY_LEASE_MS = 30_000
REFUSED_TEXT = "Tilbyderen tok ikke imot avbestillingen."

class RequestProblem(Coded):
    """Why a mutation made no request, other than the access policy refusing it
    (`CancelRefusal`): the code (its name) and the message for the citizen (its value)."""

    NOT_FOUND = "Fant ikke avtalen."
    IDEMPOTENCY_KEY_REUSED = "Denne idempotensnøkkelen er brukt for en annen forespørsel."
    IN_PROGRESS = "Forespørselen med denne nøkkelen behandles fortsatt. Prøv igjen om litt."
    INVALID_INPUT = "Ugyldig forespørsel."
    TEMPORARILY_UNAVAILABLE = "Vi får ikke registrert avbestillingen akkurat nå. Prøv igjen om litt."


Problem = CancelRefusal | RequestProblem
ERROR_CODES = (*[r.code for r in CancelRefusal], *[p.code for p in RequestProblem])
"""Every code a cancellation mutation may answer with."""


@dataclass(frozen=True, slots=True)
class Target:
    """The appointment to cancel, as the viewer may see it, and whether a request for it is
    open (pending or accepted)."""

    subject_pid: str
    source: SourceConfig
    appointment: Appointment
    open_request: bool = False
    actor: Actor = SELF
    """Who the requester is to the subject."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The mutation's answer: a request, or why there is none."""

    record: CancellationRecord | None = None
    problem: Problem | None = None


class CancellationService:
    """Takes cancellation requests and records providers' decisions."""

    def __init__(self, store: CancellationStore, cancellers: Mapping[str, CancelConnector],
                 notifier: Notifier | None, cache: AppointmentCache, audit: AuditLog) -> None:
        self._audit = audit
        self._store = store
        self._cancellers = cancellers
        self._notifier = notifier
        self._cache = cache

    @property
    def store(self) -> CancellationStore:
        return self._store

    async def request(self, actor_pid: str, appointment_id: str, subject_pseudonym: str, key: str,
                      reason: str | None, find: Callable[[], Awaitable[Target | None]]) -> Outcome:
        """A new request for the appointment `find` locates, or the one `key` made before.
        `subject_pseudonym`: the pseudonym the appointment id names (its owner's)."""
        fingerprint = digest(f"{appointment_id}\0{reason or ''}")
        existing = await self._store.peek_idempotency(actor_pid, subject_pseudonym, key)
        if existing is not None:
            replayed = await self._replay(actor_pid, subject_pseudonym, key, existing, fingerprint)
            if replayed is not None:
                return replayed
        target = await find()
        if target is None:
            return Outcome(problem=RequestProblem.NOT_FOUND)
        refusal = cancel_refusal(target.source, target.appointment, now(), target.open_request)
        if refusal is not None:
            # The same key may have made the request meanwhile (elsewhere), and its effect
            # (the appointment cancelled) be what is refused here: that key gets its request.
            existing = await self._store.peek_idempotency(actor_pid, subject_pseudonym, key)
            replayed = await self._replay(actor_pid, subject_pseudonym, key, existing, fingerprint) \
                if existing is not None else None
            return replayed or Outcome(problem=refusal)
        record = _new_record(actor_pid, target, reason, self._store.bucket(target.subject_pid))
        for _ in range(CREATE_TRIES):
            created = await self._store.create(record, key, fingerprint)
            if created.kind == "created":
                await self._cache.bump([record.subject_pid, record.actor_pid])
                return Outcome(record=await self.send(record))
            if created.kind == "replay":
                replayed = await self._replay(actor_pid, subject_pseudonym, key, created, fingerprint)
                if replayed is not None:
                    return replayed
            elif not await self._repaired_slot(record, created):
                return Outcome(problem=CancelRefusal.REQUEST_PENDING)
        return Outcome(problem=RequestProblem.IN_PROGRESS)

    async def _replay(self, actor_pid: str, subject_pseudonym: str, key: str, existing: Created,
                      fingerprint: str) -> Outcome | None:
        """The answer for a key used before; None when the key pointed at no request and
        was repaired (the caller then makes the request)."""
        if existing.fingerprint() != fingerprint:
            return Outcome(problem=RequestProblem.IDEMPOTENCY_KEY_REUSED)
        record = await self._store.get(existing.request_id)
        if record is not None:
            return Outcome(record=record)
        if not existing.older_than(REPAIR_AFTER):
            return Outcome(problem=RequestProblem.IN_PROGRESS)
        await self._store.repair_idempotency(actor_pid, subject_pseudonym, key, existing)
        return None

    async def _repaired_slot(self, record: CancellationRecord, holder: Created) -> bool:
        """Whether the appointment's slot pointed at no pending request and was freed."""
        current = await self._store.get(holder.request_id)
        if current is not None and not current.decided:
            return False
        if current is None and not holder.older_than(REPAIR_AFTER):
            return False
        await self._store.repair_slot(record, holder)
        return True

    async def send(self, record: CancellationRecord) -> CancellationRecord:
        """Send a stored request; a provider that is down leaves it PENDING for the worker."""
        with tracing.span("cancellation.send", attributes={"bff.source": record.source_id}):
            return await self._send(record)

    async def _send(self, record: CancellationRecord) -> CancellationRecord:
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
            return await self.decide(record, CancellationStatus.FAILED, exc.message or REFUSED_TEXT)
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
        if answer.status is CancellationStatus.PENDING:
            return await self._store.get(record.request_id) or record
        return await self.decide(record, answer.status, answer.message)

    async def decide(self, record: CancellationRecord, status: CancellationStatus, message: str | None,
                     then: Callable[[CancellationRecord], Awaitable[None]] | None = None) -> CancellationRecord:
        """Record a decision once (every later call for the same request changes nothing),
        then run its follow-ups (`finish`, or `then` to run them elsewhere); the record as
        it stands."""
        decided = await self._store.decide(record, status, message, now())
        if decided is None:
            return await self._store.get(record.request_id) or record
        log.info("cancellation.decided", source=decided.source_id, status=status)
        await (then or self.finish)(decided)
        return decided

    async def settle_by_rows(self, found: list[tuple[Appointment, CancellationRecord]]) -> None:
        """The provider is the truth: a request still PENDING whose appointment the provider
        now lists as cancelled by the citizen was accepted (its answer was lost). Recorded
        here; the worker does the follow-ups. A failure leaves it for the next list or poll."""
        for appt, record in found:
            if settled_by_provider(appt, not record.decided):
                try:
                    await self.decide(record, CancellationStatus.ACCEPTED, None, then=_leave_for_worker)
                except (RedisError, OSError) as exc:
                    log.warning("cancellation.settle_failed", error=type(exc).__name__)

    async def finish(self, record: CancellationRecord) -> None:
        """The follow-ups of a decision: the cached list invalidated (harmless if twice), the
        event appended once (the store guards it), the varsel sent once (a lock, the flag and
        the notifier's idempotency key); what fails is left for the worker."""
        if not record.settled:
            await self._cache.invalidate(record.source_id, record.subject_pid, today())
            await self._cache.bump([record.actor_pid])
            await self._audit.record_once(f"decided:{record.request_id}", record.actor_pid, record.subject_pid,
                                          "decided", record.status.value, record.source_id,
                                          Actor(record.actor_relation, record.actor_name))
            await self._store.mark(record.request_id, "settled")
        if not record.evented:
            await self._store.append_event(record)
            await self._store.mark(record.request_id, "evented")
        if record.status in DECISIONS and not record.notified and not await self._notify(record):
            return
        await self._store.done(record.request_id)

    async def _notify(self, record: CancellationRecord) -> bool:
        if self._notifier is None:
            return True
        lock = f"notify:{record.request_id}"
        token = uuid.uuid4().hex
        if not await self._store.leases.take(lock, NOTIFY_LEASE_MS, token):
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
            await self._store.leases.give_back(lock, token)


async def _leave_for_worker(record: CancellationRecord) -> None:
    """The follow-ups of a decision recorded on a read path: the worker does them (the
    record stays in the pending index until they are done)."""


def _new_record(actor_pid: str, target: Target, reason: str | None, bucket: int) -> CancellationRecord:
    appt = target.appointment
    return CancellationRecord(
        request_id=new_request_id(bucket), actor_pid=actor_pid, subject_pid=target.subject_pid,
        source_id=target.source.id, upstream_id=appt.upstream_id, status=CancellationStatus.PENDING,
        requested_at=now().isoformat(), reason=reason, title=appt.title,
        actor_relation=target.actor.relation, actor_name=target.actor.name,
        service=appt.service.value if appt.service else None, start=appt.start.isoformat(),
        organization=appt.organization,
    )
