"""Every row of the coverage table, through GraphQL over HTTP against the sandbox."""

from __future__ import annotations

from datetime import datetime

from tests.conftest import Bff
from tests.resolvers.queries import LIST, consulted, rows, titles


async def test_bergen_asane_shows_regular_assigned_and_citizen_cancelled_visits(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"sourceIds": ["bergen-kommune"]}}, who="asane")
    visits = rows(data)
    kinds = {(v["status"], v["visitKind"], v["cancelledBy"]) for v in visits}
    assert ("BOOKED", "REGULAR", None) in kinds
    assert ("ASSIGNED", "ASSIGNED", None) in kinds
    assert ("CANCELLED", "REGULAR", "PATIENT") in kinds
    # Bergen does not show performed visits, nor cancelled ones before today.
    assert all(v["visitKind"] != "PERFORMED" for v in visits)
    assert len(visits) == 5
    assistance = [v for v in visits if v["service"] == "PRACTICAL_ASSISTANCE"]
    assert len(assistance) == 4
    assigned = next(v for v in visits if v["status"] == "ASSIGNED")
    assert assigned["practitioner"] == "Siri Hjelper"
    assert assigned["organization"] == "Bergen kommune" and assigned["department"] == "Åsane"
    assert all(v["kind"] == "HOME_VISIT" for v in visits)


async def test_bergen_visits_without_offset_are_oslo_local_time(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"sourceIds": ["bergen-kommune"]}}, who="asane")
    for visit in rows(data):
        start = datetime.fromisoformat(visit["start"])
        assert start.utcoffset() is not None
        assert visit["start"].endswith(("+01:00", "+02:00"))


async def test_oslo_frogner_shows_future_regular_and_service_cancelled_but_not_assigned(bff: Bff) -> None:
    data = await bff.query(LIST, who="frogner")
    visits = rows(data)
    assert {(v["status"], v["visitKind"], v["cancelledBy"]) for v in visits} == {
        ("BOOKED", "REGULAR", None), ("CANCELLED", "REGULAR", "PROVIDER")}
    assert len(visits) == 3
    assert all(v["service"] == "HOME_NURSING" for v in visits)
    assert consulted(data) == {"helse-vest": "OK", "helse-nord": "OK", "helse-midt": "OK", "oslo-kommune": "OK"}


async def test_oslo_performed_visits_show_with_include_past(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"includePast": True}}, who="frogner")
    performed = [v for v in rows(data) if v["visitKind"] == "PERFORMED"]
    assert len(performed) == 2
    assert all(v["status"] == "FULFILLED" and v["practitioner"] == "Per Pleier" for v in performed)
    # A visit cancelled before today never shows, not even with includePast; nor does one
    # planned before today and never marked performed (only performed visits may be past).
    assert not [v for v in rows(data) if v["status"] == "CANCELLED" and v["start"] < data_today(data)]
    assert not [v for v in rows(data) if v["status"] == "BOOKED" and v["start"] < data_today(data)]
    assert len(rows(data)) == 5


def data_today(data: dict) -> str:
    return min(v["start"] for v in rows(data) if v["status"] == "BOOKED")


async def test_helse_vest_hospital_appointments_with_helsenorge_details(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"sourceKinds": ["HOSPITAL"]}}, who="asane")
    visible = rows(data)
    assert [v["title"] for v in visible] == [
        "Kontroll etter grå stær", "Forslag til time", "Avlyst kontroll", "Synsundersøkelse",
        "Telefonsamtale med lege"]
    first = visible[0]
    assert first["organization"] == "Haukeland universitetssjukehus"
    assert first["department"] == "Augeavdelinga"
    assert first["location"] == {"name": "Øyepoliklinikken", "address": "Jonas Lies vei 65, 5021 Bergen"}
    assert first["source"] == {"id": "helse-vest", "kind": "HOSPITAL"}
    proposed = next(v for v in visible if v["title"] == "Forslag til time")
    assert proposed["status"] == "BOOKED" and proposed["confirmed"] is False
    assert {v["title"]: v["kind"] for v in visible}["Synsundersøkelse"] == "VIDEO"
    assert {v["title"]: v["kind"] for v in visible}["Telefonsamtale med lege"] == "PHONE"
    cancelled = next(v for v in visible if v["status"] == "CANCELLED")
    assert cancelled["cancelledBy"] == "PROVIDER"
    # Helse Vest cannot take cancellations yet, whatever the row's flags say.
    assert not any(v["canCancel"] for v in visible)


