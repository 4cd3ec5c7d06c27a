"""Asks the providers, through the cache, within the request's time budget.

For one source and a batch of persons: fresh cache entries are used as they are; the
rest are fetched in one upstream call where the protocol allows (FHIR), and a source
that fails or misses the deadline is answered from its last good entry (`STALE`) or
reported `UNAVAILABLE` — never an error for the whole list.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog

from bff.cache import AppointmentCache
from bff.codec import dump_entry, load_entry
from bff.domain import Appointment
from bff.sources import SourceConfig
from bff.timez import OSLO, start_of_day
from connectors.base import AppointmentConnector, FetchResult, UpstreamError, Window

log = structlog.get_logger(__name__)


class SourceState(enum.Enum):
    """How a source's part of the answer was obtained."""

    OK = "OK"
    STALE = "STALE"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """One source's answer for one person."""

    source_id: str
    state: SourceState
    rows: tuple[Appointment, ...] = ()
    fetched_at: datetime | None = None
    message: str | None = None


UNAVAILABLE_TEXT = "Kilden svarte ikke, prøv igjen senere."
TIMEOUT_TEXT = "Kilden svarte ikke i tide."
STALE_TEXT = "Kilden svarte ikke; viser det den sa sist."
SKIPPED_TEXT = "{n} avtale(r) fra kilden kunne ikke leses og vises ikke."


def fetch_window(source: SourceConfig, history: bool, today: date) -> Window:
    """The canonical window asked of a provider: from today, or from its look-back."""
    first_day = today - timedelta(days=source.lookback_days) if history else today
    return Window(start=start_of_day(first_day))


class Gateway:
    """Fetches appointments per source with caching and a deadline."""

    def __init__(self, connectors: Mapping[str, AppointmentConnector], cache: AppointmentCache) -> None:
        self._connectors = connectors
        self._cache = cache

    async def fetch(self, source: SourceConfig, pids: Sequence[str], history: bool, today: date,
                    deadline: float) -> dict[str, SourceOutcome]:
        window = "history" if history else "future"
        keys = {pid: self._cache.key(source.id, window, today, pid) for pid in pids}
        cached = dict(zip(pids, await self._cache.get_many(list(keys.values())), strict=True))
        entries = {pid: _decode(raw, pid) for pid, raw in cached.items()}
        now = time.time()
        fresh = {pid: e for pid, e in entries.items() if e and now - e[1] < source.cache_ttl}
        missing = [pid for pid in pids if pid not in fresh]
        outcomes = {pid: _ok(source.id, *e) for pid, e in fresh.items()}
        if missing:
            outcomes |= await self._refresh(source, missing, fetch_window(source, history, today), keys,
                                            entries, deadline)
        return outcomes

    async def _refresh(self, source: SourceConfig, pids: list[str], window: Window, keys: dict[str, str],
                       entries: dict[str, tuple[tuple[Appointment, ...], float, int] | None],
                       deadline: float) -> dict[str, SourceOutcome]:
        connector = self._connectors[source.id]
        try:
            async with asyncio.timeout_at(deadline):
                result = await connector.fetch(pids, window)
        except TimeoutError:
            log.warning("source.deadline", source=source.id)
            return {pid: _fallback(source.id, entries.get(pid), TIMEOUT_TEXT) for pid in pids}
        except UpstreamError as exc:
            log.warning("source.failed", source=source.id, reason=exc.reason)
            return {pid: _fallback(source.id, entries.get(pid), UNAVAILABLE_TEXT) for pid in pids}
        await self._store(source, result, keys)
        fetched = time.time()
        return {pid: _ok(source.id, result.by_patient.get(pid, ()), fetched, result.skipped) for pid in pids}

    async def _store(self, source: SourceConfig, result: FetchResult, keys: dict[str, str]) -> None:
        at = time.time()
        items = {keys[pid]: dump_entry(rows, at, result.skipped) for pid, rows in result.by_patient.items()
                 if pid in keys}
        await self._cache.put_many(items, source.cache_ttl + source.stale_ttl)


def _decode(raw: bytes | None, pid: str) -> tuple[tuple[Appointment, ...], float, int] | None:
    if raw is None:
        return None
    try:
        return load_entry(raw, pid)
    except ValueError:
        log.warning("cache.entry_unreadable")
        return None


def _ok(source_id: str, rows: tuple[Appointment, ...], at: float, skipped: int) -> SourceOutcome:
    message = SKIPPED_TEXT.format(n=skipped) if skipped else None
    return SourceOutcome(source_id, SourceState.OK, rows, datetime.fromtimestamp(at, OSLO), message)


def _fallback(source_id: str, entry: tuple[tuple[Appointment, ...], float, int] | None,
              reason: str) -> SourceOutcome:
    if entry is None:
        return SourceOutcome(source_id, SourceState.UNAVAILABLE, message=reason)
    rows, at, _ = entry
    return SourceOutcome(source_id, SourceState.STALE, rows, datetime.fromtimestamp(at, OSLO), STALE_TEXT)
