"""One page of a person's appointment list: the filter and connection types, and putting
the page together from the read path's plain functions (whose list, which sources, their
answers, the rows the access policy lets through, the latest cancellation of each)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import strawberry
from graphql import FieldNode

from bff.cancellation.store import CancellationRecord
from bff.domain import models as domain
from bff.domain.errors import BadInput
from bff.domain.ids import Ids
from bff.domain.models import AppointmentStatus, SourceKind
from bff.domain.rules import TimeFilter
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
    visible_rows,
)
from resolvers.appointments.nodes import ACCEPTED, Appointment, appointment_node
from resolvers.common import PageInfo
from resolvers.context import Context, Info
from resolvers.persons.subjects import patient, subject
from resolvers.sources.types import Source, SourceResult

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


def _instant(value: datetime | None, name: str) -> datetime | None:
    """A filter bound in Europe/Oslo time; years outside the calendar's working range are
    the client's mistake (they would overflow when shifted to Oslo's offset)."""
    if value is None:
        return None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise BadInput(f"`{name}` må ligge mellom år {FIRST_YEAR} og {LAST_YEAR}.")
    return to_oslo(value)


def row_cursor(ids: Ids, appt: domain.Appointment) -> str:
    """The cursor after a row: where it sits in the list's order (start, source, id), encrypted."""
    return ids.encode("K", appt.start.isoformat(), appt.source_id, appt.upstream_id)


@strawberry.type(description="A list position.")
class AppointmentEdge:
    node: Appointment = strawberry.field(description="The appointment.")
    row: strawberry.Private[domain.Appointment]

    @strawberry.field(description="Pass as `after` to continue after this row.")
    def cursor(self, info: Info) -> str:
        # Made only when asked for: it costs an encryption per row.
        return row_cursor(info.context.services.ids, self.row)


@strawberry.type(description="One page of the appointment list.")
class AppointmentConnection:
    edges: list[AppointmentEdge] = strawberry.field(description="Rows with their cursors.")
    nodes: list[Appointment] = strawberry.field(description="Rows, without cursors.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")
    total_count: int = strawberry.field(description="Rows matching the filter, across all pages.")
    sources: list[SourceResult] = strawberry.field(description="Every source consulted for this answer.")


def page_request(info: Info, first: int | None, after: str | None) -> tuple[int, tuple[datetime, str, str] | None]:
    """`first` (checked) and the position `after` names."""
    return page_bounds(info.context.services.ids, first, after)


def page_bounds(ids: Ids, first: int | None, after: str | None) -> tuple[int, tuple[datetime, str, str] | None]:
    """`first` (checked) and the position `after` names; `BadInput` when either is wrong."""
    first = DEFAULT_PAGE_SIZE if first is None else first
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise BadInput(f"`first` må være mellom 0 og {MAX_PAGE_SIZE}.")
    if after is None:
        return first, None
    parts = ids.decode("K", after)
    try:
        if parts is None or len(parts) != 3:
            raise ValueError
        return first, (to_oslo(datetime.fromisoformat(parts[0])), parts[1], parts[2])
    except ValueError:
        raise BadInput("`after` er ikke en markør fra denne listen.") from None


def own_list_sources(ctx: Context, wanted: ListFilter) -> list[tuple[SourceConfig, bool]]:
    """The sources a list with `wanted` consults, each with whether its history is wanted."""
    return [(s, wanted.time.wants_history(s)) for s in ctx.services.catalogue.sources if wanted.consults(s)]


async def consulted_for(info: Info, wanted: ListFilter, on_behalf_of: strawberry.ID | None) -> tuple[
        Subject, list[Consulted]]:
    """Whose list it is and what each source that applies answered. For the viewer's own
    list the cache is read while the directory says which sources apply."""
    ctx = info.context
    ahead = ctx.appointments.ahead
    if on_behalf_of is None:
        ctx.appointments.start_own_list(own_list_sources(ctx, wanted), ctx.viewer.pid, _alone(info))
    try:
        who = await subject(info, on_behalf_of)
        chosen = choose(who, ctx.services.catalogue, wanted)
        consulted, _ = await asyncio.gather(
            consult(who, chosen, wanted, lambda s, p, h: ctx.appointments.load((s, p, h))),
            _audit_list(info, who, chosen))
    finally:
        ahead.release_unused()
    return who, consulted


async def page_of(info: Info, who: Subject, consulted: list[Consulted], wanted: ListFilter, first: int,
                  position: tuple[datetime, str, str] | None) -> AppointmentConnection:
    """The page: the rows the access policy lets through, in order, with their requests."""
    ctx = info.context
    latest = await _latest_requests(info, consulted, who.pid)
    accepted = {key for key, record in latest.items() if record is not None and record.status is ACCEPTED}
    rows = visible_rows(who, overlay_accepted(consulted, accepted), wanted, ctx.today)
    page, more = page_after(rows, position, first)
    owner_person, owner = patient(info, who), ctx.services.ids.pseudonym(who.pid)
    sources = {c.source.id: (c.source, Source.of(c.source)) for c in consulted}
    nodes = [appointment_node(info, a, sources[a.source_id][0], owner_person,
                              latest.get((a.source_id, a.upstream_id)), owner, sources[a.source_id][1])
             for a in page]
    for c in consulted:
        ctx.saw(c.outcome)
    return AppointmentConnection(
        edges=[AppointmentEdge(node=n, row=a) for a, n in zip(page, nodes, strict=True)], nodes=nodes,
        total_count=len(rows), sources=_source_results(consulted),
        page_info=PageInfo(has_next_page=more, end_cursor=row_cursor(ctx.services.ids, page[-1]) if page else None),
    )


async def _audit_list(info: Info, who: Subject, chosen: Chosen) -> None:
    """Audit a list while its providers are asked, not after them: the entry names the
    sources consulted, known by now, and the answer still waits for it. It is sent once
    the calls have gone out (its Redis round trip would otherwise delay them)."""
    ctx = info.context
    if any(outcome is None for _, outcome in chosen):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(ctx.deadline):
                await ctx.appointments.asked.wait()
    await ctx.audit(who.pid, "list", "ok", ",".join(source.id for source, _ in chosen))


async def _latest_requests(info: Info, consulted: list[Consulted],
                           subject_pid: str) -> dict[tuple[str, str], CancellationRecord | None]:
    """The latest cancellation request of every row from a source that takes them; a
    request the provider's own rows show settled is settled (the provider is the truth)."""
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
