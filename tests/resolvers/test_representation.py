"""Acting for another person by Helsenorge's rules."""

from __future__ import annotations

from tests.conftest import Bff
from tests.resolvers.queries import LIST, ONE, consulted, rows, titles

REPS = "{ me { mayActFor { id name } } }"


async def person_ids(bff: Bff, who: str = "parent") -> dict[str, str]:
    data = await bff.query(REPS, who=who)
    return {p["name"]: p["id"] for p in data["me"]["mayActFor"]}


async def test_a_parent_sees_everything_of_a_child_under_12(bff: Bff) -> None:
    ids = await person_ids(bff)
    data = await bff.query(LIST, {"on": ids["Emma Dahl"]}, who="parent")
    assert titles(data) == ["Vaksinasjon", "Øyekontroll barn"]
    assert {r["patient"]["name"] for r in rows(data)} == {"Emma Dahl"}


async def test_a_parent_sees_gp_and_municipal_but_not_hospital_of_a_child_of_14(bff: Bff) -> None:
    ids = await person_ids(bff)
    data = await bff.query(LIST, {"on": ids["Lukas Dahl"]}, who="parent")
    assert titles(data) == ["Helsesjekk"]
    assert not any(s.startswith("helse-") for s in consulted(data))


async def test_a_child_of_14s_hospital_appointment_cannot_be_fetched_by_id_by_the_parent(bff: Bff) -> None:
    own = await bff.query(LIST, {"filter": {"sourceKinds": ["HOSPITAL"]}}, who="child_teen")
    hospital_id = rows(own)[0]["id"]
    data = await bff.query(ONE, {"id": hospital_id}, who="parent")
    assert data == {"appointment": None, "node": None}


async def test_power_of_attorney_sees_all_of_the_givers_appointments(bff: Bff) -> None:
    ids = await person_ids(bff)
    data = await bff.query(LIST, {"on": ids["Arne Dahl"]}, who="parent")
    assert titles(data) == ["Hjemmesykepleie", "Hørselstest"]


async def test_acting_for_someone_not_listed_fails_like_an_unknown_person(bff: Bff) -> None:
    strangers = await person_ids(bff, who="parent")
    response = await bff.post(LIST, {"on": strangers["Emma Dahl"]}, who="asane")
    garbage = await bff.post(LIST, {"on": "garbage"}, who="asane")
    first, second = response.json(), garbage.json()
    assert first["data"] is None and second["data"] is None
    assert first["errors"][0]["message"] == second["errors"][0]["message"]
    assert first["errors"][0]["extensions"]["code"] == "NOT_FOUND"
