"""Per-request DataLoaders: whatever the query looks like, each person is looked up once
and each source is asked once per request (several persons in one FHIR search)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import structlog
from aiodataloader import DataLoader, Loader, dispatch_queue
from redis.exceptions import RedisError

from bff.cancellation.store import CancellationRecord, CancellationStore
from bff.domain.access import may_consult
from bff.domain.rules import ALL_KINDS, applies_to_everyone
from bff.domain.sources import SourceConfig, SourcesFile
from bff.domain.timez import start_of_day
from bff.readpath.appointments import PersonLookup
from bff.readpath.gateway import Gateway, ReadAhead, SourceOutcome
from bff.readpath.people import Admission, People

log = structlog.get_logger(__name__)
SourceKey = tuple[str, str, bool]
"""(source id, pid, wants history)"""


SETTLE_TICKS = 3
"""Event-loop turns a resolver needs, once its person lookups are answered, to ask for
its sources; the source loader waits that long before it dispatches."""


class PersonByPidLoader(DataLoader[str, PersonLookup]):
    """Person directory records by pid (cached); a directory failure is an answer (`ok=False`)."""

    def __init__(self, people: People, deadline: float) -> None:
        self._futures: dict[str, asyncio.Future[PersonLookup]] = {}
        super().__init__(cache_map=self._futures)
        self._begun: list[Admission] = []
        self._people = people
        self._deadline = deadline
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self, pid: str, lookup: asyncio.Future[PersonLookup], admission: Admission) -> None:
        """`pid`'s lookup is `lookup`, started before this loader was made (`People.start`),
        waiting for `admission` before it asks the directory (`admit`)."""
        self._futures[pid] = lookup
        self._begun.append(admission)
        self._busy += 1
        self._idle.clear()
        lookup.add_done_callback(self._ended)

    def admit(self) -> None:
        """The request is executed: lookups begun before may ask the directory."""
        for admission in self._begun:
            admission.admit()

    def abandon(self) -> None:
        """The request ended: a lookup begun for it that was never admitted asks no one."""
        for admission in self._begun:
            admission.refuse()
        self._begun.clear()

    def _ended(self, _: object = None) -> None:
        self._busy -= 1
        if not self._busy:
            self._idle.set()

    def do_resolve_reject(self, key: str, future: asyncio.Future[PersonLookup]) -> None:
        """Queue the key; the batch goes out one event-loop turn later (aiodataloader's
        own scheduling takes three), which is when an own list's read-ahead queues its
        Redis read: a person's record asked for in the resolvers (not begun early, as the
        viewer's usually is) is then read in the same round trip."""
        self._queue.append(Loader(key=key, future=future))
        if len(self._queue) == 1:
            self.loop.call_soon(dispatch_queue, self)

    async def batch_load_fn(self, pids: list[str]) -> list[PersonLookup]:
        self._busy += 1
        self._idle.clear()
        try:
            return await self._people.get_many(pids, self._deadline)
        finally:
            self._ended()

    async def settled(self) -> None:
        """Return once no person lookup of this request is queued or under way, and the
        resolvers that waited for one have had their turns."""
        while True:
            for _ in range(SETTLE_TICKS):
                await asyncio.sleep(0)
            if not self._busy and not self._queue:
                return
            await self._idle.wait()


