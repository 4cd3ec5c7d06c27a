"""FHIR R4 Appointment → domain mapping, for the Helsenorge appointment profile.

Pure functions over parsed JSON: no I/O. References are resolved against the resource's
`contained` list first, then against entries of the same Bundle (by `fullUrl` or
`Type/id`); nothing is ever fetched to resolve one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bff.domain.models import Appointment, AppointmentKind, AppointmentStatus, CancelledBy
from bff.domain.timez import parse_instant
from bff.domain.wire import DNR_SYSTEM, FLAG_SYSTEM, FNR_SYSTEM, VIRTUAL_SERVICE_URL
from connectors.fhir.refs import BundleIndex, Resolver, Resource, iter_entries

PID_SYSTEMS = frozenset({FNR_SYSTEM, DNR_SYSTEM})
DEPARTMENT_TYPE_CODE = "05"
HOSPITAL_LOCATION_CODE = "HOSP"
HOME_VISIT_TYPE = "Hjemmebesøk"

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


MALFORMED = (Unreadable, TypeError, AttributeError, KeyError, ValueError)
"""What mapping one resource may raise on JSON of the wrong shape (a list where the
profile has a string, say): that resource is counted as skipped, never the whole answer."""


def map_appointment(
    resource: Resource,
    *,
    source_id: str,
    bundle: BundleIndex,
    patients: frozenset[str] | None,
    patient_cancel_codes: frozenset[str] = frozenset(),
) -> Appointment | None:
    """Map one Appointment; None when it must not be shown (status, or not our patient).

    Raises `Unreadable` when a required element is missing or malformed. Each participant
    and each supportingInformation reference is resolved once, and each Location's kind
    (hospital or unit) is decided once: a person's list maps a few hundred of these per
    request.
    """
    status_code = resource.get("status")
    if not isinstance(status_code, str) or status_code not in STATUS_MAP:
        if isinstance(status_code, str) and status_code in HIDDEN_STATUSES:
            return None
        raise Unreadable(f"unknown status {status_code!r}")
    status, confirmed = STATUS_MAP[status_code]
    resolver = Resolver(resource, bundle)
    actors = [(p.get("actor"), resolver.resolve(p.get("actor")))
              for p in _dicts(resource.get("participant"))]
    pid = _patient(actors)
    if pid is None or (patients is not None and pid not in patients):
        return None
    start, end = _times(resource)
    units, hospitals = _locations(actors)
    supporting = [target for target in map(resolver.resolve, _dicts(resource.get("supportingInformation")))
                  if target is not None]
    department_org = _department_org(supporting)
    department = _department_name(department_org, units, hospitals, resolver)
    first = units[0] if units else hospitals[0] if hospitals else None
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
        organization=_organization(units, hospitals, resolver),
        department=department,
        location_name=_name(first),
        location_address=_address(first),
        practitioner=_practitioner(actors, resolver),
        cancelled_by=_cancelled_by(resource, patient_cancel_codes) if status_code == "cancelled" else None,
        cancelled=status_code == "cancelled",
        flags=_flags(supporting),
        department_keys=_department_keys(department_org, department, units),
    )


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON array (a lone object counts as a one-item array)."""
    if type(value) is list:
        return [item for item in value if type(item) is dict]
    if value is None:
        return []
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return [value] if isinstance(value, dict) else []


def _required_id(resource: Resource) -> str:
    value = resource.get("id")
    if not isinstance(value, str) or not value:
        raise Unreadable("Appointment without id")
    return value


def _times(resource: Resource) -> tuple[Any, Any]:
    try:
        start = parse_instant(resource["start"])
        end = parse_instant(resource["end"]) if resource.get("end") else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Unreadable("Appointment without a readable start") from exc
    minutes = resource.get("minutesDuration")
    if end is None and isinstance(minutes, int) and minutes > 0:
        end = start + timedelta(minutes=minutes)
    return start, end


def _identifiers(resource: Resource | None) -> list[Mapping[str, Any]]:
    return _dicts(resource.get("identifier")) if resource is not None else []


def _patient(actors: list[tuple[Any, Resource | None]]) -> str | None:
    for actor, target in actors:
        if not isinstance(actor, dict):
            continue
        for ident in _identifiers(actor) + _identifiers(target):
            if ident.get("system") in PID_SYSTEMS and isinstance(ident.get("value"), str):
                return str(ident["value"])
    return None


