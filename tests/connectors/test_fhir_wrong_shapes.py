"""A provider's JSON of the wrong shape costs at most the appointment it is in.

Hypothesis takes the published Helsenorge examples and puts an arbitrary JSON value (a
number where the profile has a string, an object where it has a list, …) at an arbitrary
place inside one Appointment. The mapping must never raise, and every other appointment in
the same answer must come out exactly as it did before.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.fhir.mapping import appointments_in
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit

Path = tuple[Any, ...]
WITH_APPOINTMENTS = sorted(p.name for p in FIXTURES.glob("*.json") if p.name.startswith(("Appointment-", "Bundle-")))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["booked", "cancelled", "#", "Location/x", "HOSP", "05", "2026-12-01T10:00:00+01:00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def read(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def places(value: Any, at: Path = ()) -> Iterator[Path]:
    """Every place inside `value` a value could be put (each key and list position)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*at, key)
            yield from places(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield (*at, index)
            yield from places(inner, (*at, index))


def appointment_roots(resource: Any) -> list[Path]:
    if resource.get("resourceType") == "Appointment":
        return [()]
    return [("entry", i, "resource") for i, e in enumerate(resource["entry"])
            if e["resource"].get("resourceType") == "Appointment"]


def get(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def mapped(resource: Any) -> tuple[dict[str, Any], int]:
    rows, skipped = appointments_in(resource, source_id="helse-vest", patients=None)
    return {row.upstream_id: row for row in rows}, skipped


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(WITH_APPOINTMENTS), value=json_values)
def test_a_value_of_any_shape_costs_at_most_its_own_appointment(data: st.DataObject, name: str, value: Any) -> None:
    original = read(name)
    root = data.draw(st.sampled_from(appointment_roots(original)), label="appointment")
    inner = data.draw(st.sampled_from(list(places(get(original, root)))), label="place")
    touched_id = get(original, root).get("id")
    broken = copy.deepcopy(original)
    parent = get(broken, root + inner[:-1])
    parent[inner[-1]] = value

    rows, skipped = mapped(broken)

    before, _ = mapped(original)
    assert skipped <= 1
    others = [key for key in before if key != touched_id]
    assert [rows.get(key) for key in others] == [before[key] for key in others]
