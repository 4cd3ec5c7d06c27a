"""The root Query: the viewer, the appointment list, single lookups and the catalogue."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import strawberry
from graphql import FieldNode

from bff.cancellation.service import Target
from bff.cancellation.store import CancellationRecord
from bff.domain import models as domain
from bff.domain.access import EVER, cancel_refusal, may_consult, may_see, may_see_kind
from bff.domain.errors import BadInput, NotFound, Unavailable
from bff.domain.models import AppointmentStatus, CancellationStatus, SourceKind
from bff.domain.rules import TimeFilter, applies_to_everyone, with_cancellation
from bff.domain.sources import SourceConfig
from bff.domain.timez import FIRST_YEAR, LAST_YEAR, to_oslo
from bff.readpath.appointments import (
    Chosen,
    Consulted,
    ListFilter,
    Subject,
    choose,
    consult,
    overlay_accepted,
    page_after,
    representations,
    subject_for,
    visible_rows,
)
from bff.readpath.gateway import SourceState
from resolvers.cancellation import CancellationRequest, cancellation_node, find_cancellation
from resolvers.context import Info
from resolvers.types import (
    Appointment,
    AppointmentConnection,
    AppointmentEdge,
    Location,
    Node,
    PageInfo,
    Person,
    Source,
    SourceResult,
    row_cursor,
)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


@strawberry.input(description="Narrows the list. Explicit from/to only ever narrow the default window.")
class AppointmentFilter:
    from_: datetime | None = strawberry.field(name="from", default=None, description=(
        "Earliest start. Default: the start of today (Europe/Oslo)."))
    to: datetime | None = strawberry.field(default=None, description="Latest start. Default: no upper bound.")
    include_past: bool | None = strawberry.field(default=False, description=(
        "Also rows before today, from sources that keep a history (GP pilot, Oslo's performed "
        "visits), back to each source's look-back (default two years)."))
    statuses: list[AppointmentStatus] | None = strawberry.field(default=None, description="Only these statuses.")
    source_kinds: list[SourceKind] | None = strawberry.field(default=None, description="Only these kinds of source.")
    source_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Only these sources.")

    def to_domain(self) -> ListFilter:
        return ListFilter(
            time=TimeFilter(_instant(self.from_, "from"), _instant(self.to, "to"), bool(self.include_past)),
            statuses=frozenset(self.statuses) if self.statuses is not None else None,
            source_kinds=frozenset(self.source_kinds) if self.source_kinds is not None else None,
            source_ids=frozenset(str(i) for i in self.source_ids) if self.source_ids is not None else None,
        )


ACCEPTED = CancellationStatus.ACCEPTED
NOT_ASKED_TEXT = "Vi får ikke hentet avtalen akkurat nå. Prøv igjen om litt."


def _instant(value: datetime | None, name: str) -> datetime | None:
    """A filter bound in Europe/Oslo time; years outside the calendar's working range are
    the client's mistake (they would overflow when shifted to Oslo's offset)."""
    if value is None:
        return None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise BadInput(f"`{name}` må ligge mellom år {FIRST_YEAR} og {LAST_YEAR}.")
    return to_oslo(value)


def person_id(info: Info, pid: str) -> str:
    ids = info.context.services.ids
    return ids.encode("P", ids.pseudonym(pid))


async def represented_persons(info: Info, pid: str) -> list[Person]:
    """The persons the viewer may act for (only the viewer's own list is ever shown)."""
    ctx = info.context
    if pid != ctx.viewer.pid:
        return []
    viewer = await ctx.persons.load(pid)
    reps = await representations(viewer, ctx.persons.load, ctx.today)
    return [Person.of(rep.pid, lookup.record, person_id(info, rep.pid)) for rep, lookup, _ in reps]


def appointment_node(info: Info, appt: domain.Appointment, source: SourceConfig, patient: Person,
                     latest: CancellationRecord | None, owner: str | None = None,
                     source_node: Source | None = None) -> Appointment:
    ids = info.context.services.ids
    owner = owner or ids.pseudonym(appt.patient_pid)
    location = Location(name=appt.location_name, address=appt.location_address) \
        if appt.location_name or appt.location_address else None
    return Appointment(
        id=strawberry.ID(ids.encode("A", source.id, appt.upstream_id, owner)),
        source=source_node or Source.of(source), patient=patient, status=appt.status, confirmed=appt.confirmed,
        start=appt.start, end=appt.end, title=appt.title, kind=appt.kind, service=appt.service,
        visit_kind=appt.visit_kind, organization=appt.organization, department=appt.department,
        location=location, practitioner=appt.practitioner, cancelled_by=appt.cancelled_by,
        can_cancel=cancel_refusal(source, appt, info.context.now, latest is not None and latest.open) is None,
        cancellation=cancellation_node(info, latest) if latest is not None else None,
    )


def _after(info: Info, after: str | None) -> tuple[datetime, str, str] | None:
    if after is None:
        return None
    parts = info.context.services.ids.decode("K", after)
    try:
        if parts is None or len(parts) != 3:
            raise ValueError
        return to_oslo(datetime.fromisoformat(parts[0])), parts[1], parts[2]
    except ValueError:
        raise BadInput("`after` is not a cursor from this list.") from None


async def _subject(info: Info, on_behalf_of: strawberry.ID | None) -> Subject:
    ctx = info.context
    return await subject_for(ctx.viewer.pid, on_behalf_of, ctx.services.ids, ctx.persons.load, ctx.today)


def _patient(info: Info, subject: Subject) -> Person:
    return Person.of(subject.pid, subject.lookup.record, person_id(info, subject.pid))


async def _audit_list(info: Info, subject: Subject, chosen: Chosen) -> None:
    """Audit a list while its providers are asked, not after them: the entry names the
    sources consulted, known by now, and the answer still waits for it. It is sent once
    the calls have gone out (its Redis round trip would otherwise delay them)."""
    ctx = info.context
    if any(outcome is None for _, outcome in chosen):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(ctx.deadline):
                await ctx.appointments.asked.wait()
    await ctx.audit(subject.pid, "list", "ok", ",".join(source.id for source, _ in chosen))


async def _latest_requests(info: Info, consulted: list[Consulted],
                           subject_pid: str) -> dict[tuple[str, str], CancellationRecord | None]:
    """The latest cancellation request of every row from a source that takes them."""
    rows = [(c.source.id, a) for c in consulted if c.source.capabilities.cancel for a in c.outcome.rows]
    keys = [(s, a.upstream_id) for s, a in rows]
    records = await info.context.cancellations.load_many([(s, u, subject_pid) for s, u in keys])
    await info.context.services.cancellations.settle_by_rows(
        [(a, r) for (_, a), r in zip(rows, records, strict=True) if r is not None])
    return dict(zip(keys, records, strict=True))


def _alone(info: Info) -> bool:
    """Whether this field is all the operation asks for."""
    selections = info.operation.selection_set.selections
    return len(selections) == 1 and isinstance(selections[0], FieldNode)


def _source_results(consulted: list[Consulted]) -> list[SourceResult]:
    return [SourceResult(source=Source.of(c.source), state=c.outcome.state, fetched_at=c.outcome.fetched_at,
                         message=c.outcome.message) for c in consulted]


async def _locate(info: Info, appointment_id: str) -> tuple[
        Subject, SourceConfig, domain.Appointment, CancellationRecord | None] | None:
    """One of the viewer's (or a represented person's) appointments, with its latest
    cancellation request; None for anything else, whether it does not exist or belongs to
    someone the viewer may not see. Raises Unavailable when the owner may be seen but the
    directory or the source could not be asked: "not found" would be untrue."""
    ctx = info.context
    parts = ctx.services.ids.decode("A", appointment_id)
    if parts is None:
        return None
    source_id, upstream_id, owner = parts
    subject = await _owner_subject(info, owner)
    source = ctx.services.catalogue.by_id(source_id)
    if subject is None or source is None or not may_see_kind(source, subject.kinds):
        return None
    if not subject.lookup.ok and not applies_to_everyone(source):
        raise Unavailable(NOT_ASKED_TEXT)
    record = subject.lookup.record
    if not may_consult(source, subject.kinds, record):
        return None
    outcome = await ctx.appointments.load((source.id, subject.pid, source.capabilities.past))
    if outcome.state is SourceState.UNAVAILABLE:
        raise Unavailable(NOT_ASKED_TEXT)
    for appt in outcome.rows:
        if appt.upstream_id == upstream_id and may_see(source, appt, subject.kinds, record, EVER, ctx.today):
            latest = await ctx.cancellations.load((source.id, appt.upstream_id, subject.pid))
            return subject, source, with_cancellation(appt, latest is not None and latest.status is ACCEPTED), latest
    return None


async def find_appointment(info: Info, appointment_id: str) -> Appointment | None:
    found = await _locate(info, appointment_id)
    if found is None:
        return None
    subject, source, appt, latest = found
    ctx = info.context
    await ctx.audit(subject.pid, "read", "ok", source.id)
    return appointment_node(info, appt, source, _patient(info, subject), latest)


async def find_target(info: Info, appointment_id: str) -> Target | None:
    """The appointment a cancellation is asked for, under the same rules as reading it."""
    found = await _locate(info, appointment_id)
    if found is None:
        return None
    subject, source, appt, latest = found
    return Target(subject.pid, source, appt, latest is not None and latest.open)


async def _owner_subject(info: Info, owner: str) -> Subject | None:
    ctx = info.context
    ids = ctx.services.ids
    if owner == ids.pseudonym(ctx.viewer.pid):
        return await _subject(info, None)
    try:
        return await _subject(info, strawberry.ID(ids.encode("P", owner)))
    except (NotFound, Unavailable):
        return None


@strawberry.type(description="Read the appointment list and what it is built from.")
class Query:
    @strawberry.field(description="The logged-in citizen.")
    async def me(self, info: Info) -> Person:
        lookup = await info.context.persons.load(info.context.viewer.pid)
        if not lookup.ok:
            raise Unavailable("Personregisteret svarer ikke akkurat nå. Prøv igjen om litt.")
        return _patient(info, Subject(info.context.viewer.pid, lookup, frozenset()))

    @strawberry.field(description=(
        "One list of appointments from every provider that holds some for the person, sorted by "
        "start, then source, then id. `sources` tells which providers were consulted and how they "
        "answered: a slow or broken provider never breaks the list."))
    async def appointments(
        self, info: Info, filter: AppointmentFilter | None = None,
        first: int | None = DEFAULT_PAGE_SIZE, after: str | None = None,
        on_behalf_of: strawberry.ID | None = None,
    ) -> AppointmentConnection:
        first = DEFAULT_PAGE_SIZE if first is None else first
        if not 0 <= first <= MAX_PAGE_SIZE:
            raise BadInput(f"`first` must be between 0 and {MAX_PAGE_SIZE}.")
        position = _after(info, after)
        wanted = (filter or AppointmentFilter()).to_domain()
        ctx = info.context
        ahead = ctx.appointments.ahead
        if on_behalf_of is None:
            ctx.appointments.start_own_list([(s, wanted.time.wants_history(s)) for s in ctx.services.catalogue.sources
                                             if wanted.consults(s)], ctx.viewer.pid, _alone(info))
        try:
            subject = await _subject(info, on_behalf_of)
            chosen = choose(subject, ctx.services.catalogue, wanted)
            consulted, _ = await asyncio.gather(
                consult(subject, chosen, wanted, lambda s, p, h: ctx.appointments.load((s, p, h))),
                _audit_list(info, subject, chosen))
        finally:
            ahead.release_unused()
        latest = await _latest_requests(info, consulted, subject.pid)
        accepted = {key for key, record in latest.items() if record is not None and record.status is ACCEPTED}
        rows = visible_rows(subject, overlay_accepted(consulted, accepted), wanted, ctx.today)
        page, more = page_after(rows, position, first)
        patient = _patient(info, subject)
        sources = {c.source.id: c.source for c in consulted}
        source_nodes = {c.source.id: Source.of(c.source) for c in consulted}
        owner = ctx.services.ids.pseudonym(subject.pid)
        nodes = [appointment_node(info, a, sources[a.source_id], patient, latest.get((a.source_id, a.upstream_id)),
                                  owner, source_nodes[a.source_id]) for a in page]
        edges = [AppointmentEdge(node=n, row=a) for a, n in zip(page, nodes, strict=True)]
        ctx.degraded = ctx.degraded or any(c.outcome.state is not SourceState.OK for c in consulted)
        return AppointmentConnection(
            edges=edges, nodes=nodes, total_count=len(rows), sources=_source_results(consulted),
            page_info=PageInfo(has_next_page=more, end_cursor=row_cursor(ctx.services.ids, page[-1]) if page else None),
        )

    @strawberry.field(description="One appointment by id; null when unknown or not yours to see.")
    async def appointment(self, info: Info, id: strawberry.ID) -> Appointment | None:
        return await find_appointment(info, id)

    @strawberry.field(description="One of the viewer's cancellation requests; null when unknown or not theirs.")
    async def cancellation_request(self, info: Info, id: strawberry.ID) -> CancellationRequest | None:
        return await find_cancellation(info, id)

    @strawberry.field(description="Every configured source: the coverage catalogue.")
    def sources(self, info: Info) -> list[Source]:
        return [Source.of(s) for s in info.context.services.catalogue.sources]

    @strawberry.field(description="Any object with an id: an appointment, a source or a cancellation request.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        source = info.context.services.catalogue.by_id(id)
        if source is not None:
            return Source.of(source)
        return await find_appointment(info, id) or await find_cancellation(info, id)
