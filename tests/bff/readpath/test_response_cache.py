"""Answers to trusted query documents are reused while nothing they read changed — and
never across viewers, represented persons, or a change of data."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from bff.web.trusted import default_manifest_path
from tests.conftest import CLUSTER, Bff, Sandbox, within_one_rate_window
from tests.resolvers.test_cancellation import cancel

MANIFEST = json.loads(default_manifest_path().read_text("utf-8"))
APPOINTMENTS = "sha256:" + next(k for k, v in MANIFEST.items() if "query Appointments" in v)


async def ask(bff: Bff, who: str, variables: dict[str, Any] | None = None) -> Any:
    body = {"documentId": APPOINTMENTS, "variables": variables or {}}
    headers = {"Authorization": f"Bearer {bff.token(who)}"}
    response = await bff.http.post(f"{bff.url}/graphql", json=body, headers=headers)
    await bff.settled()  # the cache writes made after answering are in Redis, as for `Bff.post`
    return response.json()


async def hits(bff: Bff) -> float:
    text = (await bff.http.get(f"{bff.url}/metrics")).text
    found = re.search(r'bff_response_cache_total\{result="hit"\} ([0-9.]+)', text)
    return float(found.group(1)) if found else 0.0


async def test_a_repeat_is_reused_with_the_same_answer_and_audited_again(bff: Bff, sandbox: Sandbox, redis: Any,
                                                                        redis_prefix: str) -> None:
    first = await ask(bff, "asane")  # cold: fills the entries (a change), so not reused
    warm = await ask(bff, "asane")  # computed from unchanged entries: kept
    before = await hits(bff)
    await sandbox.clear()
    again = await ask(bff, "asane")
    assert again == warm == first and first["data"]["appointments"]["totalCount"] == 10
    assert await hits(bff) == before + 1
    assert await sandbox.calls() == {}
    from bff.domain.ids import Ids
    from tests.conftest import PEOPLE

    stream = f"{redis_prefix}:audit:{{{Ids(bff.settings.secret_for_ids).pseudonym(PEOPLE['asane'].pid)}}}"
    assert [f[b"action"] for _, f in await redis.xrange(stream)] == [b"list", b"list", b"list"]


async def test_a_change_of_data_is_seen_at_once(bff: Bff) -> None:
    await ask(bff, "asane")
    first = await ask(bff, "asane")
    visit = next(n for n in first["data"]["appointments"]["nodes"] if n["canCancel"])
    await cancel(bff, visit["id"])
    after = await ask(bff, "asane")
    changed = next(n for n in after["data"]["appointments"]["nodes"] if n["id"] == visit["id"])
    assert changed["canCancel"] is False and changed["cancellation"]["status"] in ("PENDING", "ACCEPTED")


async def test_never_across_viewers_or_represented_persons(bff: Bff) -> None:
    reps = await bff.query("{ me { mayActFor { id name } } }", who="parent")
    emma = next(p["id"] for p in reps["me"]["mayActFor"] if p["name"] == "Emma Dahl")
    parent_view = await ask(bff, "parent", {"onBehalfOf": emma})
    assert parent_view["data"]["appointments"]["totalCount"] == 2
    again = await ask(bff, "parent", {"onBehalfOf": emma})
    assert again == parent_view
    stranger = await ask(bff, "asane", {"onBehalfOf": emma})
    assert stranger["data"] is None and stranger["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    own = await ask(bff, "parent")
    assert own != parent_view


async def test_an_answer_with_a_source_down_is_not_kept(bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.fault("bergen", status=503)
    await ask(bff, "asane")
    degraded = await ask(bff, "asane")
    assert any(s["state"] == "UNAVAILABLE" for s in degraded["data"]["appointments"]["sources"])
    before = await hits(bff)
    await ask(bff, "asane")
    assert await hits(bff) == before


async def test_an_answer_is_computed_again_once_it_is_max_age_old(bff: Bff, monkeypatch: Any) -> None:
    from bff.readpath import response_cache as response_cache

    monkeypatch.setattr(response_cache, "MAX_AGE", 0.5)
    await ask(bff, "asane")  # cold: fills the entries
    await ask(bff, "asane")  # computed from unchanged entries: kept for MAX_AGE
    before = await hits(bff)
    await ask(bff, "asane")
    assert await hits(bff) == before + 1
    await asyncio.sleep(0.6)
    await ask(bff, "asane")  # too old: computed again, and kept anew
    assert await hits(bff) == before + 1
    await ask(bff, "asane")
    assert await hits(bff) == before + 2


async def kept(bff: Bff) -> float:
    text = (await bff.http.get(f"{bff.url}/metrics")).text
    found = re.search(r"^bff_response_cache_entries ([0-9.]+)", text, re.MULTILINE)
    assert found
    return float(found.group(1))


async def test_an_answer_from_older_data_is_replaced_not_kept_beside_the_new_one(bff: Bff) -> None:
    await ask(bff, "asane")
    first = await ask(bff, "asane")
    count, reused = await kept(bff), await hits(bff)
    cancellable = [n["id"] for n in first["data"]["appointments"]["nodes"] if n["canCancel"]]
    assert len(cancellable) >= 2
    for appointment in cancellable:  # each change of asane's data makes the kept answer useless
        await cancel(bff, appointment)
        await ask(bff, "asane")
    assert await hits(bff) == reused  # every one of them computed afresh
    assert await kept(bff) == count


def audit_stream(bff: Bff, prefix: str, who: str) -> str:
    from bff.domain.ids import Ids
    from tests.conftest import PEOPLE

    return f"{prefix}:audit:{{{Ids(bff.settings.secret_for_ids).pseudonym(PEOPLE[who].pid)}}}"


async def test_a_reused_answer_is_confirmed_and_audited_in_one_round_trip(bff: Bff, redis: Any,
                                                                         redis_prefix: str) -> None:
    from tests.bff.processes import round_trips

    await ask(bff, "asane")
    await ask(bff, "asane")  # kept
    stream = audit_stream(bff, redis_prefix, "asane")
    before = await redis.xlen(stream)
    sent: list[list[str]] = []
    with round_trips(bff.app.state.services.redis, sent):
        reused = await ask(bff, "asane")
    assert reused["data"]["appointments"]["totalCount"] == 10
    touching = [args for args in sent if any(part in arg for arg in args for part in (":gen:", ":audit:", ":rate:"))]
    assert len(touching) == 1, "the rate limit, the generation check and the audit entry share one round trip"
    assert stream in touching[0] and any(":rate:" in arg for arg in touching[0])
    assert await redis.xlen(stream) == before + 1


async def test_a_computed_answer_is_counted_by_the_command_that_reads_its_generations(
        bff: Bff, make_bff: Any, sandbox: Sandbox) -> None:
    from tests.bff.processes import round_trips

    sent: list[list[str]] = []
    with round_trips(bff.app.state.services.redis, sent):
        cold = await ask(bff, "asane")  # nothing kept yet: computed, and kept under its generations
    assert cold["data"]["appointments"]["totalCount"] == 10
    counting = [" ".join(args) for args in sent if any(":rate:" in arg for arg in args)]
    assert len(counting) == 1, "counted once"
    assert ":gen:" in counting[0], "the rate limit and the generations to keep the answer under share one round trip"
    limited = await make_bff(rate_limit_per_minute=1)
    await sandbox.clear()
    await within_one_rate_window()
    admitted = await ask(limited, "gp_other")
    assert "errors" not in admitted and admitted["data"]["appointments"]["sources"], admitted
    refused = await limited.http.post(f"{limited.url}/graphql", json={"documentId": APPOINTMENTS},
                                      headers={"Authorization": f"Bearer {limited.token('gp_other')}"})
    assert refused.status_code == 429 and refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_a_reused_answer_counts_against_the_rate_limit_and_a_refused_one_is_not_audited(
        make_bff: Any, redis: Any, redis_prefix: str) -> None:
    limited = await make_bff(rate_limit_per_minute=4)
    await within_one_rate_window()
    bodies = [await ask(limited, "asane") for _ in range(4)]  # cold, computed and kept, reused twice
    assert all(b["data"]["appointments"]["totalCount"] == 10 for b in bodies)
    assert await hits(limited) == 2
    stream = audit_stream(limited, redis_prefix, "asane")
    audited = await redis.xlen(stream)
    refused = await limited.http.post(f"{limited.url}/graphql", json={"documentId": APPOINTMENTS},
                                      headers={"Authorization": f"Bearer {limited.token('asane')}"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) <= 60
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert await redis.xlen(stream) == audited, "a read the limit refused is not in the activity log"


async def test_a_kept_answer_whose_data_changed_is_computed_again_and_audited_once(
        bff: Bff, redis: Any, redis_prefix: str) -> None:
    from bff.domain.ids import Ids
    from tests.conftest import PEOPLE

    await ask(bff, "asane")
    await ask(bff, "asane")  # kept
    before, reused = await redis.xlen(audit_stream(bff, redis_prefix, "asane")), await hits(bff)
    pseudonym = Ids(bff.settings.secret_for_ids).pseudonym(PEOPLE["asane"].pid)
    await redis.set(bff.app.state.services.cache.generation_key(pseudonym), "renewed by another process")
    again = await ask(bff, "asane")
    assert again["data"]["appointments"]["totalCount"] == 10
    assert await hits(bff) == reused
    assert await redis.xlen(audit_stream(bff, redis_prefix, "asane")) == before + 1  # not twice


async def test_without_redis_a_kept_answer_is_not_reused_and_the_access_is_logged(
        make_bff: Any, capsys: Any) -> None:
    from tests.redis_process import RedisProcess

    own = RedisProcess().start()
    try:
        isolated = await make_bff(redis_url=own.url)
        await ask(isolated, "asane")
        kept_answer = await ask(isolated, "asane")
        reused = await hits(isolated)
        own.stop()
        capsys.readouterr()
        during = await ask(isolated, "asane")
        assert during["data"]["appointments"]["totalCount"] == kept_answer["data"]["appointments"]["totalCount"]
        assert await hits(isolated) == reused, "not reused while Redis cannot confirm it is current"
        assert "audit.fallback" in capsys.readouterr().out, "the access is recorded in the log instead"
    finally:
        own.stop()


async def test_once_redis_is_back_kept_answers_are_reused_again(make_bff: Any) -> None:
    # A reused answer's one command goes straight to the lane's connection; that connection
    # died with Redis, and the next reuse must connect again rather than fail for good.
    from tests.redis_process import RedisProcess

    own = RedisProcess().start()
    try:
        isolated = await make_bff(redis_url=own.url)
        await ask(isolated, "asane")
        await ask(isolated, "asane")
        assert (await ask(isolated, "asane"))["data"]["appointments"]["totalCount"] == 10
        reused = await hits(isolated)
        assert reused >= 1
        own.stop()
        own = RedisProcess(own.port).start()  # empty: every generation is gone
        for _ in range(2):  # computed under the new generations, kept, then reused
            assert (await ask(isolated, "asane"))["data"]["appointments"]["totalCount"] == 10
        assert (await ask(isolated, "asane"))["data"]["appointments"]["totalCount"] == 10
        assert await hits(isolated) > reused
    finally:
        own.stop()


ADHOC = "query Mine { appointments(first: 5) { totalCount nodes { id title status } } }"


async def test_an_ad_hoc_query_is_reused_too_however_it_is_spaced(bff: Bff, sandbox: Sandbox) -> None:
    await bff.query(ADHOC, who="asane")  # cold: fills the entries (a change), so not kept
    kept = await bff.query(ADHOC, who="asane")
    before = await hits(bff)
    await sandbox.clear()
    respaced = "query Mine {\n  appointments(first: 5) {\n    totalCount, nodes { id title status }\n  }\n}  # same\n"
    assert await bff.query(respaced, who="asane") == kept
    assert await hits(bff) == before + 1
    assert await sandbox.calls() == {}


async def test_a_person_named_by_a_literal_in_the_document_has_their_changes_seen(
        bff: Bff, redis: Any, redis_prefix: str) -> None:
    from bff.domain.ids import Ids
    from tests.conftest import PEOPLE

    reps = await bff.query("{ me { mayActFor { id name } } }", who="parent")
    emma = next(p["id"] for p in reps["me"]["mayActFor"] if p["name"] == "Emma Dahl")
    listed = await bff.query("query($on: ID) { appointments(onBehalfOf: $on) { nodes { id } } }", {"on": emma},
                             who="parent")
    appointment = listed["appointments"]["nodes"][0]["id"]
    document = f'{{ appointment(id: "{appointment}") {{ id title status }} }}'
    await bff.query(document, who="parent")
    await bff.query(document, who="parent")
    before = await hits(bff)
    await bff.query(document, who="parent")
    assert await hits(bff) == before + 1  # kept
    owner = Ids(bff.settings.secret_for_ids).pseudonym(PEOPLE["child_small"].pid)
    await redis.set(bff.app.state.services.cache.generation_key(owner), "changed by another process")
    await bff.query(document, who="parent")
    assert await hits(bff) == before + 1  # Emma's data changed: computed again, not reused


@pytest.mark.unit
def test_what_the_cache_knows_of_a_document() -> None:
    from bff.readpath.response_cache import MAX_DOCUMENT, NOT_KEPT, analyse

    one = analyse("{ appointments { totalCount } }")
    assert one is not NOT_KEPT and one == analyse("query {\n appointments { totalCount }, }")
    assert analyse('{ appointment(id: "A1") { id } }').literals == ("A1",)
    assert analyse("mutation { requestCancellation(input: {}) { request { id } } }") is NOT_KEPT
    assert analyse("query A { me { name } } mutation B { x }") is NOT_KEPT
    assert analyse("{ not graphql") is NOT_KEPT
    assert analyse("{ me { name } }" + " " * MAX_DOCUMENT) is NOT_KEPT


async def test_a_kept_answer_is_answered_like_any_other(bff: Bff) -> None:
    """A kept answer skips the GraphQL view, not the rules of the response: the media type
    the client asked for, the security headers, the request id."""
    headers = {"Authorization": f"Bearer {bff.token('asane')}", "Accept": "application/graphql-response+json"}
    body = {"query": ADHOC}
    answers = []
    for _ in range(3):
        answers.append(await bff.http.post(f"{bff.url}/graphql", json=body, headers=headers))
        await bff.settled()
    before = await hits(bff)
    reused = await bff.http.post(f"{bff.url}/graphql", json=body, headers=headers)
    assert await hits(bff) == before + 1
    computed = answers[1]
    assert reused.status_code == 200 and reused.json() == computed.json()
    assert reused.headers["content-type"] == computed.headers["content-type"] == (
        "application/graphql-response+json; charset=utf-8")
    for name in ("x-request-id", "x-content-type-options", "cache-control"):
        assert name in reused.headers, name
    assert reused.headers["cache-control"] == computed.headers["cache-control"]


@pytest.mark.skipif(not CLUSTER, reason="a redirect needs a Redis Cluster (README's test command's second pass)")
async def test_on_a_cluster_a_lane_to_the_wrong_node_is_redirected_and_the_answer_still_reused_once(
        bff: Bff, redis: Any, redis_prefix: str) -> None:
    from bff.store.lane import Lane

    await ask(bff, "asane")
    await ask(bff, "asane")  # kept
    cache = bff.app.state.services.cache
    stream = audit_stream(bff, redis_prefix, "asane")
    right = cache._redis.get_node_from_key(stream)
    wrong = next(n for n in cache._redis.get_primaries() if n.name != right.name)
    cache._forget_node_lanes()
    cache._node_lanes[right.name] = Lane.to_node(wrong, 0.5)  # as a slot map gone stale would
    before, reused = await redis.xlen(stream), await hits(bff)
    answer = await ask(bff, "asane")
    assert answer["data"]["appointments"]["totalCount"] == 10
    assert await hits(bff) == reused + 1, "reused: the MOVED answer sent it through redis-py's cluster client"
    assert await redis.xlen(stream) == before + 1, "audited once, not on both nodes or not at all"
    again = await ask(bff, "asane")
    assert again == answer and await hits(bff) == reused + 2
    assert cache._node_lanes[right.name] is not None  # a fresh lane, to the right node
