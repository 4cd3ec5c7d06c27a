"""Builds FHIR R4 Appointments in the Helsenorge profile's shape for the sandbox.

Location, department and flags are contained resources (as DIPS sends them), or, with
`bundled=True`, separate resources the Appointment refers to as `Type/id` (as in the
published transaction example), which the FHIR server returns as included entries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bff.domain.wire import FLAG_SYSTEM, FNR_SYSTEM, VIRTUAL_SERVICE_URL

ROLE_CODES = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
RESH_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.102"
ORG_TYPE_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.8624"
SERVICE_CATEGORY = "http://terminology.hl7.org/CodeSystem/service-category"
APPOINTMENT_TYPES = "http://helsenorge.no/fhir/CodeSystem/Hn-AppointmentTypeProposed-New-Codes-cs"
CANCEL_REASONS = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"


@dataclass(frozen=True)
class Place:
    """Where an appointment is: hospital, unit and department."""

    hospital: str
    unit: str
    department: str
    department_id: str
    address: str
    category: str = "27"


@dataclass
class FhirAppointment:
    """A sandbox appointment and the resources it refers to outside itself."""

    resource: dict[str, Any]
    patient: str
    start: datetime
    included: list[dict[str, Any]] = field(default_factory=list)


def _id(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def build(
    key: str,
    patient: str,
    place: Place,
    start: datetime,
    end: datetime,
    *,
    title: str,
    status: str = "booked",
    flags: tuple[str, ...] = ("canAcknowledge",),
    channel: str | None = None,
    practitioner: str | None = None,
    cancel_reason: str | None = None,
    bundled: bool = False,
    appointment_type: str = "Poliklinisktime",
) -> FhirAppointment:
    """One Appointment with its Locations, department Organization and Flags."""
    dept: dict[str, Any] = {
        "resourceType": "Organization",
        "id": _id(f"{key}-dept"),
        "identifier": [{"system": RESH_SYSTEM, "value": place.department_id}],
        "type": [{"coding": [{"system": ORG_TYPE_SYSTEM, "code": "05"}], "text": "Avdeling"}],
        "name": place.department,
    }
    hospital = {
        "resourceType": "Location",
        "id": _id(f"{key}-hosp"),
        "name": place.hospital,
        "type": [{"coding": [{"system": ROLE_CODES, "code": "HOSP"}]}],
    }
    unit = {
        "resourceType": "Location",
        "id": _id(f"{key}-unit"),
        "identifier": [{"system": RESH_SYSTEM, "value": f"{place.department_id}-1"}],
        "name": place.unit,
        "type": [{"coding": [{"system": ROLE_CODES, "code": "HU"}]}],
        "address": {"text": place.address},
    }
    flag_resources = [
        {
            "resourceType": "Flag",
            "id": _id(f"{key}-flag-{code}"),
            "status": "active",
            "code": {"coding": [{"system": FLAG_SYSTEM, "code": code}]},
            "subject": {"identifier": {"system": FNR_SYSTEM, "value": patient}},
        }
        for code in flags
    ]
    others: list[dict[str, Any]] = [dept, hospital, unit, *flag_resources]
    participants: list[dict[str, Any]] = [
        {"actor": {"type": "Patient", "identifier": {"system": FNR_SYSTEM, "value": patient}}, "status": "accepted"},
        {"actor": {"reference": _ref(unit, bundled)}, "status": "accepted"},
        {"actor": {"reference": _ref(hospital, bundled)}, "status": "accepted"},
    ]
    if practitioner:
        person = {"resourceType": "Practitioner", "id": _id(f"{key}-pract"), "name": [{"text": practitioner}]}
        others.append(person)
        participants.append({"actor": {"reference": _ref(person, bundled)}, "status": "accepted"})
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": _id(key),
        "meta": {"profile": ["http://helsenorge.no/fhir/StructureDefinition/hn-basis-appointment"]},
        "status": status,
        "serviceCategory": [{"coding": [{"system": SERVICE_CATEGORY, "code": place.category}]}],
        "appointmentType": {"coding": [{"system": APPOINTMENT_TYPES, "code": appointment_type}]},
        "description": title,
        "supportingInformation": [{"reference": _ref(r, bundled)} for r in [dept, *flag_resources]],
        "start": start.isoformat(),
        "end": end.isoformat(),
        "participant": participants,
    }
    if channel:
        resource["extension"] = [
            {"url": VIRTUAL_SERVICE_URL, "extension": [{"url": "channelType", "valueCoding": {"code": channel}}]}
        ]
    if cancel_reason:
        resource["cancelationReason"] = {"coding": [{"system": CANCEL_REASONS, "code": cancel_reason}]}
    if bundled:
        return FhirAppointment(resource, patient, start, included=others)
    resource["contained"] = others
    return FhirAppointment(resource, patient, start)


def _ref(resource: dict[str, Any], bundled: bool) -> str:
    return f"{resource['resourceType']}/{resource['id']}" if bundled else f"#{resource['id']}"
