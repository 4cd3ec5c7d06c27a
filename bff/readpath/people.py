"""Person-directory lookups through the cache: a record is fresh for `PERSON_TTL`, and
kept for `PERSON_STALE_TTL` to answer with when the directory is down. Concurrent
misses for the same person cause one directory call (single-flight)."""

from __future__ import annotations

import asyncio
import time

import structlog

from bff.domain.models import PersonRecord
from bff.readpath.appointments import PersonLookup
from bff.readpath.codec import dump_person, load_person
from bff.readpath.singleflight import SingleFlight
from bff.store.cache import AppointmentCache
from connectors.base import PersonDirectory, UpstreamError

log = structlog.get_logger(__name__)
PERSON_TTL = 300
PERSON_STALE_TTL = 24 * 3600
LEASE = 3.0
UNAVAILABLE = PersonLookup(None, ok=False)


class Admission:
    """Whether a request may have the directory asked for it: decided once, by the request
    (admitted once it is executed; refused by the rate limit or when it ends before)."""

    def __init__(self) -> None:
        self._decided = asyncio.Event()
        self._admitted = False

    def admit(self) -> None:
        if not self._decided.is_set():
            self._admitted = True
            self._decided.set()

    def refuse(self) -> None:
        self._decided.set()

    async def admits(self, deadline: float) -> bool:
        """Wait for the decision (until `deadline`: refused then)."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._decided.wait()
        except TimeoutError:
            pass
        return self._admitted


class People:
    """Looks persons up: cache first, then the directory."""

    def __init__(self, directory: PersonDirectory, cache: AppointmentCache) -> None:
        self._directory = directory
        self._cache = cache
        self._flight: SingleFlight[str, PersonLookup] = SingleFlight(cache, _fresh, lambda kind: UNAVAILABLE)

    def start(self, pid: str, deadline: float, admission: Admission) -> asyncio.Task[PersonLookup]:
        """`pid`'s lookup, started now as a task of its own: the viewer's, as soon as a
        request that will read it arrives, so that a cold viewer's directory call goes out
        beside the request's parsing and cache reads, not after them. The cache is read at
        once; the directory is asked only once `admission` admits the request (it passed
        the rate limit and validation). Refused, or at the deadline, the lookup lets go of
        the record's lease and asks no one."""
        async def one() -> PersonLookup:
            return (await self.get_many([pid], deadline, now=True, admission=admission))[0]

        task = asyncio.get_running_loop().create_task(one())
        task.add_done_callback(_seen)
        return task

    async def get_many(self, pids: list[str], deadline: float, now: bool = False,
                       admission: Admission | None = None) -> list[PersonLookup]:
        """The persons' lookups; `now`: the cache read is sent at once (`read_or_lease`);
        `admission`: what is not cached waits for it before the directory is asked."""
        keys = {pid: self._cache.person_key(pid) for pid in pids}
        values, leased = await self._cache.read_or_lease(list(keys.values()), LEASE, now)
        raws = dict(zip(pids, values, strict=True))
        cached = {pid: _read(raw, pid) for pid, raw in raws.items()}
        found = {pid: PersonLookup(c[0]) for pid, c in cached.items() if c and time.time() - c[1] < PERSON_TTL}
        missing = {pid: keys[pid] for pid in pids if pid not in found}
        if missing and admission is not None:
            try:
                admitted = await admission.admits(deadline)
            except asyncio.CancelledError:
                self._cache.release_behind(leased)
                raise
            if not admitted:  # the leases taken on the records it would have fetched are let go
                self._cache.release_behind(leased)
                return [found.get(pid, UNAVAILABLE) for pid in pids]
        if missing:
            fetched = await self._flight.run(missing, self._fetch, LEASE, deadline, leased)
            for pid, lookup in fetched.items():
                stale = cached[pid]
                usable = stale is not None and time.time() - stale[1] < PERSON_STALE_TTL
                found[pid] = PersonLookup(stale[0]) if not lookup.ok and stale and usable else lookup
        return [found[pid] for pid in pids]

    async def _fetch(self, pids: list[str]) -> dict[str, PersonLookup]:
        if len(pids) == 1:  # a gather would take a loop turn to start the call, two to end it
            return {pids[0]: await self._one(pids[0])}
        answers = await asyncio.gather(*(self._one(pid) for pid in pids))
        return dict(zip(pids, answers, strict=True))

    async def _one(self, pid: str) -> PersonLookup:
        try:
            record = await self._directory.get(pid)
        except UpstreamError as exc:
            log.warning("directory.failed", kind=exc.kind)
            return UNAVAILABLE
        self._cache.write_behind({self._cache.person_key(pid): dump_person(record, time.time())}, PERSON_STALE_TTL,
                                 changed=[pid])
        return PersonLookup(record)


def _seen(task: asyncio.Task[PersonLookup]) -> None:
    """Mark a failure as seen: a lookup whose request never got to execution ends with
    nobody awaiting it, and its failure must not be reported as never retrieved."""
    if not task.cancelled():
        task.exception()


def _fresh(pid: str, raw: bytes | None) -> PersonLookup | None:
    cached = _read(raw, pid)
    return PersonLookup(cached[0]) if cached and time.time() - cached[1] < PERSON_TTL else None


def _read(raw: bytes | None, pid: str) -> tuple[PersonRecord | None, float] | None:
    if raw is None:
        return None
    try:
        return load_person(raw, pid)
    except ValueError:
        return None