class AppointmentsBySourceLoader(DataLoader[SourceKey, SourceOutcome]):
    """A source's appointments by (source, person, history): one call per source per request.

    When one batch wants a source's history for some persons and only the future for
    others, the history is fetched for all of them and the future derived from it, so the
    source is still asked once."""

    def __init__(self, gateway: Gateway, catalogue: SourcesFile, today: date, deadline: float,
                 persons: PersonByPidLoader, cancellations: CancellationByAppointmentLoader) -> None:
        super().__init__()
        self.ahead = ReadAhead(gateway)
        """The request's entries read while its persons were looked up (own lists)."""
        self.asked = asyncio.Event()
        """Set once the calls of this request's first batch have been started."""
        self._gateway = gateway
        self._catalogue = catalogue
        self._today = today
        self._deadline = deadline
        self._persons = persons
        self._cancellations = cancellations
        self._dispatches: set[asyncio.Task[None]] = set()
        self._started: dict[SourceKey, asyncio.Task[dict[str, SourceOutcome]]] = {}
        """Sources asked before the directory answered (`start_own_list`)."""

    def start_own_list(self, sources: Sequence[tuple[SourceConfig, bool]], pid: str, alone: bool,
                       now: bool = False) -> None:
        """The viewer's own list is wanted from `sources` (each with whether its history is):
        read their entries while the directory says which of them apply, and, when this
        list is all the request asks for, ask the sources that apply to everyone — the
        hospitals — at once, and the others (GP, municipality) as soon as the directory's
        answer says they apply. Neither waits for the list's resolver to be resumed and
        its batch dispatched (with other lists in the request they wait, to be asked for
        every person of the request in one call). Asked again (the resolver, after
        `resolvers.appointments.early`), it starts nothing twice: the entries are read once
        and each source asked once per key. `now`: the entries are read in a Redis command
        of their own, sent at once (`ReadAhead.start`)."""
        self.ahead.start(sources, pid, self._today, now)
        if not alone:
            return
        for source, history in sources:
            if applies_to_everyone(source):
                self._start(source, pid, history)
        routed = [(source, history) for source, history in sources if not applies_to_everyone(source)]
        if routed:
            self._persons.load(pid).add_done_callback(lambda looked_up: self._start_routed(routed, pid, looked_up))

    def _start_routed(self, sources: list[tuple[SourceConfig, bool]], pid: str,
                      looked_up: asyncio.Future[PersonLookup]) -> None:
        """Once the viewer's record is known: ask the sources it routes them to, by the
        rule the list's `choose` applies to one's own list (all kinds; only what the
        directory says applies). The resolver's batch then finds them asked."""
        if looked_up.cancelled() or looked_up.exception() is not None:
            return  # the resolver meets the same failure, and answers it
        lookup = looked_up.result()
        if not lookup.ok:
            return  # the directory could not say: reported UNAVAILABLE, never asked
        for source, history in sources:
            if may_consult(source, ALL_KINDS, lookup.record):
                self._start(source, pid, history)

    def _start(self, source: SourceConfig, pid: str, history: bool) -> None:
        key = (source.id, pid, history)
        if key not in self._started:
            self._started[key] = self._gateway.start_fetch(source, [pid], history, self._today, self._deadline,
                                                           self.ahead)

    def do_resolve_reject(self, key: SourceKey, future: asyncio.Future[SourceOutcome]) -> None:
        """Queue the key; the first key of a batch schedules a dispatch that waits until the
        request's person lookups have settled, so keys of every resolver — including those
        that first had to look up a represented person — share one call per source."""
        self._queue.append(Loader(key=key, future=future))
        if len(self._queue) == 1:
            task = asyncio.ensure_future(self._dispatch_when_settled())
            self._dispatches.add(task)
            task.add_done_callback(self._dispatches.discard)

    async def _dispatch_when_settled(self) -> None:
        await self._persons.settled()
        dispatch_queue(self)

    async def batch_load_fn(self, keys: list[SourceKey]) -> list[SourceOutcome]:
        by_source: dict[str, list[SourceKey]] = defaultdict(list)
        for key in keys:
            by_source[key[0]].append(key)
        asking = asyncio.gather(*(self._one_source(sid, ks) for sid, ks in by_source.items()))
        self.asked.set()  # whoever waits for this runs after the sources' first steps: their calls
        answers = await asking
        merged = {key: outcome for answer in answers for key, outcome in answer.items()}
        return [merged[key] for key in keys]

    async def _one_source(self, source_id: str, keys: list[SourceKey]) -> dict[SourceKey, SourceOutcome]:
        source = self._catalogue.by_id(source_id)
        if source is None:
            raise KeyError(f"unknown source {source_id}")
        history = any(k[2] for k in keys)
        pids = list(dict.fromkeys(k[1] for k in keys))
        started = self._started.pop((source_id, pids[0], history), None) if len(pids) == 1 else None
        outcomes = await (started if started is not None else
                          self._gateway.fetch(source, pids, history, self._today, self._deadline, self.ahead))
        narrowed = {key: self._narrow(outcomes[key[1]], history and not key[2]) for key in keys}
        if source.capabilities.cancel:
            # The rows' latest cancellation requests are read now, while slower sources are
            # still being asked, not after the last one answers (the list's resolver loads
            # the same keys and finds them read, or under way).
            self._cancellations.load_many([(source.id, row.upstream_id, key[1])
                                           for key, outcome in narrowed.items() for row in outcome.rows])
        return narrowed

    def _narrow(self, outcome: SourceOutcome, future_only: bool) -> SourceOutcome:
        if not future_only:
            return outcome
        today_start = start_of_day(self._today)
        rows = tuple(a for a in outcome.rows if a.start >= today_start)
        return SourceOutcome(outcome.source_id, outcome.state, rows, outcome.fetched_at, outcome.message)


AppointmentKey = tuple[str, str, str]
"""(source id, provider's appointment id, subject pid)"""


class CancellationByAppointmentLoader(DataLoader[AppointmentKey, CancellationRecord | None]):
    """The latest cancellation request of each appointment (two Redis reads per batch).
    Without Redis, no request is known: the list still answers."""

    def __init__(self, store: CancellationStore) -> None:
        super().__init__()
        self._store = store

    async def batch_load_fn(self, keys: list[AppointmentKey]) -> list[CancellationRecord | None]:
        try:
            request_ids = await self._store.latest_for(keys)
            found = await self._store.get_many([rid for rid in request_ids if rid])
        except (RedisError, OSError) as exc:
            log.warning("cancellations.read_failed", error=type(exc).__name__)
            return [None] * len(keys)
        records = iter(found)
        return [next(records) if rid else None for rid in request_ids]
