"""schema.graphql is generated from the code and must not drift from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolvers.schema import build_schema

pytestmark = pytest.mark.unit

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"

CONTRACT_NAMES = [
    "me: Person!",
    "appointments(filter: AppointmentFilter = null, first: Int = 50, after: String = null, onBehalfOf: ID = null): "
    "AppointmentConnection!",
    "appointment(id: ID!): Appointment",
    "sources: [Source!]!",
    "node(id: ID!): Node",
    "type AppointmentConnection",
    "includePast: Boolean = false",
    "enum SourceState",
    "enum AppointmentStatus",
    "enum VisitKind",
    "enum CancelledBy",
    "enum MunicipalService",
    "enum HealthRegion",
    "enum AppointmentKind",
    "type Appointment implements Node",
    "type Source implements Node",
]


def test_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text("utf-8") == build_schema().as_str() + "\n", (
        "schema.graphql is out of date: run `bff export-schema`")


def test_schema_keeps_the_contract_names() -> None:
    sdl = build_schema().as_str()
    for name in CONTRACT_NAMES:
        assert name in sdl, name


def test_every_field_and_type_is_described() -> None:
    schema = build_schema()._schema
    missing = []
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__") or type_name in ("String", "Boolean", "Int", "ID", "Float"):
            continue
        if not getattr(graphql_type, "description", None):
            missing.append(type_name)
        for field_name, field in (getattr(graphql_type, "fields", None) or {}).items():
            if not field.description:
                missing.append(f"{type_name}.{field_name}")
    assert missing == []
