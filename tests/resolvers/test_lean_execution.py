"""The basic-leaf-field shortcut answers exactly as graphql-core's full path does: the same
data, and the same errors at the same paths when a value is null or not what its type says."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NewType

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers import execution
from resolvers.execution import LeanExecutionContext
from resolvers.schema import build_schema


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


Shy = NewType("Shy", str)
CONFIG = StrawberryConfig(scalar_map={Shy: strawberry.scalar(
    name="Shy", serialize=lambda v: None if v == "hidden" else v, parse_value=str,
    description="Serializes \"hidden\" to null, as a custom scalar may.")})


@dataclass
class LookAlike:
    """Has a Place's attributes but is no Place: graphql-core refuses it (is_type_of)."""

    name: str | None
    code: int


@strawberry.interface
class Coded:
    code: int


@strawberry.type
class Place(Coded):  # an interface's type: graphql-core checks is_type_of on its objects
    name: str | None
    code: int


@strawberry.type
class Row:
    id: strawberry.ID
    title: str
    note: str | None
    colour: Colour
    shade: Colour | None
    at: datetime
    count: int
    ratio: float
    flag: bool
    place: Place | None
    home: Place
    tags: list[str]
    stops: list[Place]
    maybe: list[Place | None] | None
    mood: Shy
    secret: strawberry.Private[str]

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.title.upper() * times

    @strawberry.field
    async def later(self) -> str:
        return self.secret[::-1]


def row(**changes: Any) -> Row:
    values: dict[str, Any] = {
        "id": strawberry.ID("r1"), "title": "Kontroll", "note": None, "colour": Colour.RED, "shade": None,
        "at": datetime(2026, 11, 27, 9, 30, tzinfo=UTC), "count": 3, "ratio": 0.5, "flag": True,
        "place": Place(name="Haukeland", code=7), "home": Place(name=None, code=1), "tags": ["a", "b"],
        "stops": [Place(name="Voss", code=2), Place(name=None, code=3)], "maybe": [None, Place(name="Os", code=4)],
        "mood": "calm", "secret": "terces",
    }
    values.update(changes)
    return Row(**values)


ROWS: list[Row] = []


@strawberry.type
class Query:
    @strawberry.field
    def rows(self) -> list[Row]:
        return ROWS


class Shouting(SchemaExtension):
    """A resolver middleware: every string comes back in capitals."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


def schemas(*extensions: type[SchemaExtension]) -> tuple[strawberry.Schema, strawberry.Schema]:
    lean = strawberry.Schema(query=Query, execution_context_class=LeanExecutionContext, extensions=extensions,
                              config=CONFIG)
    full = strawberry.Schema(query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext,
                             extensions=extensions, config=CONFIG)
    return lean, full


QUERY = """{ rows { id title note colour shade at count ratio flag tags mood place { name code __typename }
  spot: place { code name } home { name } homeCode: home { code }
  stops { name code __typename } maybe { code } stopNames: stops { name }
  shout(times: 2) later first: title alias: colour ...more skipped: count @skip(if: true)
  kept: count @include(if: true) __typename } }
fragment more on Row { title flag place { code } note @include(if: false) }"""

BROKEN = {
    "null for a non-null string": {"title": None},
    "null for a non-null enum": {"colour": None},
    "a string where an int belongs": {"count": "many"},
    "a naive value where a datetime belongs": {"at": "not a datetime"},
    "an unknown enum value": {"shade": "green"},
    "a custom scalar that serializes to null": {"mood": "hidden"},
    "null for a non-null object": {"home": None},
    "something else where an object belongs": {"place": "Haukeland"},
    "a look-alike of another class where an object belongs": {"place": LookAlike(name="Haukeland", code=7)},
    "a refused value inside an object": {"home": Place(name=None, code="one")},  # type: ignore[arg-type]
    "null for a non-null nested int": {"place": Place(name=None, code=None)},  # type: ignore[arg-type]
    "null for a non-null list": {"stops": None},
    "a null item in a list of non-null objects": {"stops": [Place(name="Voss", code=2), None]},
    "something else where a list belongs": {"stops": 7},
    "a look-alike in a list of objects": {"stops": [LookAlike(name="Voss", code=2)]},
    "a refused value inside a listed object": {"maybe": [None, Place(name="Os", code="four")]},  # type: ignore[arg-type]
}


def answer(result: Any) -> tuple[str, list[tuple[str, tuple[Any, ...]]]]:
    """The data as JSON text (so the order of fields counts too) and the errors with their paths."""
    return json.dumps(result.data), sorted((e.message, tuple(e.path or ())) for e in result.errors or [])


async def test_the_shortcut_gives_the_same_answers_as_the_full_path() -> None:
    lean, full = schemas()
    ROWS[:] = [row(), row(id=strawberry.ID("r2"), note="Ta med henvisning", shade=Colour.BLUE, flag=False),
               # Values graphql-core's serializers convert rather than refuse:
               row(id=7, note=2.5, flag=1)]  # type: ignore[arg-type]
    lean_result, full_result = await lean.execute(QUERY), await full.execute(QUERY)
    assert full_result.errors is None
    assert answer(lean_result) == answer(full_result)
    assert lean_result.data is not None
    assert lean_result.data["rows"][1]["at"] == "2026-11-27T09:30:00+00:00"
    assert lean_result.data["rows"][1]["shade"] == "BLUE"


@pytest.mark.parametrize("changes", list(BROKEN.values()), ids=list(BROKEN))
async def test_bad_values_fail_exactly_as_on_the_full_path(changes: dict[str, Any]) -> None:
    lean, full = schemas()
    ROWS[:] = [row(), row(id=strawberry.ID("r2"), **changes)]
    lean_result, full_result = await lean.execute(QUERY), await full.execute(QUERY)
    assert full_result.errors, "the broken value should be an error"
    assert answer(lean_result) == answer(full_result)


async def test_a_resolver_middleware_sees_every_field() -> None:
    lean, full = schemas(Shouting)
    ROWS[:] = [row(note="Ta med henvisning")]
    lean_result, full_result = await lean.execute(QUERY), await full.execute(QUERY)
    assert answer(lean_result) == answer(full_result)
    assert lean_result.data is not None
    assert lean_result.data["rows"][0]["note"] == "TA MED HENVISNING"


async def test_objects_of_basic_fields_are_answered_without_graphql_cores_field_path(monkeypatch: Any) -> None:
    calls: list[str] = []
    full = StrawberryGraphQLCoreExecutionContext.execute_field

    def counted(self: Any, parent_type: Any, *args: Any) -> Any:
        calls.append(parent_type.name)
        return full(self, parent_type, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", counted)
    lean, _ = schemas()
    ROWS[:] = [row(), row()]
    result = await lean.execute("{ rows { title place { name code } home { code } stops { name } maybe { code } } }")
    assert result.errors is None
    assert calls == ["Query"]  # only the root resolver; the rows, their places and lists take the shortcut


def test_the_list_fields_take_the_shortcut_and_resolvers_do_not() -> None:
    schema = build_schema()
    types = schema._schema.type_map
    for type_name, field in [("Appointment", "title"), ("Appointment", "start"), ("Appointment", "status"),
                             ("Appointment", "id"), ("Location", "address"), ("AppointmentConnection", "totalCount")]:
        assert execution._plan(types[type_name], field) is not None, (type_name, field)
    for type_name, field in [("Appointment", "location"), ("Appointment", "source"), ("AppointmentEdge", "cursor"),
                             ("Person", "mayActFor"), ("Query", "appointments")]:
        assert execution._plan(types[type_name], field) is None, (type_name, field)
