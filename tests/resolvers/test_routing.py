"""Which providers are asked: hospitals for everyone, municipalities by district, the GP
pilot by the GP's HER-id — counted on the sandbox's side of real HTTP calls."""

from __future__ import annotations

import pytest

from tests.conftest import Bff, Sandbox
from tests.resolvers.queries import LIST, consulted

HOSPITALS = {"helse-vest": 1, "helse-nord": 1, "helse-midt": 1}


@pytest.mark.parametrize(("who", "extra"), [
    ("asane", {"bergen": 1, "fastlege": 1}),
    ("frogner", {"oslo": 1}),
    ("gp_pilot", {"fastlege": 1}),
    ("gp_other", {}),
    ("nobody", {}),
    ("tromso", {}),
])
async def test_each_provider_is_asked_only_when_it_applies(bff: Bff, sandbox: Sandbox, who: str,
                                                           extra: dict[str, int]) -> None:
    await bff.query(LIST, who=who)
    calls = await sandbox.calls()
    # helse-vest pages three rows at a time, so a longer list costs more than one page.
    pages = calls.pop("helse-vest")
    assert pages >= 1
    assert calls == {"persons": 1, "helse-nord": 1, "helse-midt": 1, **extra}


async def test_non_pilot_gp_and_non_participating_district_get_no_call(bff: Bff, sandbox: Sandbox) -> None:
    data = await bff.query(LIST, who="gp_other")
    assert set(consulted(data)) == set(HOSPITALS)
    calls = await sandbox.calls()
    assert "fastlege" not in calls and "bergen" not in calls


async def test_district_names_compare_case_insensitively_after_nfc(bff: Bff, sandbox: Sandbox) -> None:
    # The sandbox directory spells Kari's district "Åsane" with a precomposed Å; the sources
    # file may use either form. The routing uses NFC + casefold on both sides.
    from bff.domain.sources import fold

    assert fold("A\u030asane") == fold("ÅSANE") == fold("åsane")
    data = await bff.query(LIST, who="asane")
    assert consulted(data)["bergen-kommune"] == "OK"


async def test_directory_down_hospitals_answer_and_gp_municipal_are_unavailable(bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.fault("persons", status=503)
    data = await bff.query(LIST, who="asane")
    states = consulted(data)
    assert {k: states[k] for k in HOSPITALS} == {k: "OK" for k in HOSPITALS}
    assert states["bergen-kommune"] == "UNAVAILABLE"
    assert states["fastlege-pilot"] == "UNAVAILABLE"
    assert data["appointments"]["totalCount"] == 5


@pytest.mark.parametrize(("variables", "fastlege_calls"), [
    ({}, 1),
    ({"filter": {"includePast": True}}, 1),
    ({"filter": {"sourceIds": ["helse-vest", "bergen-kommune"]}}, 0),
    ({"filter": {"sourceKinds": ["HOSPITAL"]}}, 0),
])
async def test_own_list_asks_the_gp_once_as_soon_as_the_directory_routes_there(
        bff: Bff, sandbox: Sandbox, variables: dict[str, object], fastlege_calls: int) -> None:
    # An own list alone asks the GP pilot when the directory's answer arrives, before its
    # resolver's batch is dispatched; the batch must find that call (same history flag),
    # not make a second one, and a filter that leaves the GP out must keep it unasked.
    data = await bff.query(LIST, variables, who="asane")
    calls = await sandbox.calls()
    assert calls.get("fastlege", 0) == fastlege_calls
    assert ("fastlege-pilot" in consulted(data)) == bool(fastlege_calls)
    assert calls.get("persons") == 1


async def test_the_directory_is_asked_for_the_viewer_only_when_the_document_reads_a_persons_data(
        bff: Bff, sandbox: Sandbox) -> None:
    # A document that reads persons' data has the viewer looked up as soon as it is
    # admitted; the catalogue of sources and introspection read nobody's.
    await bff.query("{ sources { id name } __typename }", who="frogner")
    await bff.query("{ __schema { queryType { name } } }", who="frogner")
    assert "persons" not in await sandbox.calls()
    data = await bff.query("{ me { name } }", who="frogner")
    assert data["me"]["name"]
    assert (await sandbox.calls())["persons"] == 1
