"""An appointment and its cancellation request as GraphQL nodes, and how one is found by
its id under the access policy. The two types point at each other, so they live here
together."""

from __future__ import annotations

from datetime import datetime

import strawberry

from bff.cancellation.service import Target
from bff.cancellation.store import CancellationRecord
from bff.domain import models as domain
from bff.domain.access import EVER, cancel_refusal, may_consult, may_see, may_see_kind
from bff.domain.errors import Unavailable
from bff.domain.models import (
    AppointmentKind,
    AppointmentStatus,
    CancellationStatus,
    CancelledBy,
    MunicipalService,
    VisitKind,
)
from bff.domain.rules import applies_to_everyone, with_cancellation
from bff.domain.sources import SourceConfig
from bff.readpath.appointments import Subject
from bff.readpath.gateway import SourceState
from resolvers.common import Node
from resolvers.context import Info
from resolvers.persons.subjects import owner_subject, patient
from resolvers.persons.types import Person
from resolvers.sources.types import Source

strawberry.enum(domain.AppointmentStatus, description=(
    "BOOKED: planned. ASSIGNED: a municipal visit placed on an employee's work plan, with a firmer "
    "time. FULFILLED: took place. CANCELLED: called off (see cancelledBy). NOSHOW: the patient did "
    "not come."))
strawberry.enum(domain.VisitKind, description=(
    "REGULAR: a recurring visit. ASSIGNED: on an employee's work plan. PERFORMED: carried out."))
strawberry.enum(domain.CancelledBy, description="Who cancelled: the patient or the provider.")
strawberry.enum(domain.AppointmentKind, description="How the appointment takes place.")
strawberry.enum(CancellationStatus, description=(
    "PENDING: sent (or about to be sent), waiting for the provider. ACCEPTED / REJECTED: the "
    "provider's answer. FAILED: the provider could not take the request at all."))

ACCEPTED = CancellationStatus.ACCEPTED
NOT_ASKED_TEXT = "Vi får ikke hentet avtalen akkurat nå. Prøv igjen om litt."


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
    cancellation: CancellationRequest | None = strawberry.field(
        description="The latest cancellation request for it, if any.")


@strawberry.type(description="A request to cancel an appointment, and the provider's answer.")
class CancellationRequest(Node):
    status: CancellationStatus = strawberry.field(description="Where the request stands.")
    reason: str | None = strawberry.field(description="The reason the citizen gave.")
    provider_message: str | None = strawberry.field(description="The provider's message with its answer.")
    requested_at: datetime = strawberry.field(description="When the citizen asked.")
    decided_at: datetime | None = strawberry.field(description="When the provider answered.")
    appointment_id: strawberry.Private[str]

    @strawberry.field(description="The appointment it concerns, as it stands now (null if no longer visible).")
    async def appointment(self, info: Info) -> Appointment | None:
        return await find_appointment(info, self.appointment_id)


def appointment_node(info: Info, appt: domain.Appointment, source: SourceConfig, owner_person: Person,
                     latest: CancellationRecord | None, owner: str | None = None,
                     source_node: Source | None = None) -> Appointment:
    ids = info.context.services.ids
    owner = owner or ids.pseudonym(appt.patient_pid)
    location = Location(name=appt.location_name, address=appt.location_address) \
        if appt.location_name or appt.location_address else None
    return Appointment(
        id=strawberry.ID(ids.encode("A", source.id, appt.upstream_id, owner)),
        source=source_node or Source.of(source), patient=owner_person, status=appt.status,
        confirmed=appt.confirmed, start=appt.start, end=appt.end, title=appt.title, kind=appt.kind,
        service=appt.service, visit_kind=appt.visit_kind, organization=appt.organization,
        department=appt.department, location=location, practitioner=appt.practitioner,
        cancelled_by=appt.cancelled_by,
        can_cancel=cancel_refusal(source, appt, info.context.now, latest is not None and latest.open) is None,
        cancellation=cancellation_node(info, latest) if latest is not None else None,
    )


def cancellation_node(info: Info, record: CancellationRecord) -> CancellationRequest:
    ids = info.context.services.ids
    return CancellationRequest(
        id=strawberry.ID(ids.encode("C", record.request_id, ids.pseudonym(record.actor_pid))),
        status=record.status, reason=record.reason, provider_message=record.provider_message,
        requested_at=record.requested(), decided_at=record.decided_time(),
        appointment_id=ids.encode("A", record.source_id, record.upstream_id, ids.pseudonym(record.subject_pid)),
    )


async def locate(info: Info, appointment_id: str) -> tuple[
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
    subject = await owner_subject(info, owner)
    source = ctx.services.catalogue.by_id(source_id)
    if subject is None or source is None or not may_see_kind(source, subject.kinds):
        return None
    if not subject.lookup.ok and not applies_to_everyone(source):
        raise Unavailable(NOT_ASKED_TEXT)
    record = subject.lookup.record
    if not may_consult(source, subject.kinds, record):
        return None
    outcome = await ctx.appointments.load((source.id, subject.pid, source.capabilities.past))
    ctx.saw(outcome)
    if outcome.state is SourceState.UNAVAILABLE:
        raise Unavailable(NOT_ASKED_TEXT)
    for appt in outcome.rows:
        if appt.upstream_id == upstream_id and may_see(source, appt, subject.kinds, record, EVER, ctx.today):
            latest = await ctx.cancellations.load((source.id, appt.upstream_id, subject.pid))
            return subject, source, with_cancellation(appt, latest is not None and latest.status is ACCEPTED), latest
    return None


async def find_appointment(info: Info, appointment_id: str) -> Appointment | None:
    """The appointment, audited as read; None when unknown or not the viewer's to see."""
    found = await locate(info, appointment_id)
    if found is None:
        return None
    subject, source, appt, latest = found
    await info.context.audit(subject.pid, "read", "ok", source.id)
    return appointment_node(info, appt, source, patient(info, subject), latest)


async def find_target(info: Info, appointment_id: str) -> Target | None:
    """The appointment a cancellation is asked for, under the same rules as reading it."""
    found = await locate(info, appointment_id)
    if found is None:
        return None
    subject, source, appt, latest = found
    return Target(subject.pid, source, appt, latest is not None and latest.open, await info.context.actor(subject.pid))


async def find_cancellation(info: Info, request_id: str) -> CancellationRequest | None:
    """A request the viewer made; None for anything else (unknown or someone else's)."""
    ctx = info.context
    parts = ctx.services.ids.decode("C", request_id)
    if parts is None or parts[1] != ctx.services.ids.pseudonym(ctx.viewer.pid):
        return None
    record = await ctx.services.cancellations.store.get(parts[0])
    return cancellation_node(info, record) if record is not None and record.actor_pid == ctx.viewer.pid else None
