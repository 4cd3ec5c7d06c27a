"""Plain domain objects shared by connectors, services and resolvers.

They know nothing of GraphQL, HTTP or Redis. Everything here is immutable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime


class AppointmentStatus(enum.Enum):
    """Where an appointment stands, as the citizen sees it."""

    BOOKED = "BOOKED"
    ASSIGNED = "ASSIGNED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"
    NOSHOW = "NOSHOW"


class VisitKind(enum.Enum):
    """The kind of a municipal home visit."""

    REGULAR = "REGULAR"
    ASSIGNED = "ASSIGNED"
    PERFORMED = "PERFORMED"


class SourceKind(enum.Enum):
    """The kind of provider a source is."""

    HOSPITAL = "HOSPITAL"
    GP = "GP"
    MUNICIPALITY = "MUNICIPALITY"


class CancelledBy(enum.Enum):
    """Who cancelled an appointment."""

    PATIENT = "PATIENT"
    PROVIDER = "PROVIDER"


class MunicipalService(enum.Enum):
    """A municipal health service."""

    HOME_NURSING = "HOME_NURSING"
    PRACTICAL_ASSISTANCE = "PRACTICAL_ASSISTANCE"


class HealthRegion(enum.Enum):
    """A Norwegian regional health authority."""

    HELSE_VEST = "HELSE_VEST"
    HELSE_NORD = "HELSE_NORD"
    HELSE_MIDT = "HELSE_MIDT"
    HELSE_SOR_OST = "HELSE_SOR_OST"


class AppointmentKind(enum.Enum):
    """How the appointment takes place."""

    IN_PERSON = "IN_PERSON"
    VIDEO = "VIDEO"
    PHONE = "PHONE"
    HOME_VISIT = "HOME_VISIT"


class CancellationStatus(enum.StrEnum):
    """Where a cancellation request stands: PENDING (stored, sent or about to be, waiting
    for the provider), ACCEPTED or REJECTED (the provider's answer), FAILED (the provider
    could not take the request at all). Providers say it in lower case
    (`from_provider`)."""

    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"

    @classmethod
    def from_provider(cls, text: object, allowed: frozenset[CancellationStatus]) -> CancellationStatus | None:
        """A provider's word for one of the `allowed` statuses ("accepted"), or None."""
        if not isinstance(text, str) or not text.islower():
            return None
        found = cls.__members__.get(text.upper())
        return found if found in allowed else None

    @property
    def decided(self) -> bool:
        return self is not CancellationStatus.PENDING

    @property
    def open(self) -> bool:
        """Pending or accepted: no second request for the appointment may be made."""
        return self in (CancellationStatus.PENDING, CancellationStatus.ACCEPTED)


ANSWERS = frozenset({CancellationStatus.PENDING, CancellationStatus.ACCEPTED, CancellationStatus.REJECTED})
"""What a provider may answer about a request it has (the municipal and FHIR contracts)."""
DECISIONS = frozenset({CancellationStatus.ACCEPTED, CancellationStatus.REJECTED})
"""What a provider's decision may be (the webhook contract)."""


class RepresentationBasis(enum.Enum):
    """Why one person may act for another."""

    PARENT = "parent"
    POWER_OF_ATTORNEY = "power_of_attorney"


@dataclass(frozen=True, slots=True)
class Appointment:
    """One appointment as a provider holds it, mapped to the product's vocabulary.

    `patient_pid` is the owner's national identity number; it never leaves the process
    except towards the provider that owns the appointment.
    """

    source_id: str
    upstream_id: str
    patient_pid: str = field(repr=False)  # a repr never shows a pid
    status: AppointmentStatus
    start: datetime
    end: datetime | None = None
    confirmed: bool = True
    title: str | None = None
    kind: AppointmentKind = AppointmentKind.IN_PERSON
    service: MunicipalService | None = None
    visit_kind: VisitKind | None = None
    organization: str | None = None
    department: str | None = None
    location_name: str | None = None
    location_address: str | None = None
    practitioner: str | None = None
    cancelled_by: CancelledBy | None = None
    flags: frozenset[str] = field(default_factory=frozenset)
    department_keys: frozenset[str] = field(default_factory=frozenset)
    """Identifiers and names of the department and locations, for department allow-lists."""
    """The upstream's own service code (municipal), for service allow-lists."""
    cancelled: bool = False
    """True when the upstream marks the appointment cancelled (kept apart from status for
    visibility rules that treat cancelled rows by their original kind)."""


@dataclass(frozen=True, slots=True)
class Representation:
    """A person the directory says someone may act for."""

    pid: str = field(repr=False)  # a repr (a log line, a test failure) never shows a pid
    name: str
    birth_date: date | None
    basis: RepresentationBasis


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """A person as the person directory knows them."""

    pid: str = field(repr=False)  # a repr (a log line, a test failure) never shows a pid
    name: str
    birth_date: date | None
    confidential: bool
    municipality: str | None
    district: str | None
    gp_her_id: str | None
    may_act_for: tuple[Representation, ...] = ()
