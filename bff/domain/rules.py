"""Business rules, as plain functions: which sources apply to a person, what each source
shows, what a representative may see, the client's window, and the list's order. The
access policy (`bff.domain.access`) combines them into who may see and cancel what."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from bff.domain.models import (
    Appointment,
    AppointmentStatus,
    CancelledBy,
    PersonRecord,
    Representation,
    RepresentationBasis,
    SourceKind,
    VisitKind,
)
from bff.domain.sources import SourceConfig
from bff.domain.timez import age_on, start_of_day

ALL_KINDS = frozenset(SourceKind)
CHILD_FULL_ACCESS_BELOW = 12
CHILD_PARTIAL_ACCESS_BELOW = 16


def applies_to_everyone(source: SourceConfig) -> bool:
    """Whether a source is asked for everyone, whatever the person directory says (or when
    it cannot be asked): the hospitals."""
    return source.kind is SourceKind.HOSPITAL


def applies_to(source: SourceConfig, person: PersonRecord | None) -> bool:
    """Routing: hospitals for everyone; a municipality for its districts' residents; the
    GP pilot for persons whose GP practice (HER-id) takes part."""
    if applies_to_everyone(source):
        return True
    if person is None:
        return False
    if source.kind is SourceKind.MUNICIPALITY:
        return source.serves_district(person.municipality, person.district)
    return person.gp_her_id is not None and person.gp_her_id in source.gp_practices


def shows(source: SourceConfig, appt: Appointment, today_start: datetime) -> bool:
    """Whether a source's configuration lets this row be shown at all. A municipality shows
    the services it lists, and of those: cancelled visits not before today, performed
    visits (the only ones that may lie in the past), and planned visits of a kind it lists,
    not before today — each only if its `visibility` names it."""
    if source.kind is SourceKind.MUNICIPALITY:
        if appt.service is None or appt.service not in source.services:
            return False
        if appt.cancelled:
            return "cancelled" in source.visibility and appt.start >= today_start
        if appt.visit_kind is VisitKind.PERFORMED:
            return "performed" in source.visibility
        return (appt.visit_kind is not None and appt.visit_kind.value.lower() in source.visibility
                and appt.start >= today_start)
    return source.allows_department(appt.department_keys)


@dataclass(frozen=True, slots=True)
class TimeFilter:
    """The client's window: `start`/`end` as asked, and whether past rows are wanted."""

    start: datetime | None = None
    end: datetime | None = None
    include_past: bool = False

    def wants_history(self, source: SourceConfig) -> bool:
        return self.include_past and source.capabilities.past

    def bounds(self, source: SourceConfig, today: date) -> tuple[datetime, datetime | None]:
        """The effective window for one source: default from the start of today; with
        `includePast`, from the source's look-back for sources that keep a history;
        explicit `from`/`to` only ever narrow."""
        lower = start_of_day(today)
        if self.wants_history(source):
            lower = start_of_day(today - timedelta(days=source.lookback_days))
        if self.start is not None and self.start > lower:
            lower = self.start
        return lower, self.end


def representation_kinds(rep: Representation, subject: PersonRecord | None, viewer: PersonRecord | None,
                         today: date) -> frozenset[SourceKind]:
    """Which kinds of appointments a representative may see, by Helsenorge's rules."""
    if viewer is None or subject is None or viewer.confidential or subject.confidential:
        return frozenset()
    if rep.basis is RepresentationBasis.POWER_OF_ATTORNEY:
        return ALL_KINDS
    birth = subject.birth_date or rep.birth_date
    if birth is None:
        return frozenset()
    age = age_on(birth, today)
    if age < CHILD_FULL_ACCESS_BELOW:
        return ALL_KINDS
    if age < CHILD_PARTIAL_ACCESS_BELOW:
        return frozenset({SourceKind.GP, SourceKind.MUNICIPALITY})
    return frozenset()


def sort_key(appt: Appointment) -> tuple[datetime, str, str]:
    """The list's order: by start, then source id, then id."""
    return appt.start, appt.source_id, appt.upstream_id


def with_cancellation(appt: Appointment, accepted: bool) -> Appointment:
    """An accepted cancellation shows at once as CANCELLED by the patient, even before the
    provider's own list says so."""
    if not accepted or appt.status is AppointmentStatus.CANCELLED:
        return appt
    return replace(appt, status=AppointmentStatus.CANCELLED, cancelled_by=CancelledBy.PATIENT, cancelled=True)


def settled_by_provider(appt: Appointment, request_pending: bool) -> bool:
    """A request still pending whose appointment the provider lists as cancelled by the
    citizen: the provider took it (its answer was lost on the way)."""
    return request_pending and appt.status is AppointmentStatus.CANCELLED and appt.cancelled_by is CancelledBy.PATIENT