def _codes(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [str(c["code"]) for c in _dicts(concept.get("coding")) if c.get("code")]


def _has_code(concept: Any, code: str) -> bool:
    if not isinstance(concept, dict):
        return False
    for coding in _dicts(concept.get("coding")):  # noqa: SIM110 - no generator: called per Location and Organization
        if coding.get("code") == code:
            return True
    return False


def _displays(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    found = [str(c["display"]) for c in _dicts(concept.get("coding")) if c.get("display")]
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
    for ext in _dicts(resource.get("extension")):
        if ext.get("url") == VIRTUAL_SERVICE_URL:
            for sub in _dicts(ext.get("extension")):
                coding = sub.get("valueCoding")
                if sub.get("url") == "channelType" and isinstance(coding, dict):
                    code = coding.get("code")
                    if isinstance(code, str) and code in CHANNEL_KINDS:
                        return CHANNEL_KINDS[code]
    if _has_code(resource.get("appointmentType"), HOME_VISIT_TYPE):
        return AppointmentKind.HOME_VISIT
    return AppointmentKind.IN_PERSON


def _is_type(resource: Resource, code: str) -> bool:
    types = resource.get("type")
    for concept in types if isinstance(types, list) else (types,):  # noqa: SIM110 - as in _has_code
        if _has_code(concept, code):
            return True
    return False


def _locations(actors: list[tuple[Any, Resource | None]]) -> tuple[list[Resource], list[Resource]]:
    """The Locations the appointment names: the units (most specific first, in the
    order given) and the hospitals."""
    units: list[Resource] = []
    hospitals: list[Resource] = []
    for _, target in actors:
        if target is not None and target.get("resourceType") == "Location":
            (hospitals if _is_type(target, HOSPITAL_LOCATION_CODE) else units).append(target)
    return units, hospitals


def _name(resource: Resource | None) -> str | None:
    value = resource.get("name") if resource is not None else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _organization(units: list[Resource], hospitals: list[Resource], resolver: Resolver) -> str | None:
    for loc in hospitals:
        if _name(loc):
            return _name(loc)
    for loc in units + hospitals:
        managing = _name(resolver.resolve(loc.get("managingOrganization")))
        if managing:
            return managing
    return None


def _department_org(supporting: list[Resource]) -> Resource | None:
    for target in supporting:
        if target.get("resourceType") == "Organization" and _is_type(target, DEPARTMENT_TYPE_CODE):
            return target
    return None


def _identifier_values(resource: Resource | None) -> set[str]:
    return {str(i["value"]) for i in _identifiers(resource) if i.get("value")}


def _identifier_pairs(resource: Resource | None) -> set[tuple[str, str]]:
    return {(str(i.get("system")), str(i["value"])) for i in _identifiers(resource) if i.get("value")}


def _department_name(org: Resource | None, units: list[Resource], hospitals: list[Resource],
                     resolver: Resolver) -> str | None:
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
    if not units:
        return None
    owners = {id(resolver.resolve(loc.get("managingOrganization"))) for loc in hospitals}
    managing = resolver.resolve(units[0].get("managingOrganization"))
    if managing is not None and id(managing) not in owners and _name(managing):
        return _name(managing)
    return _name(units[0])


def _address(loc: Resource | None) -> str | None:
    if loc is None:
        return None
    address = loc.get("address")
    if isinstance(address, dict):
        text = address.get("text")
        if isinstance(text, str) and text.strip():
            return text.strip()
        lines = address.get("line")
        pieces = [*(lines if isinstance(lines, list) else ()), address.get("postalCode"), address.get("city")]
        joined = " ".join(str(p) for p in pieces if p)
        if joined:
            return joined
    description = loc.get("description")
    return description.strip() if isinstance(description, str) and description.strip() else None


def _human_name(resource: Resource) -> str | None:
    for name in _dicts(resource.get("name")) if isinstance(resource.get("name"), list) else ():
        if name.get("text"):
            return str(name["text"])
        given = name.get("given")
        parts = [*(given if isinstance(given, list) else ()), name.get("family")]
        joined = " ".join(str(p) for p in parts if p)
        if joined:
            return joined
    return None


def _practitioner(actors: list[tuple[Any, Resource | None]], resolver: Resolver) -> str | None:
    for actor, target in actors:
        if target is not None and target.get("resourceType") == "PractitionerRole":
            target = resolver.resolve(target.get("practitioner"))
        if target is not None and target.get("resourceType") == "Practitioner":
            display = actor.get("display") if isinstance(actor, dict) else None
            return _human_name(target) or (str(display) if display else None)
    return None


def _cancelled_by(resource: Resource, patient_codes: frozenset[str]) -> CancelledBy:
    codes = _codes(resource.get("cancelationReason"))
    if any(code.startswith("pat") or code in patient_codes for code in codes):
        return CancelledBy.PATIENT
    return CancelledBy.PROVIDER


def _flags(supporting: list[Resource]) -> frozenset[str]:
    flags: set[str] = set()
    for target in supporting:
        if target.get("resourceType") != "Flag" or target.get("status", "active") != "active":
            continue
        code = target.get("code")
        for coding in _dicts(code.get("coding")) if isinstance(code, dict) else ():
            if coding.get("system", FLAG_SYSTEM) == FLAG_SYSTEM and coding.get("code"):
                flags.add(str(coding["code"]))
    return frozenset(flags)


def _department_keys(org: Resource | None, department: str | None, units: list[Resource]) -> frozenset[str]:
    """What a department allow-list is matched against: the department's identifiers and
    name, and the identifiers and names of the unit(s) the appointment takes place in."""
    keys = _identifier_values(org)
    if department:
        keys.add(department)
    for loc in units:
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
    return appointments_among(entries, source_id=source_id, patients=patients,
                              patient_cancel_codes=patient_cancel_codes)


def appointments_among(
    entries: list[tuple[str | None, Resource]],
    *,
    source_id: str,
    patients: frozenset[str] | None,
    patient_cancel_codes: frozenset[str] = frozenset(),
) -> tuple[list[Appointment], int]:
    """Every shown Appointment among a search's (fullUrl, resource) entries — all its
    pages together, so references resolve across them — and how many could not be read."""
    index = BundleIndex.of(entries)
    found: list[Appointment] = []
    skipped = 0
    seen: set[str] = set()
    for _, item in entries:
        if item.get("resourceType") != "Appointment":
            continue
        ident = item.get("id")
        if isinstance(ident, str):
            if ident in seen:
                continue
            seen.add(ident)
        try:
            mapped = map_appointment(item, source_id=source_id, bundle=index, patients=patients,
                                     patient_cancel_codes=patient_cancel_codes)
        except MALFORMED:
            skipped += 1
            continue
        if mapped is not None:
            found.append(mapped)
    return found, skipped
