"""The cancellation worker: in one process at a time (a Redis lease), it resumes
requests that were stored but not sent (after a restart, or while a provider was down),
polls providers about requests still pending after `poll_after` seconds (a lost
webhook), and finishes decisions whose follow-ups were interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import structlog
from redis.exceptions import RedisError

from bff.cancellation.service import CancellationService
from bff.cancellation.store import CancellationStore
from bff.runtime import tracing
from bff.runtime.tasks import Background

log = structlog.get_logger(__name__)
LEASE_NAME = "cancellation-worker"


class CancellationWorker(Background):
    """Runs `sweep()` every `interval` seconds while this process holds the lease."""

    def __init__(self, service: CancellationService, store: CancellationStore, interval: float,
                 poll_after: float) -> None:
        self._service = service
        self._store = store
        self._interval = interval
        self._poll_after = poll_after
        self._owner = uuid.uuid4().hex
        """This process's claim on the worker's lease."""

    async def aclose(self) -> None:
        if await self.stop_loop():
            with contextlib.suppress(RedisError, OSError):
                await self._store.leases.give_back(LEASE_NAME, self._owner)

    async def _run(self) -> None:
        lease_ms = int(self._interval * 3000)
        while not self.stopping:
            try:
                if await self._store.leases.take(LEASE_NAME, lease_ms, self._owner):
                    await self.sweep()
            except (RedisError, OSError) as exc:
                log.warning("worker.redis_failed", error=type(exc).__name__)
            except Exception:
                log.exception("worker.sweep_failed")
            await asyncio.sleep(self._interval)

    async def sweep(self) -> None:
        pending = await self._store.pending()
        if not pending:
            return
        with tracing.span("cancellation.sweep", attributes={"bff.pending": len(pending)}):
            for request_id, since in pending:
                await self._step(request_id, since)

    async def _step(self, request_id: str, since: float) -> None:
        record = await self._store.get(request_id)
        if record is None:
            await self._store.done(request_id)
            return
        step = "finish" if record.decided else "send" if not record.sent else "poll"
        if step == "poll" and time.time() - since < self._poll_after:
            return
        with tracing.span(f"cancellation.worker.{step}", attributes={"bff.source": record.source_id}):
            if step == "finish":
                await self._service.finish(record)
            elif step == "send":
                await self._service.send(record)
            else:
                await self._service.poll(record)