async def test_helse_nord_shows_only_participating_departments(bff: Bff) -> None:
    data = await bff.query(LIST, who="tromso")
    assert titles(data) == ["Cellegiftbehandling"]
    assert rows(data)[0]["department"] == "Kreftavdelingen"


async def test_helse_midt_shows_only_participating_departments_from_bundled_resources(bff: Bff) -> None:
    data = await bff.query(LIST, who="trondheim")
    assert titles(data) == ["Kontroll etter kneoperasjon"]
    assert rows(data)[0]["location"]["name"] == "Ortopedisk poliklinikk, St. Olavs hospital"


async def test_gp_in_pilot_future_by_default_and_past_with_include_past(bff: Bff) -> None:
    future = await bff.query(LIST, {"filter": {"sourceKinds": ["GP"]}}, who="gp_pilot")
    assert titles(future) == ["Videokonsultasjon", "Oppfølging"]
    assert rows(future)[1]["cancelledBy"] == "PATIENT"
    assert rows(future)[0]["practitioner"] == "Lege Anne Vik"
    history = await bff.query(LIST, {"filter": {"sourceKinds": ["GP"], "includePast": True}}, who="gp_pilot")
    assert titles(history) == ["Konsultasjon", "Blodprøvekontroll", "Videokonsultasjon", "Oppfølging"]
    assert [r["status"] for r in rows(history)][:2] == ["FULFILLED", "NOSHOW"]
    # Older than the two-year look-back: not shown.
    assert "Gammel konsultasjon" not in titles(history)


async def test_hospital_past_is_never_shown_even_with_include_past(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"includePast": True, "sourceIds": ["helse-vest"]}}, who="asane")
    assert "Operasjon" not in titles(data)


async def test_a_service_not_yet_activated_is_not_shown(bff: Bff) -> None:
    data = await bff.query(LIST, who="mealclient")
    assert [r["service"] for r in rows(data)] == ["HOME_NURSING", "PRACTICAL_ASSISTANCE"]


async def test_a_person_with_nothing_gets_an_empty_list_and_the_hospitals_consulted(bff: Bff) -> None:
    data = await bff.query(LIST, who="nobody")
    assert data["appointments"]["totalCount"] == 0
    assert consulted(data) == {"helse-vest": "OK", "helse-nord": "OK", "helse-midt": "OK"}


async def test_a_person_unknown_to_the_directory_gets_hospitals_only(bff: Bff) -> None:
    data = await bff.query(LIST, who="unknown")
    assert titles(data) == ["Blodprøve"]
    assert set(consulted(data)) == {"helse-vest", "helse-nord", "helse-midt"}


async def test_every_row_names_its_source_and_patient(bff: Bff) -> None:
    data = await bff.query(LIST, who="asane")
    assert {r["source"]["id"] for r in rows(data)} == {"helse-vest", "bergen-kommune"}
    assert {r["patient"]["name"] for r in rows(data)} == {"Kari Nordmann"}
    starts = [r["start"] for r in rows(data)]
    assert starts == sorted(starts, key=datetime.fromisoformat)


async def test_the_documented_cast_is_the_sandboxs(bff: Bff) -> None:
    """docs/sandbox.md's cast table names every person `bff token --list` offers, and what
    it says the children and Arne have holds."""
    from pathlib import Path

    from tests.conftest import PEOPLE

    readme = (Path(__file__).resolve().parents[2] / "docs" / "sandbox.md").read_text("utf-8")
    assert all(f"| `{handle}` |" in readme for handle in PEOPLE)
    expected = {"child_small": {"Vaksinasjon", "Øyekontroll barn"}, "child_teen": {"Helsesjekk", "Ungdomspoliklinikk"},
                "child_older": {"Samtale"}, "child_hidden": set(), "elder": {"Hjemmesykepleie", "Hørselstest"}}
    for who, shown in expected.items():
        assert {r["title"] for r in rows(await bff.query(LIST, who=who))} == shown, who
