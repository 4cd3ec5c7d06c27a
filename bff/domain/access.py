"""The access policy: who may see which appointment, and when one may be cancelled.

Every path that shows or acts on an appointment — the list, a lookup by id, the calendar,
the cancellation mutation — asks these functions; none decides on its own."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from bff.domain.errors import Coded
from bff.domain.models import Appointment, AppointmentStatus, PersonRecord, SourceKind
from bff.domain.rules import TimeFilter, applies_to, shows
from bff.domain.sources import SourceConfig
from bff.domain.timez import start_of_day
from bff.domain.wire import CANCEL_FLAG

CANCELLABLE_STATUSES = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.ASSIGNED})
EVER = TimeFilter(include_past=True)
"""The window of a lookup by id: any row the source keeps that a list could show."""


def may_see_kind(source: SourceConfig, kinds: frozenset[SourceKind]) -> bool:
    """Whether the viewer may see this kind of the person's appointments: `kinds` is what
    Helsenorge's representation rules allow (`rules.representation_kinds`; all for oneself)."""
    return source.kind in kinds


def may_consult(source: SourceConfig, kinds: frozenset[SourceKind], person: PersonRecord | None) -> bool:
    """Whether a source's appointments of a person may be shown to the viewer at all: the
    viewer may see that kind, and the source applies to the person."""
    return may_see_kind(source, kinds) and applies_to(source, person)


def may_see(source: SourceConfig, appt: Appointment, kinds: frozenset[SourceKind], person: PersonRecord | None,
            window: TimeFilter, today: date) -> bool:
    """Whether one row is shown to the viewer: its source may be consulted for the person,
    the source's configuration shows the row, and it lies in the window."""
    return bool(seen(source, (appt,), kinds, person, window, today))


def seen(source: SourceConfig, rows: Iterable[Appointment], kinds: frozenset[SourceKind],
         person: PersonRecord | None, window: TimeFilter, today: date) -> list[Appointment]:
    """The rows of one source `may_see` lets through, in their order (what is the same
    for every row — may the source be consulted, where the window starts — decided once:
    a list asks it of a few hundred rows)."""
    if not may_consult(source, kinds, person):
        return []
    today_start = start_of_day(today)
    lower, upper = window.bounds(source, today)
    future = source.capabilities.future
    return [appt for appt in rows
            if shows(source, appt, today_start) and lower <= appt.start and (upper is None or appt.start <= upper)
            and (future or appt.start < today_start)]


class CancelRefusal(Coded):
    """Why an appointment cannot be cancelled: the code (its name) and the message for
    the citizen (its value)."""

    SOURCE_CANNOT_CANCEL = "Denne tilbyderen tar ikke imot avbestillinger her ennå."
    NOT_CANCELLABLE = "Denne avtalen kan ikke avbestilles her. Kontakt tilbyderen."
    ALREADY_CANCELLED = "Avtalen er allerede avlyst."
    IN_THE_PAST = "Avtalen har allerede startet eller er forbi."
    TOO_CLOSE_TO_START = "Det er for kort tid til avtalen til å avbestille her. Kontakt tilbyderen."
    REQUEST_PENDING = "Det er allerede sendt en avbestilling som venter på svar."


def cancel_refusal(source: SourceConfig, appt: Appointment, now: datetime,
                   open_request: bool) -> CancelRefusal | None:
    """Why an appointment cannot be cancelled now, or None when it can: the source takes
    cancellations, the row's flags (if any) include `cancel`, it is still booked, it starts
    after the source's notice period, and no request for it is open (pending or accepted)."""
    if not source.capabilities.cancel:
        return CancelRefusal.SOURCE_CANNOT_CANCEL
    if appt.flags and CANCEL_FLAG not in appt.flags:
        return CancelRefusal.NOT_CANCELLABLE
    if appt.status is AppointmentStatus.CANCELLED:
        return CancelRefusal.ALREADY_CANCELLED
    if appt.status not in CANCELLABLE_STATUSES:
        return CancelRefusal.NOT_CANCELLABLE
    if appt.start <= now:
        return CancelRefusal.IN_THE_PAST
    if appt.start - now < timedelta(hours=source.cancel_notice_hours):
        return CancelRefusal.TOO_CLOSE_TO_START
    if open_request:
        return CancelRefusal.REQUEST_PENDING
    return None
