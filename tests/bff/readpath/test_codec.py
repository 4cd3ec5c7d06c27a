"""Cache entries: every row comes back as it went in, without its owner's pid."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from bff.domain.models import Appointment
from bff.domain.timez import today
from bff.readpath.codec import dump_entry, load_entry
from bff.sandbox.cast import build_world
from connectors.fhir.mapping import appointments_in
from connectors.municipal import map_visit

pytestmark = pytest.mark.unit


def every_sandbox_row() -> list[Appointment]:
    """All the sandbox's appointments and visits, mapped as the connectors map them."""
    world = build_world(today())
    rows: list[Appointment] = []
    for source, appointments in world.fhir.items():
        bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for a in appointments
                                                      for r in (a.resource, *a.included)]}
        rows += appointments_in(bundle, source_id=source, patients=None)[0]
    for tenant, people in world.visits.items():
        for pid, visits in people.items():
            rows += [map_visit(v, pid, tenant, "Kommune") for v in visits]
    return rows


def test_every_kind_of_row_survives_the_round_trip_exactly() -> None:
    rows = every_sandbox_row()
    assert len({(r.source_id, r.kind, r.status, r.visit_kind, r.cancelled_by) for r in rows}) > 10
    owner = rows[0].patient_pid
    mine = tuple(r for r in rows if r.patient_pid == owner)
    loaded, at, skipped = load_entry(dump_entry(mine, 1_700_000_000.5, 2), owner)
    assert (loaded, at, skipped) == (mine, 1_700_000_000.5, 2)
    for row in rows:
        assert load_entry(dump_entry((row,), 0.0, 0), row.patient_pid)[0] == (row,)


def test_times_keep_their_instant_and_oslo_offset() -> None:
    row = every_sandbox_row()[0]
    summer = row.start.replace(month=7, day=1, microsecond=123456)
    moved = Appointment(**{**{f: getattr(row, f) for f in row.__slots__}, "start": summer,
                           "end": summer + timedelta(minutes=30)})
    (back,), _, _ = load_entry(dump_entry((moved,), 0.0, 0), row.patient_pid)
    assert back.start == summer and back.start.utcoffset() == timedelta(hours=2)
    assert back.start.isoformat() == summer.isoformat()


def test_an_entry_never_holds_its_owners_pid() -> None:
    for row in every_sandbox_row():
        assert row.patient_pid.encode() not in dump_entry((row,), 0.0, 0)


@pytest.mark.parametrize("raw", [
    orjson.dumps({"at": 1.0, "skipped": 0, "rows": [{"s": "helse-vest", "u": "x"}]}),  # the first format
    orjson.dumps({"v": 99, "at": 1.0, "rows": []}),
    b"not json",
    orjson.dumps({"v": 2, "at": 1.0, "rows": [["too", "short"]]}),
], ids=["format-1", "unknown-version", "not-json", "short-row"])
def test_an_entry_that_cannot_be_read_is_a_miss_not_a_crash(raw: bytes) -> None:
    with pytest.raises(ValueError):
        load_entry(raw, "12345678901")
