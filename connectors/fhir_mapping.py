"""FHIR R4 Appointment → domain mapping, for the Helsenorge appointment profile.

Pure functions over parsed JSON: no I/O. References are resolved against the resource's
`contained` list first, then against entries of the same Bundle (by `fullUrl` or
`Type/id`); nothing is ever fetched to resolve one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bff.domain import Appointment, AppointmentKind, AppointmentStatus, CancelledBy
from bff.timez import parse_instant
from connectors.fhir_refs import BundleIndex, Resolver, Resource, iter_entries

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.2"
PID_SYSTEMS = frozenset({FNR_SYSTEM, DNR_SYSTEM})
FLAG_SYSTEM = "http://helsenorge.no/fhir/CodeSystem/hn-appointment-flag-code-cs"
VIRTUAL_SERVICE_URL = "http://hl7.no/fhir/StructureDefinition/no-basis-virtual-service"
DEPARTMENT_TYPE_CODE = "05"
HOSPITAL_LOCATION_CODE = "HOSP"
HOME_VISIT_TYPE = "Hjemmebesøk"
CANCEL_FLAG = "cancel"

STATUS_MAP: Mapping[str, tuple[AppointmentStatus, bool]] = {
    "booked": (AppointmentStatus.BOOKED, True),
    "arrived": (AppointmentStatus.BOOKED, True),
    "checked-in": (AppointmentStatus.BOOKED, True),
    "pending": (AppointmentStatus.BOOKED, False),
    "proposed": (AppointmentStatus.BOOKED, False),
    "fulfilled": (AppointmentStatus.FULFILLED, True),
    "cancelled": (AppointmentStatus.CANCELLED, True),
    "noshow": (AppointmentStatus.NOSHOW, True),
}
HIDDEN_STATUSES = frozenset({"entered-in-error", "waitlist"})
APPOINTMENT_TYPE_TITLES = {
    "Poliklinisktime": "Poliklinisk time",
    "Innleggelse": "Innleggelse",
    "Dagbehandling": "Dagbehandling",
    "Hjemmebesøk": "Hjemmebesøk",
    "Konsultasjon": "Konsultasjon",
    "Bildediagnostikk": "Bildediagnostikk",
}
CHANNEL_KINDS = {"url": AppointmentKind.VIDEO, "phone": AppointmentKind.PHONE}

class Unreadable(ValueError):
    """One resource could not be mapped; the caller counts and skips it."""


def map_appointment(
    resource: Resource,
    *,
    source_id: str,
    bundle: BundleIndex,
    patients: frozenset[str] | None,
    patient_cancel_codes: frozenset[str] = frozenset(),
) -> Appointment | None:
    """Map one Appointment; None when it must not be shown (status, or not our patient).

    Raises `Unreadable` when a required element is missing or malformed.
    """
    status_code = resource.get("status")
    if status_code in HIDDEN_STATUSES:
        return None
    if status_code not in STATUS_MAP:
        raise Unreadable(f"unknown status {status_code!r}")
    status, confirmed = STATUS_MAP[str(status_code)]
    resolver = Resolver(resource, bundle)
    pid = _patient(resource, resolver)
    if pid is None or (patients is not None and pid not in patients):
        return None
    start, end = _times(resource)
    locations = _locations(resource, resolver)
    department_org = _department_org(resource, resolver)
    return Appointment(
        source_id=source_id,
        upstream_id=_required_id(resource),
        patient_pid=pid,
        status=status,
        confirmed=confirmed,
        start=start,
        end=end,
        title=_title(resource),
        kind=_kind(resource),
        organization=_organization(locations, resolver),
        department=_department_name(department_org, locations, resolver),
        location_name=_location(locations, "name"),
        location_address=_location(locations, "address"),
        practitioner=_practitioner(resource, resolver),
        cancelled_by=_cancelled_by(resource, patient_cancel_codes) if status_code == "cancelled" else None,
        cancelled=status_code == "cancelled",
        flags=_flags(resource, resolver),
        department_keys=_department_keys(department_org, locations, resolver),
    )


def _required_id(resource: Resource) -> str:
    value = resource.get("id")
    if not isinstance(value, str) or not value:
        raise Unreadable("Appointment without id")
    return value


def _times(resource: Resource) -> tuple[Any, Any]:
    try:
        start = parse_instant(resource["start"])
        end = parse_instant(resource["end"]) if resource.get("end") else None
    except (KeyError, TypeError, ValueError) as exc:
        raise Unreadable("Appointment without a readable start") from exc
    minutes = resource.get("minutesDuration")
    if end is None and isinstance(minutes, int) and minutes > 0:
        end = start + timedelta(minutes=minutes)
    return start, end


def _identifiers(resource: Resource | None) -> list[Mapping[str, Any]]:
    if resource is None:
        return []
    value = resource.get("identifier")
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, dict)]


def _patient(resource: Resource, resolver: Resolver) -> str | None:
    for participant in resource.get("participant") or ():
        actor = participant.get("actor") if isinstance(participant, dict) else None
        if not isinstance(actor, dict):
            continue
        target = resolver.resolve(actor) if actor.get("reference") else None
        for ident in _identifiers(actor) + _identifiers(target):
            if ident.get("system") in PID_SYSTEMS and isinstance(ident.get("value"), str):
                return str(ident["value"])
    return None


def _codes(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [str(c["code"]) for c in concept.get("coding") or () if isinstance(c, dict) and c.get("code")]


def _displays(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    found = [str(c["display"]) for c in concept.get("coding") or () if isinstance(c, dict) and c.get("display")]
    return found + ([str(concept["text"])] if concept.get("text") else [])


def _title(resource: Resource) -> str | None:
    if isinstance(resource.get("description"), str) and resource["description"].strip():
        return str(resource["description"]).strip()
    kind = resource.get("appointmentType")
    for code in _codes(kind):
        if code in APPOINTMENT_TYPE_TITLES:
            return APPOINTMENT_TYPE_TITLES[code]
    names = _displays(kind)
    return names[0] if names else None


def _kind(resource: Resource) -> AppointmentKind:
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == VIRTUAL_SERVICE_URL:
            for sub in ext.get("extension") or ():
                if isinstance(sub, dict) and sub.get("url") == "channelType":
                    code = (sub.get("valueCoding") or {}).get("code")
                    if code in CHANNEL_KINDS:
                        return CHANNEL_KINDS[code]
    if HOME_VISIT_TYPE in _codes(resource.get("appointmentType")):
        return AppointmentKind.HOME_VISIT
    return AppointmentKind.IN_PERSON


def _is_type(resource: Resource, code: str) -> bool:
    types = resource.get("type")
    concepts = types if isinstance(types, list) else [types]
    return any(code in _codes(c) for c in concepts)


def _locations(resource: Resource, resolver: Resolver) -> list[Resource]:
    """Locations the appointment names, the most specific (not the hospital) first."""
    found: list[Resource] = []
    for participant in resource.get("participant") or ():
        target = resolver.resolve(participant.get("actor")) if isinstance(participant, dict) else None
        if target is not None and target.get("resourceType") == "Location":
            found.append(target)
    return sorted(found, key=lambda loc: _is_type(loc, HOSPITAL_LOCATION_CODE))


def _name(resource: Resource | None) -> str | None:
    value = resource.get("name") if resource is not None else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _organization(locations: list[Resource], resolver: Resolver) -> str | None:
    hospitals = [loc for loc in locations if _is_type(loc, HOSPITAL_LOCATION_CODE)]
    for loc in hospitals:
        if _name(loc):
            return _name(loc)
    for loc in locations:
        managing = _name(resolver.resolve(loc.get("managingOrganization")))
        if managing:
            return managing
    return None


def _department_org(resource: Resource, resolver: Resolver) -> Resource | None:
    for info in resource.get("supportingInformation") or ():
        target = resolver.resolve(info)
        if target and target.get("resourceType") == "Organization" and _is_type(target, DEPARTMENT_TYPE_CODE):
            return target
    return None


def _identifier_values(resource: Resource | None) -> set[str]:
    return {str(i["value"]) for i in _identifiers(resource) if i.get("value")}


def _identifier_pairs(resource: Resource | None) -> set[tuple[str, str]]:
    return {(str(i.get("system")), str(i["value"])) for i in _identifiers(resource) if i.get("value")}


def _department_name(org: Resource | None, locations: list[Resource], resolver: Resolver) -> str | None:
    """The department's name: the type-05 Organization's own, or that of a named
    Organization with the same identifier, or the unit's managing organization when it is
    not the hospital's own owner, or else the unit's name."""
    if _name(org):
        return _name(org)
    wanted = _identifier_pairs(org)
    if wanted:
        for other in resolver.all_resources():
            if other.get("resourceType") == "Organization" and _name(other) and wanted & _identifier_pairs(other):
                return _name(other)
    owners = {id(resolver.resolve(loc.get("managingOrganization")))
              for loc in locations if _is_type(loc, HOSPITAL_LOCATION_CODE)}
    for loc in locations:
        if not _is_type(loc, HOSPITAL_LOCATION_CODE):
            managing = resolver.resolve(loc.get("managingOrganization"))
            if managing is not None and id(managing) not in owners and _name(managing):
                return _name(managing)
            return _name(loc)
    return None


def _location(locations: list[Resource], part: str) -> str | None:
    if not locations:
        return None
    loc = locations[0]
    if part == "name":
        return _name(loc)
    address = loc.get("address")
    if isinstance(address, dict):
        text = address.get("text")
        if isinstance(text, str) and text.strip():
            return text.strip()
        pieces = [*(address.get("line") or ()), address.get("postalCode"), address.get("city")]
        joined = " ".join(str(p) for p in pieces if p)
        if joined:
            return joined
    description = loc.get("description")
    return description.strip() if isinstance(description, str) and description.strip() else None


def _human_name(resource: Resource | None) -> str | None:
    for name in (resource or {}).get("name") or ():
        if not isinstance(name, dict):
            continue
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("given") or ()), name.get("family")]
        joined = " ".join(str(p) for p in parts if p)
        if joined:
            return joined
    return None


def _practitioner(resource: Resource, resolver: Resolver) -> str | None:
    for participant in resource.get("participant") or ():
        actor = participant.get("actor") if isinstance(participant, dict) else None
        target = resolver.resolve(actor)
        if target is None:
            continue
        if target.get("resourceType") == "PractitionerRole":
            target = resolver.resolve(target.get("practitioner")) or {}
        if target.get("resourceType") == "Practitioner":
            return _human_name(target) or (actor or {}).get("display")
    return None


def _cancelled_by(resource: Resource, patient_codes: frozenset[str]) -> CancelledBy:
    codes = _codes(resource.get("cancelationReason"))
    if any(code.startswith("pat") or code in patient_codes for code in codes):
        return CancelledBy.PATIENT
    return CancelledBy.PROVIDER


def _flags(resource: Resource, resolver: Resolver) -> frozenset[str]:
    flags: set[str] = set()
    for info in resource.get("supportingInformation") or ():
        target = resolver.resolve(info)
        if target is None or target.get("resourceType") != "Flag":
            continue
        if target.get("status", "active") != "active":
            continue
        for coding in (target.get("code") or {}).get("coding") or ():
            if isinstance(coding, dict) and coding.get("system", FLAG_SYSTEM) == FLAG_SYSTEM and coding.get("code"):
                flags.add(str(coding["code"]))
    return frozenset(flags)


def _department_keys(org: Resource | None, locations: list[Resource], resolver: Resolver) -> frozenset[str]:
    """What a department allow-list is matched against: the department's identifiers and
    name, and the identifiers and names of the unit(s) the appointment takes place in."""
    keys = _identifier_values(org)
    name = _department_name(org, locations, resolver)
    if name:
        keys.add(name)
    for loc in locations:
        if not _is_type(loc, HOSPITAL_LOCATION_CODE):
            keys |= _identifier_values(loc)
            keys |= {n for n in (_name(loc),) if n}
    return frozenset(keys)


def appointments_in(
    resource: Resource,
    *,
    source_id: str,
    patients: frozenset[str] | None,
    patient_cancel_codes: frozenset[str] = frozenset(),
) -> tuple[list[Appointment], int]:
    """Every shown Appointment in a resource (an Appointment or any Bundle), and how many
    could not be read. Other resource types hold no appointments."""
    if resource.get("resourceType") == "Bundle":
        entries = list(iter_entries(resource))
    elif resource.get("resourceType") == "Appointment":
        entries = [(None, resource)]
    else:
        return [], 0
    index = BundleIndex.of(entries)
    found: list[Appointment] = []
    skipped = 0
    seen: set[str] = set()
    for _, item in entries:
        if item.get("resourceType") != "Appointment" or item.get("id") in seen:
            continue
        seen.add(str(item.get("id")))
        try:
            mapped = map_appointment(item, source_id=source_id, bundle=index, patients=patients,
                                     patient_cancel_codes=patient_cancel_codes)
        except Unreadable:
            skipped += 1
            continue
        if mapped is not None:
            found.append(mapped)
    return found, skipped
