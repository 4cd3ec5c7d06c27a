"""Window, filters, order and pagination of the list."""

from __future__ import annotations

from datetime import datetime, timedelta

from bff.domain.timez import OSLO, now, start_of_day, today
from tests.conftest import Bff
from tests.resolvers.queries import LIST, rows, titles


async def test_default_window_starts_today_and_today_counts_as_future(bff: Bff) -> None:
    data = await bff.query(LIST, who="asane")
    starts = [datetime.fromisoformat(r["start"]) for r in rows(data)]
    assert min(starts) >= start_of_day(today())
    # A visit late tonight is in the list even if it has started by the time tests run.
    assert any(s.date() == today() for s in starts)


async def test_explicit_from_and_to_narrow(bff: Bff) -> None:
    everything = rows(await bff.query(LIST, who="asane"))
    lower = datetime.fromisoformat(everything[2]["start"])
    upper = datetime.fromisoformat(everything[5]["start"])
    data = await bff.query(LIST, {"filter": {"from": lower.isoformat(), "to": upper.isoformat()}}, who="asane")
    assert [r["id"] for r in rows(data)] == [r["id"] for r in everything[2:6]]


async def test_from_before_today_does_not_widen_without_include_past(bff: Bff) -> None:
    long_ago = (now() - timedelta(days=365)).isoformat()
    data = await bff.query(LIST, {"filter": {"from": long_ago, "sourceKinds": ["GP"]}}, who="gp_pilot")
    assert titles(data) == ["Videokonsultasjon", "Oppfølging"]


async def test_include_past_with_from_narrows_the_look_back(bff: Bff) -> None:
    month_ago = datetime.combine(today() - timedelta(days=30), datetime.min.time(), OSLO).isoformat()
    data = await bff.query(LIST, {"filter": {"includePast": True, "from": month_ago, "sourceKinds": ["GP"]}},
                           who="gp_pilot")
    assert titles(data) == ["Blodprøvekontroll", "Videokonsultasjon", "Oppfølging"]


async def test_status_filter(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"statuses": ["CANCELLED"]}}, who="asane")
    assert {r["status"] for r in rows(data)} == {"CANCELLED"}
    assert data["appointments"]["totalCount"] == 2


async def test_source_kind_and_id_filters_limit_which_sources_are_consulted(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"sourceKinds": ["MUNICIPALITY"]}}, who="asane")
    assert [s["source"]["id"] for s in data["appointments"]["sources"]] == ["bergen-kommune"]
    data = await bff.query(LIST, {"filter": {"sourceIds": ["helse-vest"]}}, who="asane")
    assert [s["source"]["id"] for s in data["appointments"]["sources"]] == ["helse-vest"]


async def test_order_is_start_then_source_then_id(bff: Bff) -> None:
    data = await bff.query(LIST, {"filter": {"includePast": True}}, who="asane")
    keys = [(datetime.fromisoformat(r["start"]), r["source"]["id"]) for r in rows(data)]
    assert keys == sorted(keys)


async def test_pagination_walks_the_whole_list_without_gaps_or_repeats(bff: Bff) -> None:
    full = await bff.query(LIST, who="asane")
    expected = [r["id"] for r in rows(full)]
    seen: list[str] = []
    after = None
    while True:
        page = await bff.query(LIST, {"first": 3, "after": after}, who="asane")
        conn = page["appointments"]
        assert conn["totalCount"] == len(expected)
        seen += [r["id"] for r in rows(page)]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == expected
    assert len(expected) == 10


async def test_first_is_capped_at_100_and_bad_cursors_are_refused(bff: Bff) -> None:
    response = await bff.post(LIST, {"first": 101})
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "first" in body["errors"][0]["message"]
    response = await bff.post(LIST, {"after": "not-a-cursor"})
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_sources_catalogue_lists_every_configured_source(bff: Bff) -> None:
    data = await bff.query("{ sources { id name kind region municipality municipalityName districts services "
                           "capabilities { future past cancel } } }")
    by_id = {s["id"]: s for s in data["sources"]}
    assert set(by_id) == {"helse-vest", "helse-nord", "helse-midt", "fastlege-pilot", "oslo-kommune",
                          "bergen-kommune"}
    assert by_id["oslo-kommune"]["districts"] == ["Østensjø", "Frogner", "Grünerløkka", "Alna"]
    assert by_id["bergen-kommune"]["capabilities"] == {"future": True, "past": False, "cancel": True}
    assert by_id["fastlege-pilot"]["capabilities"]["past"] is True
    assert by_id["helse-nord"]["region"] == "HELSE_NORD"
    assert by_id["bergen-kommune"]["services"] == ["HOME_NURSING", "PRACTICAL_ASSISTANCE"]
