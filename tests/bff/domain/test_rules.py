"""Business rules as plain functions, without GraphQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bff.domain.access import CancelRefusal, cancel_refusal
from bff.domain.models import (
    Appointment,
    AppointmentStatus,
    MunicipalService,
    PersonRecord,
    Representation,
    RepresentationBasis,
    SourceKind,
    VisitKind,
)
from bff.domain.rules import ALL_KINDS, TimeFilter, applies_to, representation_kinds, shows
from bff.domain.sources import load_sources
from bff.domain.timez import OSLO, start_of_day

pytestmark = pytest.mark.unit

CATALOGUE = load_sources(None, {"SANDBOX_URL": "http://sandbox"})
BERGEN = CATALOGUE.by_id("bergen-kommune")
OSLO_SOURCE = CATALOGUE.by_id("oslo-kommune")
GP = CATALOGUE.by_id("fastlege-pilot")
NORD = CATALOGUE.by_id("helse-nord")
TODAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=OSLO)
assert BERGEN and OSLO_SOURCE and GP and NORD


def person(birth: date | None = date(1980, 1, 1), confidential: bool = False, **kw: object) -> PersonRecord:
    values: dict[str, object] = {"municipality": None, "district": None, "gp_her_id": None, **kw}
    return PersonRecord("x", "X", birth, confidential, **values)  # type: ignore[arg-type]


def rep(birth: date | None, basis: RepresentationBasis = RepresentationBasis.PARENT) -> Representation:
    return Representation("y", "Y", birth, basis)


@pytest.mark.parametrize(("age", "kinds"), [
    (0, ALL_KINDS), (11, ALL_KINDS), (12, {SourceKind.GP, SourceKind.MUNICIPALITY}),
    (15, {SourceKind.GP, SourceKind.MUNICIPALITY}), (16, set()), (40, set()),
])
def test_parent_access_by_the_childs_age(age: int, kinds: set[SourceKind]) -> None:
    birth = date(TODAY.year - age, TODAY.month, TODAY.day)  # birthday today: exactly `age`
    child = person(birth)
    assert representation_kinds(rep(birth), child, person(), TODAY) == kinds


def test_the_day_before_the_12th_birthday_is_still_full_access() -> None:
    birth = date(TODAY.year - 12, TODAY.month, TODAY.day) + timedelta(days=1)
    assert representation_kinds(rep(birth), person(birth), person(), TODAY) == ALL_KINDS


def test_power_of_attorney_sees_everything_and_confidential_addresses_block_both_ways() -> None:
    poa = rep(date(1940, 1, 1), RepresentationBasis.POWER_OF_ATTORNEY)
    assert representation_kinds(poa, person(date(1940, 1, 1)), person(), TODAY) == ALL_KINDS
    assert representation_kinds(poa, person(confidential=True), person(), TODAY) == frozenset()
    assert representation_kinds(poa, person(), person(confidential=True), TODAY) == frozenset()
    assert representation_kinds(poa, None, person(), TODAY) == frozenset()


def test_routing() -> None:
    assert applies_to(NORD, None)
    assert applies_to(BERGEN, person(municipality="4601", district="åsane"))
    assert not applies_to(BERGEN, person(municipality="4601", district="Bergenhus"))
    assert not applies_to(BERGEN, person(municipality="0301", district="Åsane"))
    assert applies_to(GP, person(gp_her_id="8094711"))
    assert not applies_to(GP, person(gp_her_id="1"))
    assert not applies_to(GP, None)


def visit(kind: VisitKind, status: AppointmentStatus, start: datetime, *, cancelled: bool = False,
          service: MunicipalService | None = MunicipalService.HOME_NURSING, flags: frozenset[str] = frozenset()
          ) -> Appointment:
    return Appointment("bergen-kommune", "v", "p", status, start, visit_kind=kind, cancelled=cancelled,
                       service=service, flags=flags)


def test_visibility_per_municipality() -> None:
    today = start_of_day(TODAY)
    future = NOW + timedelta(days=2)
    assigned = visit(VisitKind.ASSIGNED, AppointmentStatus.ASSIGNED, future)
    performed = visit(VisitKind.PERFORMED, AppointmentStatus.FULFILLED, NOW - timedelta(days=2))
    assert shows(BERGEN, assigned, today) and not shows(OSLO_SOURCE, assigned, today)
    assert shows(OSLO_SOURCE, performed, today) and not shows(BERGEN, performed, today)
    cancelled_future = visit(VisitKind.REGULAR, AppointmentStatus.CANCELLED, future, cancelled=True)
    cancelled_past = visit(VisitKind.REGULAR, AppointmentStatus.CANCELLED, today - timedelta(minutes=1), cancelled=True)
    assert shows(BERGEN, cancelled_future, today) and not shows(BERGEN, cancelled_past, today)
    meals = visit(VisitKind.REGULAR, AppointmentStatus.BOOKED, future, service=None)
    assert not shows(BERGEN, meals, today)


@pytest.mark.parametrize(("when", "kind", "status", "cancelled", "oslo", "bergen"), [
    ("past", VisitKind.REGULAR, AppointmentStatus.BOOKED, False, False, False),
    ("past", VisitKind.ASSIGNED, AppointmentStatus.ASSIGNED, False, False, False),
    ("past", VisitKind.PERFORMED, AppointmentStatus.FULFILLED, False, True, False),
    ("past", VisitKind.REGULAR, AppointmentStatus.CANCELLED, True, False, False),
    ("future", VisitKind.REGULAR, AppointmentStatus.BOOKED, False, True, True),
    ("future", VisitKind.ASSIGNED, AppointmentStatus.ASSIGNED, False, False, True),
    ("future", VisitKind.REGULAR, AppointmentStatus.CANCELLED, True, True, True),
    ("today", VisitKind.REGULAR, AppointmentStatus.BOOKED, False, True, True),
], ids=lambda v: getattr(v, "name", str(v)))
def test_what_each_municipality_shows(when: str, kind: VisitKind, status: AppointmentStatus, cancelled: bool,
                                      oslo: bool, bergen: bool) -> None:
    """Oslo: regular future, performed, cancelled future. Bergen: regular, assigned and
    cancelled future. Only performed visits may lie in the past; a planned visit that
    started before today (never marked performed) is shown by neither."""
    today = start_of_day(TODAY)
    start = {"past": today - timedelta(hours=3), "today": today + timedelta(hours=8),
             "future": NOW + timedelta(days=2)}[when]
    row = visit(kind, status, start, cancelled=cancelled)
    assert (shows(OSLO_SOURCE, row, today), shows(BERGEN, row, today)) == (oslo, bergen)


def test_time_filter_never_widens_and_include_past_only_for_sources_with_history() -> None:
    wanted = TimeFilter(start=NOW - timedelta(days=400), include_past=True)
    assert wanted.bounds(GP, TODAY)[0] == NOW - timedelta(days=400)
    assert wanted.bounds(NORD, TODAY)[0] == start_of_day(TODAY)
    assert TimeFilter(start=NOW - timedelta(days=400)).bounds(GP, TODAY)[0] == start_of_day(TODAY)
    assert TimeFilter(include_past=True).bounds(GP, TODAY)[0] == start_of_day(TODAY - timedelta(days=730))


@pytest.mark.parametrize(("case", "code"), [
    ("ok", None),
    ("cancelled", "ALREADY_CANCELLED"),
    ("fulfilled", "NOT_CANCELLABLE"),
    ("started", "IN_THE_PAST"),
    ("tomorrow-morning", "TOO_CLOSE_TO_START"),
    ("flags-without-cancel", "NOT_CANCELLABLE"),
    ("flags-with-cancel", None),
    ("open-request", "REQUEST_PENDING"),
])
def test_cancel_refusals(case: str, code: str | None) -> None:
    start = NOW + timedelta(days=5)
    status, flags = AppointmentStatus.BOOKED, frozenset[str]()
    if case == "cancelled":
        status = AppointmentStatus.CANCELLED
    elif case == "fulfilled":
        status = AppointmentStatus.FULFILLED
    elif case == "started":
        start = NOW - timedelta(minutes=5)
    elif case == "tomorrow-morning":
        start = NOW + timedelta(hours=20)
    elif case == "flags-without-cancel":
        flags = frozenset({"canAcknowledge"})
    elif case == "flags-with-cancel":
        flags = frozenset({"canAcknowledge", "cancel"})
    appt = visit(VisitKind.REGULAR, status, start, flags=flags)
    refusal = cancel_refusal(BERGEN, appt, NOW, open_request=case == "open-request")
    assert (refusal.code if refusal else None) == code
    assert refusal is None or refusal.message  # every refusal tells the citizen why, in Norwegian


def test_a_source_without_cancel_capability_refuses_first() -> None:
    appt = visit(VisitKind.REGULAR, AppointmentStatus.BOOKED, NOW + timedelta(days=5))
    assert cancel_refusal(OSLO_SOURCE, appt, NOW, open_request=True) is CancelRefusal.SOURCE_CANNOT_CANCEL
