"""Opaque, owner-bound IDs and the bearer-token gate."""

from __future__ import annotations

import pytest

from tests.conftest import Bff
from tests.resolvers.queries import LIST, ONE, rows


async def test_an_appointment_can_be_fetched_again_by_its_id(bff: Bff) -> None:
    listed = rows(await bff.query(LIST, who="asane"))
    for row in listed:
        data = await bff.query(ONE, {"id": row["id"]}, who="asane")
        assert data["appointment"]["id"] == row["id"]
        assert data["appointment"]["title"] == row["title"]
        assert data["node"] == {"id": row["id"], "title": row["title"]}


async def test_ids_reveal_nothing_of_provider_ids_or_persons(bff: Bff, people: dict) -> None:
    listed = rows(await bff.query(LIST, who="asane"))
    for row in listed:
        assert "bgo" not in row["id"] and "helse" not in row["id"]
        assert people["asane"].pid not in row["id"]


async def test_someone_elses_id_answers_exactly_like_a_missing_one(bff: Bff) -> None:
    karis = rows(await bff.query(LIST, who="asane"))[0]["id"]
    foreign = await bff.post(ONE, {"id": karis}, who="frogner")
    tampered = await bff.post(ONE, {"id": karis[:-3] + ("AAA" if not karis.endswith("AAA") else "BBB")}, who="frogner")
    invented = await bff.post(ONE, {"id": "nothing-here"}, who="frogner")
    bodies = [r.json() for r in (foreign, tampered, invented)]
    assert all(r.status_code == 200 for r in (foreign, tampered, invented))
    assert bodies[0] == bodies[1] == bodies[2] == {"data": {"appointment": None, "node": None}}


async def test_past_gp_appointment_is_found_by_id(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"includePast": True, "sourceKinds": ["GP"]}}, who="gp_pilot")
    past = rows(data)[0]
    assert past["title"] == "Konsultasjon"
    again = await bff.query(ONE, {"id": past["id"]}, who="gp_pilot")
    assert again["appointment"]["title"] == "Konsultasjon"


async def test_a_source_is_a_node(bff: Bff) -> None:
    data = await bff.query('{ node(id: "bergen-kommune") { id ... on Source { name kind } } }')
    assert data["node"] == {"id": "bergen-kommune", "name": "Bergen kommune, hjemmetjenester",
                            "kind": "MUNICIPALITY"}


async def test_no_token_is_401_with_a_bearer_challenge(bff: Bff) -> None:
    response = await bff.http.post(f"{bff.url}/graphql", json={"query": "{ me { name } }"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "data" not in response.json()


@pytest.mark.parametrize("header", ["Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "Token abc"])
async def test_malformed_authorization_is_401(bff: Bff, header: str) -> None:
    response = await bff.http.post(f"{bff.url}/graphql", json={"query": "{ me { name } }"},
                                   headers={"Authorization": header})
    assert response.status_code == 401
    assert 'error="invalid' in response.headers["www-authenticate"]


async def test_substantial_assurance_is_403_with_a_clear_message(bff: Bff) -> None:
    token = bff.token("asane", acr="idporten-loa-substantial")
    response = await bff.http.post(f"{bff.url}/graphql", json={"query": "{ me { name } }"},
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    error = response.json()["errors"][0]
    assert "høyt sikkerhetsnivå" in error["message"]  # for the citizen, in bokmål
    assert error["extensions"]["code"] == "FORBIDDEN" and "idporten-loa-high" in error["extensions"]["reason"]


async def test_me_names_the_viewer_and_whom_they_may_act_for(bff: Bff) -> None:
    data = await bff.query("{ me { name birthDate mayActFor { name } } }", who="parent")
    names = [p["name"] for p in data["me"]["mayActFor"]]
    # Sofie (17) is too old for a parent to act for, and Mia has a confidential address.
    assert names == ["Emma Dahl", "Lukas Dahl", "Arne Dahl"]
    assert data["me"]["name"] == "Nora Dahl"
