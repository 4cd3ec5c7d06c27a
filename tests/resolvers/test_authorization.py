"""Object-level authorization: every cross-person read or write fails like a missing id,
and representatives get exactly what Helsenorge's rules allow — also when cancelling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import Bff
from tests.resolvers.queries import LIST, rows
from tests.resolvers.test_cancellation import REQUEST, bergen_visit, cancel, subscribe
from tests.resolvers.test_cancellation_more import hospital_bff


async def test_aliases_mixing_own_and_foreign_ids_return_only_the_own(bff: Bff) -> None:
    mine = rows(await bff.query(LIST, who="frogner"))[0]["id"]
    theirs = rows(await bff.query(LIST, who="asane"))[0]["id"]
    data = await bff.query("query($a: ID!, $b: ID!) { a: appointment(id: $a) { id } b: appointment(id: $b) { id } "
                           "c: node(id: $b) { id } }", {"a": mine, "b": theirs}, who="frogner")
    assert data == {"a": {"id": mine}, "b": None, "c": None}


async def test_someone_elses_cancellation_request_is_invisible(bff: Bff) -> None:
    visit = await bergen_visit(bff)
    request = (await cancel(bff, visit["id"]))["request"]
    assert (await bff.query(REQUEST, {"id": request["id"]}, who="frogner")) == {"cancellationRequest": None}
    node = await bff.query("query($id: ID!) { node(id: $id) { id } }", {"id": request["id"]}, who="frogner")
    assert node == {"node": None}
    assert (await bff.query(REQUEST, {"id": request["id"]}, who="asane"))["cancellationRequest"]["id"] == request["id"]


async def test_outcomes_reach_only_the_requesters_subscription(bff: Bff) -> None:
    stranger = await subscribe(bff, who="frogner")
    owner = await subscribe(bff, who="asane")
    try:
        visit = await bergen_visit(bff)
        await cancel(bff, visit["id"])
        assert (await owner.next())["data"]["cancellationUpdates"]["request"]["status"] == "ACCEPTED"
        try:
            got = await stranger.next(timeout=1.5)
            raise AssertionError(f"another person's outcome leaked: {got}")
        except TimeoutError:
            pass
    finally:
        await owner.close()
        await stranger.close()
    replay = await subscribe(bff, after="0", who="frogner")
    try:
        await asyncio.wait_for(replay.next(), 1.0)
        raise AssertionError("a stranger's replay is not empty")
    except TimeoutError:
        pass
    finally:
        await replay.close()


async def test_cancelling_on_behalf_follows_the_representation_rules(bff: Bff, make_bff: Any, tmp_path: Path) -> None:
    hospital = await hospital_bff(make_bff, tmp_path)
    reps = await hospital.query("{ me { mayActFor { id name } } }", who="parent")
    emma = next(p["id"] for p in reps["me"]["mayActFor"] if p["name"] == "Emma Dahl")
    emmas = rows(await hospital.query(LIST, {"on": emma, "filter": {"sourceIds": ["helse-vest"]}}, who="parent"))
    assert emmas[0]["canCancel"] is True
    answer = await cancel(hospital, emmas[0]["id"], who="parent")
    assert answer["request"]["status"] == "ACCEPTED"
    lukas_own = rows(await hospital.query(LIST, {"filter": {"sourceIds": ["helse-vest"]}}, who="child_teen"))
    refused = await cancel(hospital, lukas_own[0]["id"], who="parent")
    assert refused["request"] is None and refused["errors"][0]["code"] == "NOT_FOUND"
