"""Compact JSON encoding of cache entries: appointments without the owner's pid (the
cache key already names the owner by pseudonym), and person-directory records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson

from bff.domain import (
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
from bff.timez import to_oslo


def _row(a: Appointment) -> dict[str, Any]:
    return {
        "s": a.source_id, "u": a.upstream_id, "st": a.status.value, "b": a.start.isoformat(),
        "e": a.end.isoformat() if a.end else None, "c": a.confirmed, "t": a.title, "k": a.kind.value,
        "sv": a.service.value if a.service else None, "vk": a.visit_kind.value if a.visit_kind else None,
        "o": a.organization, "d": a.department, "ln": a.location_name, "la": a.location_address,
        "p": a.practitioner, "cb": a.cancelled_by.value if a.cancelled_by else None,
        "f": sorted(a.flags), "dk": sorted(a.department_keys), "rs": a.raw_service, "x": a.cancelled,
    }


def _appointment(r: dict[str, Any], pid: str) -> Appointment:
    def opt(value: Any, enum: Any) -> Any:
        return enum(value) if value is not None else None

    return Appointment(
        source_id=r["s"], upstream_id=r["u"], patient_pid=pid, status=AppointmentStatus(r["st"]),
        start=to_oslo(datetime.fromisoformat(r["b"])),
        end=to_oslo(datetime.fromisoformat(r["e"])) if r["e"] else None, confirmed=r["c"], title=r["t"],
        kind=AppointmentKind(r["k"]), service=opt(r["sv"], MunicipalService), visit_kind=opt(r["vk"], VisitKind),
        organization=r["o"], department=r["d"], location_name=r["ln"], location_address=r["la"],
        practitioner=r["p"], cancelled_by=opt(r["cb"], CancelledBy), flags=frozenset(r["f"]),
        department_keys=frozenset(r["dk"]), raw_service=r["rs"], cancelled=r["x"],
    )


def dump_entry(rows: tuple[Appointment, ...], fetched_at: float, skipped: int) -> bytes:
    return orjson.dumps({"at": fetched_at, "skipped": skipped, "rows": [_row(a) for a in rows]})


def load_entry(data: bytes, pid: str) -> tuple[tuple[Appointment, ...], float, int]:
    """Rows, fetch time (epoch seconds) and skipped count; raises ValueError if unreadable."""
    try:
        entry = orjson.loads(data)
        rows = tuple(_appointment(r, pid) for r in entry["rows"])
        return rows, float(entry["at"]), int(entry.get("skipped", 0))
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError("cache entry cannot be read") from exc


def dump_person(record: PersonRecord | None, fetched_at: float) -> bytes:
    """A directory answer (None: the directory does not know the person)."""
    return orjson.dumps({"at": fetched_at, "record": record})


def load_person(data: bytes) -> tuple[PersonRecord | None, float]:
    try:
        entry = orjson.loads(data)
        raw = entry["record"]
        at = float(entry["at"])
        if raw is None:
            return None, at
        reps = tuple(Representation(pid=r["pid"], name=r["name"], birth_date=_date(r["birth_date"]),
                                    basis=RepresentationBasis(r["basis"])) for r in raw["may_act_for"])
        return PersonRecord(pid=raw["pid"], name=raw["name"], birth_date=_date(raw["birth_date"]),
                            confidential=raw["confidential"], municipality=raw["municipality"],
                            district=raw["district"], gp_her_id=raw["gp_her_id"], gp_name=raw["gp_name"],
                            may_act_for=reps), at
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError("person entry cannot be read") from exc


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None
