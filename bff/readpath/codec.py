"""Compact JSON encoding of cache entries: appointments without the owner's pid (the
cache key already names the owner by pseudonym), and person-directory records."""

from __future__ import annotations

from datetime import date, datetime
from operator import attrgetter
from typing import Any

import orjson

from bff.domain.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    CancelledBy,
    MunicipalService,
    PersonRecord,
    Representation,
    RepresentationBasis,
    VisitKind,
)
from bff.domain.timez import to_oslo

ENTRY_FORMAT = 3
"""Version of the appointment entry layout; an entry of another version reads as a miss."""
ROW_FIELDS = ("source_id", "upstream_id", "status", "start", "end", "confirmed", "title", "kind", "service",
              "visit_kind", "organization", "department", "location_name", "location_address", "practitioner",
              "cancelled_by", "flags", "department_keys", "cancelled")
"""A row is these fields as a JSON array, in this order: no `patient_pid` (the key names the
owner), and no per-row Python work beyond one attribute getter (orjson writes the enums and
date-times itself), since a cold list writes a few hundred rows."""
_row = attrgetter(*ROW_FIELDS)


def _sets(value: Any) -> list[str]:
    if isinstance(value, frozenset):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _appointment(r: list[Any], pid: str) -> Appointment:
    def opt(value: Any, enum: Any) -> Any:
        return enum(value) if value is not None else None

    (source_id, upstream_id, status, start, end, confirmed, title, kind, service, visit_kind, organization,
     department, location_name, location_address, practitioner, cancelled_by, flags, department_keys,
     cancelled) = r
    return Appointment(
        source_id=source_id, upstream_id=upstream_id, patient_pid=pid, status=AppointmentStatus(status),
        start=to_oslo(datetime.fromisoformat(start)), end=to_oslo(datetime.fromisoformat(end)) if end else None,
        confirmed=confirmed, title=title, kind=AppointmentKind(kind), service=opt(service, MunicipalService),
        visit_kind=opt(visit_kind, VisitKind), organization=organization, department=department,
        location_name=location_name, location_address=location_address, practitioner=practitioner,
        cancelled_by=opt(cancelled_by, CancelledBy), flags=frozenset(flags), department_keys=frozenset(department_keys),
        cancelled=cancelled,
    )


def dump_entry(rows: tuple[Appointment, ...], fetched_at: float, skipped: int) -> bytes:
    return orjson.dumps({"v": ENTRY_FORMAT, "at": fetched_at, "skipped": skipped, "rows": list(map(_row, rows))},
                        default=_sets)


def load_entry(data: bytes, pid: str) -> tuple[tuple[Appointment, ...], float, int]:
    """Rows, fetch time (epoch seconds) and skipped count; raises ValueError if unreadable
    (including an entry written in another format)."""
    try:
        entry = orjson.loads(data)
        if entry["v"] != ENTRY_FORMAT:
            raise ValueError(f"cache entry format {entry['v']!r}")
        rows = tuple(_appointment(r, pid) for r in entry["rows"])
        return rows, float(entry["at"]), int(entry.get("skipped", 0))
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError("cache entry cannot be read") from exc


def dump_person(record: PersonRecord | None, fetched_at: float) -> bytes:
    """A directory answer (None: the directory does not know the person), without the
    person's own pid: the key names them (by pseudonym). The pids of those they may act for
    stay: they are what the list is fetched by."""
    fields = None
    if record is not None:
        fields = {f: getattr(record, f) for f in PersonRecord.__dataclass_fields__ if f != "pid"}
    return orjson.dumps({"at": fetched_at, "record": fields})


def load_person(data: bytes, pid: str) -> tuple[PersonRecord | None, float]:
    """The record and its fetch time (epoch seconds) of the person the key names (`pid`)."""
    try:
        entry = orjson.loads(data)
        raw = entry["record"]
        at = float(entry["at"])
        if raw is None:
            return None, at
        reps = tuple(Representation(pid=r["pid"], name=r["name"], birth_date=_date(r["birth_date"]),
                                    basis=RepresentationBasis(r["basis"])) for r in raw["may_act_for"])
        return PersonRecord(pid=pid, name=raw["name"], birth_date=_date(raw["birth_date"]),
                            confidential=raw["confidential"], municipality=raw["municipality"],
                            district=raw["district"], gp_her_id=raw["gp_her_id"],
                            may_act_for=reps), at
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError("person entry cannot be read") from exc


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None
