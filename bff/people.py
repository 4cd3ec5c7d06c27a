"""Person-directory lookups through the cache: a record is fresh for `PERSON_TTL`, and
kept for `PERSON_STALE_TTL` to answer with when the directory is down."""

from __future__ import annotations

import asyncio
import time

import structlog

from bff.appointments import PersonLookup
from bff.cache import AppointmentCache
from bff.codec import dump_person, load_person
from bff.domain import PersonRecord
from connectors.base import PersonDirectory, UpstreamError

log = structlog.get_logger(__name__)
PERSON_TTL = 300
PERSON_STALE_TTL = 24 * 3600


class People:
    """Looks persons up: cache first, then the directory."""

    def __init__(self, directory: PersonDirectory, cache: AppointmentCache) -> None:
        self._directory = directory
        self._cache = cache

    async def get_many(self, pids: list[str], deadline: float) -> list[PersonLookup]:
        keys = [self._cache.person_key(pid) for pid in pids]
        raws = await self._cache.get_many(keys)
        return list(await asyncio.gather(*(self._one(pid, key, raw, deadline)
                                           for pid, key, raw in zip(pids, keys, raws, strict=True))))

    async def _one(self, pid: str, key: str, raw: bytes | None, deadline: float) -> PersonLookup:
        cached = _read(raw)
        if cached is not None and time.time() - cached[1] < PERSON_TTL:
            return PersonLookup(cached[0])
        try:
            async with asyncio.timeout_at(deadline):
                record = await self._directory.get(pid)
        except (UpstreamError, TimeoutError) as exc:
            log.warning("directory.failed", error=type(exc).__name__)
            if cached is not None and time.time() - cached[1] < PERSON_STALE_TTL:
                return PersonLookup(cached[0])
            return PersonLookup(None, ok=False)
        await self._cache.put_many({key: dump_person(record, time.time())}, PERSON_STALE_TTL)
        return PersonLookup(record)


def _read(raw: bytes | None) -> tuple[PersonRecord | None, float] | None:
    if raw is None:
        return None
    try:
        return load_person(raw)
    except ValueError:
        return None
