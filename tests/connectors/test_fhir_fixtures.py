"""The FHIR mapping reads every published Helsenorge example faithfully."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bff.domain.models import Appointment, AppointmentKind, AppointmentStatus, CancelledBy
from connectors.fhir.mapping import appointments_in
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit

ALL_FLAGS = frozenset({"canChangeAppointmentDialog", "canUseShortNotice", "canAcknowledge",
                       "canHaveAppointmentDetails", "canInitiateDialog"})


def read(name: str) -> tuple[list[Appointment], int]:
    resource: Any = json.loads((FIXTURES / name).read_text("utf-8"))
    return appointments_in(resource, source_id="helse-sor-ost", patients=None)


def only(name: str) -> Appointment:
    rows, skipped = read(name)
    assert skipped == 0
    assert len(rows) == 1
    return rows[0]


def test_every_fixture_file_is_read_without_error() -> None:
    files = sorted(FIXTURES.glob("*.json"))
    assert len(files) == 12
    counts = {path.name: len(read(path.name)[0]) for path in files}
    assert sum(counts.values()) == 10
    assert counts["CodeSystem-hn-appointment-flag-code-cs.json"] == 0


def test_cancelled_dips_appointment() -> None:
    appt = only("Appointment-AppointmentEksempelDIPS.json")
    assert appt.upstream_id == "AppointmentEksempelDIPS"
    assert appt.status is AppointmentStatus.CANCELLED
    # Volven 9179 code AA97 is not a patient code unless the source lists it.
    assert appt.cancelled_by is CancelledBy.PROVIDER
    assert appt.start.isoformat() == "2022-04-03T12:00:00+02:00"
    assert appt.end is not None and appt.end.isoformat() == "2022-04-03T14:00:00+02:00"
    assert appt.title == "Kontaktårsak"
    assert appt.kind is AppointmentKind.VIDEO
    assert appt.organization == "Rikshospitalet"
    assert appt.department == "Ortopedisk avdeling, Rikshospitalet"
    assert (appt.location_name, appt.location_address) == ("Ortopedisk poliklinikk", "Addressen til poliklinikk")
    assert appt.flags == ALL_FLAGS
    assert appt.patient_pid == "22067612345"


def test_patient_cancel_codes_listed_by_the_source_count_as_the_patient() -> None:
    resource = json.loads((FIXTURES / "Appointment-AppointmentEksempelDIPS.json").read_text("utf-8"))
    rows, _ = appointments_in(resource, source_id="x", patients=None, patient_cancel_codes=frozenset({"AA97"}))
    assert rows[0].cancelled_by is CancelledBy.PATIENT


@pytest.mark.parametrize(("name", "kind"), [
    ("Appointment-PhoneAppointmentEksempel.json", AppointmentKind.PHONE),
    ("Appointment-VideoAppointmentEksempel.json", AppointmentKind.VIDEO),
])
def test_virtual_appointments_keep_their_instant_in_oslo_offset(name: str, kind: AppointmentKind) -> None:
    appt = only(name)
    assert appt.kind is kind
    # Sent as 12:00+02:00 in December: the same instant is 11:00 in Oslo's winter offset.
    assert appt.start.isoformat() == "2023-12-03T11:00:00+01:00"
    assert appt.start == datetime.fromisoformat("2023-12-03T12:00:00+02:00")
    assert appt.status is AppointmentStatus.BOOKED and appt.confirmed
    # The unit's managing organisation is the trust itself, so the unit names the department.
    assert appt.department == "Ortopedisk poliklinikk"
    assert appt.organization == "Rikshospitalet"


@pytest.mark.parametrize(("name", "practitioner"), [
    ("Appointment-TimeLege.json", "Navn på lege"),
    ("Appointment-TimeSpesialSjukepleier.json", "Navn på spesial sjukepleier"),
])
def test_practitioner_through_role_or_directly(name: str, practitioner: str) -> None:
    appt = only(name)
    assert appt.practitioner == practitioner
    assert appt.kind is AppointmentKind.IN_PERSON
    assert appt.flags == frozenset()
    assert appt.department == "Ortopedisk avdeling, Rikshospitalet"


def test_notification_example_carries_flags_without_cancel() -> None:
    appt = only("Appointment-Timenotifikasjon.json")
    assert appt.title == "Kontrol"
    assert appt.flags == ALL_FLAGS
    assert "cancel" not in appt.flags


def test_transaction_bundle_resolves_references_to_other_entries() -> None:
    appt = only("Bundle-PolikliniskEksempelBundle.json")
    assert appt.upstream_id == "34DDC9EC-E84A-EE11-9852-B0074B014ABB"
    assert appt.start.isoformat() == "2023-10-03T10:30:00+02:00"
    assert appt.end is not None and appt.end.isoformat() == "2023-10-03T12:00:00+02:00"
    assert appt.organization == "Rikshospitalet"
    assert appt.location_name == "Ortopedisk Avdeling, Rikshospitalet"
    assert appt.location_address == "Sognsvannveien 20, Glassgaten, D3b, 1. etg"
    assert appt.flags == {"canAcknowledge", "canHaveAppointmentDetails", "canInitateDialog"}
    assert "HerIdn2_123456" in appt.department_keys


def test_searchset_bundle_holds_three_appointments_for_one_patient() -> None:
    rows, skipped = read("Bundle-SearchAllAppointment.json")
    assert skipped == 0
    assert [a.upstream_id for a in rows] == ["TimeSpesialSjukepleier", "TimeLege", "Timenotifikasjon"]
    assert {a.patient_pid for a in rows} == {"22067612345"}


def test_only_the_asked_patients_appointments_are_returned() -> None:
    resource = json.loads((FIXTURES / "Bundle-SearchAllAppointment.json").read_text("utf-8"))
    rows, _ = appointments_in(resource, source_id="x", patients=frozenset({"01010112345"}))
    assert rows == []


@pytest.mark.parametrize(("status", "expected", "confirmed"), [
    ("booked", AppointmentStatus.BOOKED, True), ("arrived", AppointmentStatus.BOOKED, True),
    ("checked-in", AppointmentStatus.BOOKED, True), ("pending", AppointmentStatus.BOOKED, False),
    ("proposed", AppointmentStatus.BOOKED, False), ("fulfilled", AppointmentStatus.FULFILLED, True),
    ("cancelled", AppointmentStatus.CANCELLED, True), ("noshow", AppointmentStatus.NOSHOW, True),
])
def test_status_mapping(status: str, expected: AppointmentStatus, confirmed: bool) -> None:
    resource = json.loads((FIXTURES / "Appointment-Timenotifikasjon.json").read_text("utf-8"))
    resource["status"] = status
    rows, _ = appointments_in(resource, source_id="x", patients=None)
    assert (rows[0].status, rows[0].confirmed) == (expected, confirmed)


@pytest.mark.parametrize("status", ["entered-in-error", "waitlist"])
def test_hidden_statuses_are_not_shown(status: str) -> None:
    resource = json.loads((FIXTURES / "Appointment-Timenotifikasjon.json").read_text("utf-8"))
    resource["status"] = status
    assert appointments_in(resource, source_id="x", patients=None) == ([], 0)


@pytest.mark.parametrize("breakage", ["no-start", "bad-start", "unknown-status"])
def test_unreadable_appointments_are_counted_not_fatal(breakage: str) -> None:
    resource = json.loads((FIXTURES / "Bundle-SearchAllAppointment.json").read_text("utf-8"))
    target = resource["entry"][0]["resource"]
    if breakage == "no-start":
        del target["start"]
    elif breakage == "bad-start":
        target["start"] = "tomorrow-ish"
    else:
        target["status"] = "teleported"
    rows, skipped = appointments_in(resource, source_id="x", patients=None)
    assert (len(rows), skipped) == (2, 1)


def test_fixture_dir_is_a_copy_of_shared() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "fhir-helsenorge"
    if not shared.is_dir():
        pytest.skip("shared/ is not beside this checkout")
    for path in shared.glob("*.json"):
        assert (FIXTURES / path.name).read_bytes() == path.read_bytes(), path.name
