"""Asks the providers, through the cache, within the request's time budget.

For one source and a batch of persons:
- a fresh cache entry is used as it is (no call);
- an entry past its freshness but within `revalidate_ttl` is served at once and
  refreshed in the background (stale-while-revalidate);
- the rest are fetched in one upstream call where the protocol allows (FHIR). Concurrent
  misses for the same entry cause one call: in-process through a shared future, across
  processes through a short Redis lease (the others wait for the entry to appear);
- calls go through the source's circuit breaker and are retried (idempotent reads only)
  with capped, jittered exponential backoff while the deadline leaves room for another
  full attempt;
- a source that fails, is open-circuited or misses the deadline is answered from its
  last good entry (`STALE`) or reported `UNAVAILABLE` — never an error for the whole list.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from opentelemetry.trace import get_current_span
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from bff.domain.models import Appointment
from bff.domain.sources import SourceConfig
from bff.domain.timez import OSLO, start_of_day
from bff.readpath.breakers import Breakers, CircuitOpen
from bff.readpath.codec import dump_entry, load_entry
from bff.readpath.singleflight import SingleFlight
from bff.runtime import tracing
from bff.runtime.lru import Lru
from bff.runtime.metrics import Metrics
from bff.runtime.tasks import stop
from bff.store.cache import AppointmentCache, Deferred
from connectors.base import AppointmentConnector, FetchResult, SourceUnavailable, UpstreamError, Window

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 3
DECODED_ENTRIES = 4096
"""Decoded cache entries kept in process memory (each one person's rows from one source)."""
RETRY_INITIAL_WAIT = 0.05
RETRY_MAX_WAIT = 0.5
BACKOFF = wait_exponential_jitter(multiplier=RETRY_INITIAL_WAIT, max=RETRY_MAX_WAIT, jitter=RETRY_INITIAL_WAIT)
"""Before the second attempt 50–100 ms, before the third 100–150 ms (at most 0.5 s)."""
LEASE_MARGIN = 1.0
BACKGROUND_REFRESHES = 4
"""Revalidations one process runs at a time. Stale entries are served meanwhile, so the
rest wait their turn rather than take the CPU from requests being answered: when many
entries go stale together (after a deploy, or a morning's first minute) an unbounded
burst would make warm answers wait for the refreshes (bench/results/NOTES.md)."""

UNAVAILABLE_TEXT = "Kilden svarte ikke, prøv igjen senere."
TIMEOUT_TEXT = "Kilden svarte ikke i tide."
CIRCUIT_TEXT = "Kilden har feilet flere ganger nylig og blir ikke spurt akkurat nå."
STALE_TEXT = "Kilden svarte ikke; viser det den sa sist."
SKIPPED_TEXT = "{n} avtale(r) fra kilden kunne ikke leses og vises ikke."


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


@dataclass(frozen=True, slots=True)
class Cached:
    """A provider's answer for one person, and when it was fetched (epoch seconds)."""

    rows: tuple[Appointment, ...]
    at: float
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    """Why there is no fresh answer: a message for the client, a kind for metrics."""

    message: str
    kind: str


Result = Cached | Failure


class ReadAhead:
    """A request's cache entries, read — and leased where missing — while the request
    still asks the person directory which sources apply: a cold list then needs no Redis
    round trip between the directory's answer and the first provider call. Each entry is
    taken at most once (`Gateway.fetch`); leases on entries of sources that turned out not
    to apply are released with the request's writes (`release_unused`)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._task: asyncio.Task[dict[str, tuple[bytes | None, bool]]] | None = None

    def start(self, sources: Sequence[tuple[SourceConfig, bool]], pid: str, today: date, now: bool = False) -> None:
        """Read the entries of `sources` (each with whether its history is wanted) for `pid`
        (once per request: a second list in the same request reads its own way); `now`:
        in a command of its own, sent at once (`AppointmentCache.read_or_lease`)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._gateway.read_ahead(sources, pid, today, now))

    async def read(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until the entries are read, whatever the read found."""
        if self._task is not None:
            await asyncio.wait([self._task], timeout=timeout)

    async def take(self, keys: Sequence[str]) -> dict[str, tuple[bytes | None, bool]]:
        """What was read of `keys` (the entry, and whether its lease is now this caller's)."""
        if self._task is None:
            return {}
        found = await asyncio.shield(self._task)
        return {key: found.pop(key) for key in keys if key in found}

    def release_unused(self) -> None:
        """Release the leases nobody took (now, or once the read is done)."""
        task = self._task
        if task is None:
            return

        def release(done: asyncio.Task[dict[str, tuple[bytes | None, bool]]]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            found = done.result()
            unused = [key for key, (_, leased) in found.items() if leased]
            for key in unused:
                found[key] = (found[key][0], False)  # a later `take` must not count on it
            self._gateway._cache.release_behind(unused)

        if task.done():
            release(task)
        else:
            task.add_done_callback(release)


def fetch_window(source: SourceConfig, history: bool, today: date) -> Window:
    """The canonical window asked of a provider: from today, or from its look-back."""
    first_day = today - timedelta(days=source.lookback_days) if history else today
    return Window(start=start_of_day(first_day))


class Gateway:
    """Fetches appointments per source with caching, single-flight, breakers and a deadline."""

    def __init__(self, connectors: Mapping[str, AppointmentConnector], cache: AppointmentCache,
                 breakers: Breakers, metrics: Metrics) -> None:
        self._connectors = connectors
        self._cache = cache
        self._breakers = breakers
        self._metrics = metrics
        self._flights: dict[str, SingleFlight[str, Result]] = {}
        self._decoded: Lru[str, tuple[bytes, Cached]] = Lru(DECODED_ENTRIES)
        self._background: set[asyncio.Task[Any]] = set()
        self._refresh_slots = asyncio.Semaphore(BACKGROUND_REFRESHES)
        self._refreshing: set[str] = set()
        """Cache keys with a revalidation queued or running in this process."""
        self._refresh_failed: Lru[str, float] = Lru(DECODED_ENTRIES)
        """When this process last failed to refresh an entry: until a refresh succeeds, an
        entry past its freshness is served as what it is, STALE, not as OK."""

    async def settled(self) -> None:
        """Return once the background refreshes and started fetches under way have ended."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop background refreshes and started fetches (at shutdown)."""
        for task in list(self._background):
            await stop(task)

    async def read_ahead(self, sources: Sequence[tuple[SourceConfig, bool]], pid: str,
                         today: date, now: bool = False) -> dict[str, tuple[bytes | None, bool]]:
        """Each source's entry for `pid`, and whether its lease was taken (see `ReadAhead`)."""
        keys = [self._key(source, history, today, pid) for source, history in sources]
        raws, leased = await self._cache.read_or_lease(keys, [_lease(source) for source, _ in sources], now)
        return {key: (raw, key in leased) for key, raw in zip(keys, raws, strict=True)}

    def start_fetch(self, source: SourceConfig, pids: Sequence[str], history: bool, today: date,
                    deadline: float, ahead: ReadAhead | None = None) -> asyncio.Task[dict[str, SourceOutcome]]:
        """`fetch`, started now as a task of its own that runs to its end even if nobody
        awaits it (its answer then still fills the cache); stopped at shutdown."""
        task = asyncio.get_running_loop().create_task(self.fetch(source, pids, history, today, deadline, ahead))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_settle_started)
        return task

    def _key(self, source: SourceConfig, history: bool, today: date, pid: str) -> str:
        return self._cache.key(source.id, "history" if history else "future", today, pid)

    async def fetch(self, source: SourceConfig, pids: Sequence[str], history: bool, today: date,
                    deadline: float, ahead: ReadAhead | None = None) -> dict[str, SourceOutcome]:
        with tracing.span("source", attributes={"bff.source": source.id, "bff.persons": len(pids)}) as current:
            outcomes = await self._fetch(source, pids, history, today, deadline, ahead)
            if current is not None:
                current.set_attribute("bff.states", sorted({o.state.value for o in outcomes.values()}))
            return outcomes

    async def _fetch(self, source: SourceConfig, pids: Sequence[str], history: bool, today: date,
                     deadline: float, ahead: ReadAhead | None) -> dict[str, SourceOutcome]:
        window = fetch_window(source, history, today)
        keys = {pid: self._key(source, history, today, pid) for pid in pids}
        read = await ahead.take(list(keys.values())) if ahead is not None else {}
        rest = [key for key in keys.values() if key not in read]
        # A missing entry is leased in the same round trip that finds it missing.
        raws, leased = await self._cache.read_or_lease(rest, _lease(source))
        read.update({key: (raw, key in leased) for key, raw in zip(rest, raws, strict=True)})
        leased = {key for key, (_, taken) in read.items() if taken}
        entries = {pid: self._decode(keys[pid], read[keys[pid]][0], pid) for pid in pids}
        outcomes: dict[str, SourceOutcome] = {}
        need, revalidate = self._triage(source, entries, keys, outcomes)
        if tracing.on():
            get_current_span().set_attributes({"bff.cache.fresh": len(outcomes) - len(revalidate),
                                               "bff.cache.revalidate": len(revalidate), "bff.cache.miss": len(need)})
        if revalidate:
            self._refresh_in_background(source, revalidate, window, keys)
        if need:
            results = await self._load(source, need, window, keys, deadline, leased)
            for pid in need:
                outcomes[pid] = self._outcome(source, results[pid], entries[pid])
        for outcome in outcomes.values():
            self._metrics.of(self._metrics.source_states, source.id, outcome.state.value).inc()
        return outcomes

    def _decode(self, key: str, raw: bytes | None, pid: str) -> Cached | None:
        """Decode a cache entry, reusing the objects made for the same bytes last time (a
        warm list then costs a byte comparison instead of building every row again)."""
        if raw is None:
            return None
        known = self._decoded.get(key)
        if known is not None and known[0] == raw:
            return known[1]
        entry = _decode(raw, pid)
        if entry is not None:
            self._decoded.put(key, (raw, entry))
        return entry

    def _triage(self, source: SourceConfig, entries: dict[str, Cached | None], keys: dict[str, str],
                outcomes: dict[str, SourceOutcome]) -> tuple[list[str], list[str]]:
        now = time.time()
        need: list[str] = []
        revalidate: list[str] = []
        for pid, entry in entries.items():
            age = now - entry.at if entry else None
            if entry is not None and age is not None and age < source.cache_ttl + source.revalidate_ttl:
                fresh = age < source.cache_ttl
                failed = not fresh and (self._refresh_failed.get(keys[pid]) or 0.0) > entry.at
                outcomes[pid] = _stale(source.id, entry) if failed else _ok(source.id, entry)
                result = "hit" if fresh else "stale" if failed else "revalidate"
                self._metrics.of(self._metrics.cache, source.id, result).inc()
                if not fresh:
                    revalidate.append(pid)
            else:
                self._metrics.of(self._metrics.cache, source.id, "miss").inc()
                need.append(pid)
        return need, revalidate

    def _outcome(self, source: SourceConfig, result: Result, previous: Cached | None) -> SourceOutcome:
        if isinstance(result, Cached):
            return _ok(source.id, result)
        if result.kind in ("deadline", "peer_failed"):
            log.warning("source.no_answer", source=source.id, kind=result.kind)
            self._metrics.of(self._metrics.upstream_errors, source.id, result.kind).inc()
        if previous is not None and time.time() - previous.at < source.cache_ttl + source.stale_ttl:
            self._metrics.of(self._metrics.cache, source.id, "stale").inc()
            return _stale(source.id, previous)
        return SourceOutcome(source.id, SourceState.UNAVAILABLE, message=result.message)

    def _refresh_in_background(self, source: SourceConfig, pids: list[str], window: Window,
                               keys: dict[str, str]) -> None:
        todo = [pid for pid in pids if keys[pid] not in self._refreshing and not self._flight(source).busy(keys[pid])]
        if not todo:
            return
        self._refreshing.update(keys[pid] for pid in todo)
        task = asyncio.create_task(self._refresh(source, todo, window, keys))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self, source: SourceConfig, pids: list[str], window: Window, keys: dict[str, str]) -> None:
        try:
            async with self._refresh_slots:
                deadline = asyncio.get_running_loop().time() + source.timeout * MAX_ATTEMPTS
                results = await self._load(source, pids, window, keys, deadline)
            failed = [pid for pid, result in results.items() if isinstance(result, Failure)]
            for pid in results:
                if pid in failed:
                    self._refresh_failed.put(keys[pid], time.time())
                else:
                    self._refresh_failed.discard(keys[pid])
            if failed:
                # Answers kept from these persons' entries said OK; from now on they say
                # STALE: a new generation makes every process compute them again.
                await self._cache.bump(failed)
        finally:
            self._refreshing.difference_update(keys[pid] for pid in pids)

    async def _load(self, source: SourceConfig, pids: list[str], window: Window, keys: dict[str, str],
                    deadline: float, leased: set[str] | None = None) -> dict[str, Result]:
        async def fetch(own: list[str]) -> dict[str, Result]:
            return await self._upstream(source, own, window, keys, deadline)

        return await self._flight(source).run({pid: keys[pid] for pid in pids}, fetch, _lease(source), deadline,
                                              leased or set())

    def _flight(self, source: SourceConfig) -> SingleFlight[str, Result]:
        def fresh(pid: str, raw: bytes | None) -> Result | None:
            entry = _decode(raw, pid)
            return entry if entry is not None and time.time() - entry.at < source.cache_ttl else None

        if source.id not in self._flights:
            self._flights[source.id] = SingleFlight(self._cache, fresh, _failure)
        return self._flights[source.id]

    async def _upstream(self, source: SourceConfig, pids: list[str], window: Window, keys: dict[str, str],
                        deadline: float) -> dict[str, Result]:
        try:
            result = await self._call(source, pids, window, deadline)
            at = time.time()
            rows = {pid: Cached(result.by_patient.get(pid, ()), at, result.skipped) for pid in pids}
            self._cache.write_behind({keys[pid]: Deferred(partial(dump_entry, c.rows, c.at, c.skipped))
                                      for pid, c in rows.items()},
                                     source.cache_ttl + max(source.stale_ttl, source.revalidate_ttl), changed=pids)
            return dict(rows)
        except CircuitOpen:
            if tracing.on():
                get_current_span().set_attribute("bff.breaker", "open")
            self._metrics.of(self._metrics.upstream_errors, source.id, "circuit_open").inc()
            return {pid: Failure(CIRCUIT_TEXT, "circuit_open") for pid in pids}
        except UpstreamError as exc:
            log.warning("source.failed", source=source.id, reason=exc.reason)
            return {pid: Failure(UNAVAILABLE_TEXT, exc.kind) for pid in pids}

    async def _call(self, source: SourceConfig, pids: list[str], window: Window, deadline: float) -> FetchResult:
        loop = asyncio.get_running_loop()

        def worth_retrying(exc: BaseException) -> bool:
            return isinstance(exc, SourceUnavailable) and deadline - loop.time() > source.timeout

        async with await self._breakers.guard(source.id):
            # The first attempt is made outside tenacity: nearly every call succeeds at once,
            # and its per-call bookkeeping (~30 µs) stood in the way of every later call of
            # a list's fan-out. After a failure tenacity takes over, counting that attempt.
            try:
                return await self._timed(source, pids, window, 1)
            except SourceUnavailable as exc:
                if not worth_retrying(exc):
                    raise
                failed: SourceUnavailable | None = exc
            async for attempt in AsyncRetrying(stop=stop_after_attempt(MAX_ATTEMPTS),
                                               retry=retry_if_exception(worth_retrying), wait=BACKOFF, reraise=True):
                with attempt:
                    if failed is not None:
                        first, failed = failed, None
                        raise first
                    return await self._timed(source, pids, window, attempt.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity reraises the last failure")

    async def _timed(self, source: SourceConfig, pids: list[str], window: Window, attempt: int) -> FetchResult:
        with tracing.span("upstream.attempt", attributes={"bff.source": source.id, "bff.attempt": attempt}):
            return await self._measured(source, pids, window)

    async def _measured(self, source: SourceConfig, pids: list[str], window: Window) -> FetchResult:
        started = time.perf_counter()
        try:
            result = await self._connectors[source.id].fetch(pids, window)
        except UpstreamError as exc:
            self._metrics.of(self._metrics.upstream_requests, source.id, "error").inc()
            self._metrics.of(self._metrics.upstream_errors, source.id, exc.kind).inc()
            raise
        finally:
            self._metrics.of(self._metrics.upstream_latency, source.id).observe(time.perf_counter() - started)
        self._metrics.of(self._metrics.upstream_requests, source.id, "ok").inc()
        return result


def _settle_started(task: asyncio.Task[dict[str, SourceOutcome]]) -> None:
    """A started fetch nobody awaited must not fail unseen."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("source.started_fetch_failed", error=type(exc).__name__)


def _lease(source: SourceConfig) -> float:
    """How long a fetch lease lasts: every attempt the fetch may make, and a margin."""
    return source.timeout * MAX_ATTEMPTS + LEASE_MARGIN


def _failure(kind: str) -> Failure:
    return Failure(TIMEOUT_TEXT if kind in ("deadline", "cancelled") else UNAVAILABLE_TEXT, kind)


def _decode(raw: bytes | None, pid: str) -> Cached | None:
    if raw is None:
        return None
    try:
        rows, at, skipped = load_entry(raw, pid)
    except ValueError:
        log.warning("cache.entry_unreadable")
        return None
    return Cached(rows, at, skipped)


def _instant(at: float) -> datetime:
    return datetime.fromtimestamp(at, OSLO)


def _stale(source_id: str, entry: Cached) -> SourceOutcome:
    return SourceOutcome(source_id, SourceState.STALE, entry.rows, _instant(entry.at), STALE_TEXT)


def _ok(source_id: str, entry: Cached) -> SourceOutcome:
    message = SKIPPED_TEXT.format(n=entry.skipped) if entry.skipped else None
    return SourceOutcome(source_id, SourceState.OK, entry.rows, _instant(entry.at), message)
