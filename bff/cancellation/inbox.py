"""Providers' answers to cancellation requests, as their webhooks deliver them.

An answer is recorded on Redis connections of its own (a burst of reads or mutations
cannot starve it), once per delivery id; its follow-ups run after the provider has been
answered, on the shared connections, and the worker finishes what they leave undone. An
answer about a request this BFF does not know is kept, never refused: the provider is the
truth, and a refusal would only make it send again."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from bff.cancellation.service import CancellationService
from bff.cancellation.store import CancellationRecord, CancellationStore
from bff.domain.models import CancellationStatus
from bff.domain.timez import now

log = structlog.get_logger(__name__)
REPLAY_WINDOW = 15 * 60
"""Seconds a delivery id is remembered: longer than the 5-minute tolerance either side."""


class Taken(enum.Enum):
    """What became of one delivered answer."""

    RECORDED = "recorded"
    ALREADY_DECIDED = "already decided"
    DUPLICATE = "duplicate"
    UNKNOWN_REQUEST = "unknown request"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of an answer, and the decision whose follow-ups are still to run."""

    taken: Taken
    decided: CancellationRecord | None = None


class Inbox:
    """Records providers' decisions (`take`), and runs their follow-ups (`follow_up`)."""

    def __init__(self, store: CancellationStore, service: CancellationService,
                 unknown: Callable[[str], None]) -> None:
        self._store = store
        self._service = service
        self._unknown = unknown

    async def take(self, source_id: str, delivery_id: str, request_id: str, status: CancellationStatus,
                   message: str | None) -> Receipt:
        """Record one delivery; raises RedisError when Redis fails (nothing recorded then, so
        the provider's retry is taken as new)."""
        if not await self._store.first_delivery(source_id, delivery_id, REPLAY_WINDOW):
            return Receipt(Taken.DUPLICATE)
        try:
            record = await self._store.get(request_id)
            if record is None or record.source_id != source_id:
                await self._store.record_orphan(source_id, request_id, status, message)
                log.warning("webhook.unknown_request", source=source_id)
                self._unknown(source_id)
                return Receipt(Taken.UNKNOWN_REQUEST)
            decided = await self._store.decide(record, status, message, now())
        except BaseException:
            await self._store.forget_delivery(source_id, delivery_id)
            raise
        if decided is None:
            return Receipt(Taken.ALREADY_DECIDED)
        log.info("cancellation.decided", source=source_id, status=status)
        return Receipt(Taken.RECORDED, decided)

    async def follow_up(self, record: CancellationRecord) -> None:
        """The decision's follow-ups; what Redis fails is left to the worker."""
        try:
            await self._service.finish(record)
        except (RedisError, OSError) as exc:
            log.warning("webhook.follow_up_deferred", error=type(exc).__name__)
