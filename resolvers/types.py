"""GraphQL object types. Their descriptions are what app developers read in GraphiQL."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from bff.domain import models as domain
from bff.domain.ids import Ids
from bff.domain.models import (
    AppointmentKind,
    AppointmentStatus,
    CancelledBy,
    HealthRegion,
    MunicipalService,
    PersonRecord,
    SourceKind,
    VisitKind,
)
from bff.domain.sources import SourceConfig
from bff.readpath.gateway import SourceState

if TYPE_CHECKING:
    from resolvers.cancellation import CancellationRequest

strawberry.enum(domain.AppointmentStatus, description=(
    "BOOKED: planned. ASSIGNED: a municipal visit placed on an employee's work plan, with a firmer "
    "time. FULFILLED: took place. CANCELLED: called off (see cancelledBy). NOSHOW: the patient did "
    "not come."))
strawberry.enum(domain.VisitKind, description=(
    "REGULAR: a recurring visit. ASSIGNED: on an employee's work plan. PERFORMED: carried out."))
strawberry.enum(domain.SourceKind, description="The kind of provider a source is.")
strawberry.enum(domain.CancelledBy, description="Who cancelled: the patient or the provider.")
strawberry.enum(domain.MunicipalService, description=(
    "HOME_NURSING: hjemmesykepleie. PRACTICAL_ASSISTANCE: praktisk bistand."))
strawberry.enum(domain.HealthRegion, description="A regional health authority.")
strawberry.enum(domain.AppointmentKind, description="How the appointment takes place.")
strawberry.enum(SourceState, description=(
    "OK: answered now or from a fresh cache. STALE: the source failed; showing its last good "
    "answer (see fetchedAt). UNAVAILABLE: nothing from this source in this answer."))


@strawberry.interface(description="An object that can be fetched again by its id with `node(id:)`.")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque, stable identifier.")


@strawberry.type(description="What a source can do.")
class SourceCapabilities:
    future: bool = strawberry.field(description="Shows coming appointments.")
    past: bool = strawberry.field(description="Shows earlier appointments (with `includePast`).")
    cancel: bool = strawberry.field(description="Accepts cancellations through this service.")


@strawberry.type(description="A provider whose appointments can appear in the list.")
class Source(Node):
    name: str = strawberry.field(description="The provider's name, for display.")
    kind: SourceKind = strawberry.field(description="Hospital, GP or municipality.")
    region: HealthRegion | None = strawberry.field(description="Health region, for hospital sources.")
    municipality: str | None = strawberry.field(
        description="Municipality number (e.g. 0301 Oslo, 4601 Bergen), for municipal sources.")
    municipality_name: str | None = strawberry.field(description="Municipality name, for municipal sources.")
    districts: list[str] = strawberry.field(description="City districts (bydeler) that take part.")
    services: list[MunicipalService] = strawberry.field(description="Municipal services shown.")
    capabilities: SourceCapabilities = strawberry.field(description="What the source can do.")

    @classmethod
    def of(cls, config: SourceConfig) -> Source:
        caps = config.capabilities
        return cls(
            id=strawberry.ID(config.id), name=config.name, kind=config.kind, region=config.region,
            municipality=config.municipality, municipality_name=config.municipality_name,
            districts=list(config.districts), services=list(config.services),
            capabilities=SourceCapabilities(future=caps.future, past=caps.past, cancel=caps.cancel),
        )


@strawberry.type(description="A person: the viewer, or someone they may act for.")
class Person:
    id: strawberry.ID = strawberry.field(description="Opaque id; pass it as `onBehalfOf` to act for them.")
    name: str = strawberry.field(description="Full name (empty when the person directory does not know them).")
    birth_date: date | None = strawberry.field(description="Date of birth.")
    pid: strawberry.Private[str]

    @strawberry.field(description="Persons this person may act for, by Helsenorge's rules.")
    async def may_act_for(self, info: strawberry.Info) -> list[Person]:
        from resolvers.query import represented_persons

        return await represented_persons(info, self.pid)

    @classmethod
    def of(cls, pid: str, record: PersonRecord | None, person_id: str) -> Person:
        return cls(id=strawberry.ID(person_id), name=record.name if record else "",
                   birth_date=record.birth_date if record else None, pid=pid)


@strawberry.type(description="Where an appointment takes place.")
class Location:
    name: str | None = strawberry.field(description="Name of the place (clinic, unit).")
    address: str | None = strawberry.field(description="Street address or directions.")


@strawberry.type(description="A health appointment (timeavtale) from one provider.")
class Appointment(Node):
    source: Source = strawberry.field(description="The provider that holds the appointment.")
    patient: Person = strawberry.field(description="Whose appointment it is.")
    status: AppointmentStatus = strawberry.field(description="Where it stands.")
    confirmed: bool = strawberry.field(description="False while the provider has only proposed the time.")
    start: datetime = strawberry.field(description="Start, in Europe/Oslo's offset.")
    end: datetime | None = strawberry.field(description="End, when the provider gives one.")
    title: str | None = strawberry.field(description="What the appointment is for.")
    kind: AppointmentKind = strawberry.field(description="In person, video, phone or home visit.")
    service: MunicipalService | None = strawberry.field(description="The municipal service, for home visits.")
    visit_kind: VisitKind | None = strawberry.field(description="Regular, assigned or performed, for home visits.")
    organization: str | None = strawberry.field(description="Hospital, GP office or municipality.")
    department: str | None = strawberry.field(description="Department or city district.")
    location: Location | None = strawberry.field(description="Where to go.")
    practitioner: str | None = strawberry.field(description="Doctor, nurse or employee, when known.")
    cancelled_by: CancelledBy | None = strawberry.field(description="Who cancelled, for cancelled ones.")
    can_cancel: bool = strawberry.field(description="Whether the viewer may ask to cancel it now.")
    cancellation: Annotated[CancellationRequest, strawberry.lazy("resolvers.cancellation")] | None = (
        strawberry.field(description="The latest cancellation request for it, if any."))


def row_cursor(ids: Ids, appt: domain.Appointment) -> str:
    """The cursor after a row: where it sits in the list's order (start, source, id), encrypted."""
    return ids.encode("K", appt.start.isoformat(), appt.source_id, appt.upstream_id)


@strawberry.type(description="A list position.")
class AppointmentEdge:
    node: Appointment = strawberry.field(description="The appointment.")
    row: strawberry.Private[domain.Appointment]

    @strawberry.field(description="Pass as `after` to continue after this row.")
    def cursor(self, info: strawberry.Info) -> str:
        # Made only when asked for: it costs an encryption per row.
        return row_cursor(info.context.services.ids, self.row)


@strawberry.type(description="Pagination state.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More rows follow this page.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last row of this page.")


@strawberry.type(description="How one consulted source answered.")
class SourceResult:
    source: Source = strawberry.field(description="The source.")
    state: SourceState = strawberry.field(description="OK, STALE or UNAVAILABLE.")
    fetched_at: datetime | None = strawberry.field(description="When its data was fetched from the provider.")
    message: str | None = strawberry.field(description="Why it is stale or unavailable (Norwegian).")


@strawberry.type(description="One page of the appointment list.")
class AppointmentConnection:
    edges: list[AppointmentEdge] = strawberry.field(description="Rows with their cursors.")
    nodes: list[Appointment] = strawberry.field(description="Rows, without cursors.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")
    total_count: int = strawberry.field(description="Rows matching the filter, across all pages.")
    sources: list[SourceResult] = strawberry.field(description="Every source consulted for this answer.")
