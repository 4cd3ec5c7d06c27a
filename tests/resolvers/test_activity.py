"""The citizen's activity log ("Hvem har sett timene mine"): every read and change of a
person's appointments, who did it and how, newest first; full-access representatives
only; reading it is not itself logged."""

from __future__ import annotations

from typing import Any

from tests.conftest import Bff, Sandbox
from tests.resolvers.queries import LIST, ONE, rows
from tests.resolvers.test_cancellation import bergen_visit, cancel, wait_for
from tests.resolvers.test_representation import person_ids

ACTIVITY = """
query Activity($first: Int, $after: String, $on: ID) {
  activity(first: $first, after: $after, onBehalfOf: $on) {
    nodes { at action channel sourceNames actor { name relation } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def log_of(bff: Bff, who: str, on: str | None = None, first: int = 50) -> list[dict[str, Any]]:
    return list((await bff.query(ACTIVITY, {"first": first, "on": on}, who=who))["activity"]["nodes"])


async def test_reads_exports_and_cancellations_are_in_the_log_newest_first(bff: Bff, sandbox: Sandbox) -> None:
    listed = await bff.query(LIST, who="asane")
    hospital = next(r for r in rows(listed) if r["source"]["id"] == "helse-vest")
    await bff.query(ONE, {"id": hospital["id"]}, who="asane")
    calendar = await bff.http.get(f"{bff.url}/calendar.ics", headers={"Authorization": f"Bearer {bff.token('asane')}"})
    assert calendar.status_code == 200
    await cancel(bff, (await bergen_visit(bff))["id"])

    async def decided() -> list[dict[str, Any]]:
        entries = await log_of(bff, "asane")
        return entries if entries[0]["action"] == "CANCELLATION_DECIDED" else []

    entries = await wait_for(decided)
    actions = [e["action"] for e in entries]
    # Newest first: the decision, the mutation's answer reading the appointment, the request,
    # the list the visit was picked from.
    assert actions[:4] == ["CANCELLATION_DECIDED", "APPOINTMENT_READ", "CANCELLATION_REQUESTED", "LIST_READ"]
    # Before those: the calendar export, then (older) the appointment opened (the document
    # asks for it as `appointment` and as `node`: two reads), then the list.
    assert actions[4:8] == ["CALENDAR_EXPORT", "APPOINTMENT_READ", "APPOINTMENT_READ", "LIST_READ"]
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert {(e["actor"]["name"], e["actor"]["relation"]) for e in entries} == {("Kari Nordmann", "SELF")}
    export = next(e for e in entries if e["action"] == "CALENDAR_EXPORT")
    assert export["channel"] == "CALENDAR"
    read = entries[5]
    assert read["channel"] == "WEB"
    assert read["sourceNames"] == [bff.app.state.services.catalogue.by_id(hospital["source"]["id"]).name]
    assert entries[0]["sourceNames"] == ["Bergen kommune, hjemmetjenester"]
    first_list = [e for e in entries if e["action"] == "LIST_READ"][-1]  # the oldest: the whole list
    assert "Bergen kommune, hjemmetjenester" in first_list["sourceNames"] and len(first_list["sourceNames"]) > 1


async def test_a_parents_reads_are_in_the_childs_log_and_partial_access_sees_no_log(bff: Bff) -> None:
    ids = await person_ids(bff)
    await bff.query(LIST, {"on": ids["Emma Dahl"]}, who="parent")
    emma = await log_of(bff, "parent", on=ids["Emma Dahl"])
    assert emma and emma[0]["action"] == "LIST_READ"
    assert emma[0]["actor"] == {"name": "Nora Dahl", "relation": "PARENT"}
    arne = await bff.query(LIST, {"on": ids["Arne Dahl"]}, who="parent")
    assert rows(arne)
    assert (await log_of(bff, "parent", on=ids["Arne Dahl"]))[0]["actor"]["relation"] == "POWER_OF_ATTORNEY"
    # Lukas is 14: his parent sees some of his appointments, but not his log — as for a stranger.
    teen = await bff.post(ACTIVITY, {"on": ids["Lukas Dahl"]}, who="parent")
    stranger = await bff.post(ACTIVITY, {"on": ids["Lukas Dahl"]}, who="asane")
    assert teen.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert teen.json()["errors"][0]["message"] == stranger.json()["errors"][0]["message"]


async def test_reading_the_log_is_not_logged_and_paging_is_stable_while_entries_arrive(bff: Bff) -> None:
    for _ in range(3):
        await bff.query(LIST, who="frogner")
    before = await log_of(bff, "frogner")
    assert len(before) == 3 and before == await log_of(bff, "frogner")  # reading it added nothing
    page = (await bff.query(ACTIVITY, {"first": 2}, who="frogner"))["activity"]
    assert page["pageInfo"]["hasNextPage"] is True and len(page["nodes"]) == 2
    await bff.query(LIST, who="frogner")  # a new entry arrives between the pages
    rest = (await bff.query(ACTIVITY, {"first": 2, "after": page["pageInfo"]["endCursor"]}, who="frogner"))
    assert [e["at"] for e in page["nodes"] + rest["activity"]["nodes"]] == [e["at"] for e in before]
    assert rest["activity"]["pageInfo"]["hasNextPage"] is False
    forged = await bff.post(ACTIVITY, {"after": page["pageInfo"]["endCursor"]}, who="asane")
    assert forged.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
