"""The read path: batching, cache, single-flight, deadline, breakers, Redis outage —
measured as upstream calls on the sandbox's side of real HTTP."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
from redis.asyncio import Redis

from bff.sandbox.cast import CastMember
from tests.bff.processes import round_trips
from tests.conftest import PEOPLE, Bff, Sandbox, redis_client_for_tests
from tests.redis_process import RedisProcess
from tests.resolvers.queries import LIST, ONE, consulted, rows

ONE_PER_SOURCE = {"helse-vest": 1, "helse-nord": 1, "helse-midt": 1, "fastlege": 1, "oslo": 1}

BUSY_QUERY = """
query Busy($id: ID!, $on: ID!) {
  a: appointments { totalCount }
  b: appointments(filter: {statuses: [BOOKED]}) { nodes { id } }
  c: appointments(filter: {sourceKinds: [HOSPITAL, GP]}, first: 2) { nodes { title } }
  d: appointments(onBehalfOf: $on) { totalCount }
  appointment(id: $id) { title }
  node(id: $id) { id }
  again: appointment(id: $id) { title }
}
"""


async def test_aliases_duplicates_node_lookups_and_representation_cost_one_call_per_source(
        bff: Bff, sandbox: Sandbox) -> None:
    reps = await bff.query("{ me { mayActFor { id name } } }", who="parent")
    emma = next(p["id"] for p in reps["me"]["mayActFor"] if p["name"] == "Emma Dahl")
    own = rows(await bff.query(LIST, {"filter": {"sourceKinds": ["GP"]}}, who="parent"))
    await bff.http.delete(f"{sandbox.url}/_admin/calls")
    await bff.forget_cached()
    data = await bff.query(BUSY_QUERY, {"id": own[0]["id"], "on": emma}, who="parent")
    assert data["appointment"]["title"] == data["again"]["title"] == own[0]["title"]
    calls = await sandbox.calls()
    assert calls.pop("persons") == 2  # Nora and Emma, once each
    # The municipal API names one citizen per URL: one call per person there.
    assert calls == {**ONE_PER_SOURCE, "oslo": 2}
    # Nora and Emma were asked of each FHIR server in one search.
    assert {(t, n) for t, n in await sandbox.patients_per_search()} == {
        ("helse-vest", 2), ("helse-nord", 2), ("helse-midt", 2), ("fastlege", 2)}


async def test_a_warm_cache_calls_no_provider(bff: Bff, sandbox: Sandbox) -> None:
    first = rows(await bff.query(LIST, who="frogner"))
    await bff.query(ONE, {"id": first[0]["id"]}, who="frogner")
    await sandbox.clear()
    await bff.query(LIST, who="frogner")
    await bff.query(LIST, {"filter": {"sourceKinds": ["MUNICIPALITY"]}, "first": 1}, who="frogner")
    again = await bff.query(ONE, {"id": first[0]["id"]}, who="frogner")
    assert again["appointment"]["title"] == first[0]["title"]
    assert await sandbox.calls() == {}


async def test_a_hundred_concurrent_cold_requests_over_two_instances_cause_one_call_per_source(
        bff: Bff, sandbox: Sandbox, make_bff: Any) -> None:
    await sandbox.fault("helse-vest", latency_ms=100)
    other = await make_bff()
    instances = [bff, other]
    answers = await asyncio.gather(*(instances[i % 2].query(LIST, who="asane") for i in range(100)))
    assert len({tuple(r["id"] for r in rows(a)) for a in answers}) == 1
    calls = await sandbox.calls()
    pages = (len([r for r in rows(answers[0]) if r["source"]["id"] == "helse-vest"]) + 2) // 3
    assert calls == {"persons": 1, "helse-vest": pages, "helse-nord": 1, "helse-midt": 1, "fastlege": 1,
                     "bergen": 1}


async def test_concurrent_cold_requests_for_one_person_never_fail(bff: Bff, redis: Redis,
                                                                   redis_prefix: str) -> None:
    """40 near-simultaneous lists for a person not yet cached, 30 rounds: every answer is
    whole. (An entry written behind while another request read the cache once failed a
    list as INTERNAL.)"""
    headers = {"Authorization": f"Bearer {bff.token('asane')}"}

    async def one() -> dict[str, Any]:
        response = await bff.http.post(f"{bff.url}/graphql", json={"query": LIST}, headers=headers)
        return dict(response.json())

    failed = []
    for _ in range(30):
        answers = await asyncio.gather(*(one() for _ in range(40)))
        failed += [a for a in answers if a.get("errors") or not a.get("data")]
        await bff.settled()
        keys = [k async for k in redis.scan_iter(match=f"{redis_prefix}:appts:*", count=1000)]
        keys += [k async for k in redis.scan_iter(match=f"{redis_prefix}:person:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    assert failed == []


async def test_a_source_slower_than_the_deadline_is_unavailable_and_the_answer_comes_in_time(
        bff: Bff, sandbox: Sandbox, make_bff: Any) -> None:
    quick = await make_bff(request_deadline=1.0)
    await quick.query(LIST, who="asane")  # warm the directory record
    await _flush_source(bff, "helse-nord")
    await sandbox.fault("helse-nord", latency_ms=2000)
    started = time.monotonic()
    data = await quick.query(LIST, who="asane")
    elapsed = time.monotonic() - started
    assert consulted(data)["helse-nord"] == "UNAVAILABLE"
    assert consulted(data)["helse-vest"] == "OK"
    assert len(rows(data)) == 10
    assert elapsed < 1.0 + 0.3


async def _flush_source(bff: Bff, source_id: str) -> None:
    redis = redis_client_for_tests()
    keys = [k async for k in redis.scan_iter(match=f"{bff.settings.redis_prefix}:appts:{source_id}:*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_a_cold_own_list_reads_the_viewers_record_before_its_entries_which_share_one_round_trip(
        bff: Bff) -> None:
    # The viewer's record decides the GP and municipal sources: it is read by a command of
    # its own, sent beside the rate count when the request arrives (a cold viewer's
    # directory call then waits for nothing else), and the sources' entries are read ahead
    # together.
    services = bff.app.state.services
    person_key = services.cache.person_key(PEOPLE["asane"].pid)
    sent: list[list[str]] = []
    with round_trips(services.redis, sent):
        await bff.query(LIST, {"first": 49}, who="asane")  # an answer not kept from an earlier test
    record = next(at for at, args in enumerate(sent) if person_key in args)
    read_ahead = next(at for at, args in enumerate(sent) if any(":appts:" in arg for arg in args))
    assert record < read_ahead, "the record is asked for before the entries"
    assert not any(":appts:" in arg for arg in sent[record]), "the record's read waits for nothing else"
    entries = {arg.split(":")[2] for arg in sent[read_ahead] if ":appts:" in arg and not arg.endswith(":lease")}
    assert entries == {s.id for s in services.catalogue.sources}, "every source's entry in the same round trip"


async def test_hospitals_are_asked_while_the_directory_is_for_a_list_that_is_all_the_request_asks(
        bff: Bff, sandbox: Sandbox) -> None:
    # Hospitals are consulted for everyone: an own list asks them without waiting for the
    # directory, which only decides the GP and municipal sources.
    await sandbox.fault("persons", latency_ms=700)
    await sandbox.fault("helse-nord", latency_ms=700)
    started = time.monotonic()
    data = await bff.query(LIST, who="asane")
    elapsed = time.monotonic() - started
    assert set(consulted(data).values()) == {"OK"}
    assert {"helse-nord", "bergen-kommune", "fastlege-pilot"} <= consulted(data).keys()
    assert elapsed < 1.2, f"{elapsed:.2f} s: Helse Nord was asked after the directory's 0.7 s, not beside it"
    calls = await sandbox.calls()
    assert {k: calls[k] for k in ("persons", "helse-nord", "helse-midt", "fastlege", "bergen")} == {
        "persons": 1, "helse-nord": 1, "helse-midt": 1, "fastlege": 1, "bergen": 1}


async def test_a_list_beside_other_fields_asks_hospitals_after_the_directory_for_all_persons_at_once(
        bff: Bff, sandbox: Sandbox) -> None:
    # With more in the request (here a second list) the hospitals wait for every person the
    # request names, so each is asked once for all of them.
    reps = await bff.query("{ me { mayActFor { id name } } }", who="parent")
    emma = next(p["id"] for p in reps["me"]["mayActFor"] if p["name"] == "Emma Dahl")
    await bff.forget_cached()
    await sandbox.clear()
    await sandbox.fault("persons", latency_ms=400)
    data = await bff.query("query($on: ID) { mine: appointments { totalCount } hers: appointments(onBehalfOf: $on) "
                           "{ totalCount } }", {"on": emma}, who="parent")
    assert data["mine"]["totalCount"] and data["hers"]["totalCount"]
    assert ("helse-vest", 2) in await sandbox.patients_per_search()
    assert (await sandbox.calls())["helse-vest"] == 1


async def test_a_cancellable_sources_requests_are_read_while_a_slower_source_is_still_asked(
        bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.fault("helse-vest", latency_ms=800)  # Bergen (cancellable) answers long before
    redis = bff.app.state.services.redis
    real = redis.execute_command
    started = time.monotonic()
    slot_reads: list[float] = []

    async def command(*args: Any, **options: Any) -> Any:
        if args and args[0] == "MGET" and any(":slot:" in str(arg) for arg in args[1:]):
            slot_reads.append(time.monotonic() - started)
        return await real(*args, **options)

    redis.execute_command = command
    try:
        data = await bff.query(LIST, who="asane")
    finally:
        del redis.execute_command
    assert consulted(data)["helse-vest"] == "OK" and consulted(data)["bergen-kommune"] == "OK"
    assert slot_reads, "the rows' cancellation requests were read"
    assert slot_reads[0] < 0.6, "read while Helse Vest was still being asked, not after it answered"


async def test_a_passing_failure_is_retried_and_the_source_answers(bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.fault("helse-midt", status=503, times=1)
    data = await bff.query(LIST, {"filter": {"sourceIds": ["helse-midt"]}}, who="trondheim")
    assert consulted(data) == {"helse-midt": "OK"}
    assert rows(data), "the second attempt's rows are shown"
    assert (await sandbox.calls())["helse-midt"] == 2


async def test_a_lasting_failure_is_tried_three_times_then_reported(bff: Bff, sandbox: Sandbox) -> None:
    await sandbox.fault("helse-midt", status=503)
    data = await bff.query(LIST, {"filter": {"sourceIds": ["helse-midt"]}}, who="trondheim")
    assert consulted(data) == {"helse-midt": "UNAVAILABLE"}
    assert (await sandbox.calls())["helse-midt"] == 3


async def test_the_breaker_opens_after_failures_and_recovers(bff: Bff, sandbox: Sandbox, make_bff: Any) -> None:
    fragile = await make_bff(breaker_threshold=2, breaker_cooldown=1.0)
    await sandbox.fault("helse-midt", status=503)
    query = {"filter": {"sourceIds": ["helse-midt"]}}
    for _ in range(2):
        assert consulted(await fragile.query(LIST, query, who="trondheim")) == {"helse-midt": "UNAVAILABLE"}
    calls_when_opened = (await sandbox.calls())["helse-midt"]
    started = time.monotonic()
    data = await fragile.query(LIST, query, who="trondheim")
    assert time.monotonic() - started < 0.5
    assert consulted(data) == {"helse-midt": "UNAVAILABLE"}
    assert "nylig" in data["appointments"]["sources"][0]["message"]
    assert (await sandbox.calls())["helse-midt"] == calls_when_opened
    metrics = (await fragile.http.get(f"{fragile.url}/metrics")).text
    assert 'bff_breaker_state{source="helse-midt"} 2.0' in metrics
    await sandbox.clear()
    await asyncio.sleep(1.1)
    data = await fragile.query(LIST, query, who="trondheim")
    assert consulted(data) == {"helse-midt": "OK"}
    assert [r["title"] for r in rows(data)] == ["Kontroll etter kneoperasjon"]
    metrics = (await fragile.http.get(f"{fragile.url}/metrics")).text
    assert 'bff_breaker_state{source="helse-midt"} 0.0' in metrics


async def test_the_list_works_through_a_redis_outage_and_caches_again_after(
        bff: Bff, sandbox: Sandbox, make_bff: Any) -> None:
    own = RedisProcess().start()
    try:
        isolated = await make_bff(redis_url=own.url)
        assert len(rows(await isolated.query(LIST, who="frogner"))) == 3
        own.stop()
        await sandbox.clear()
        during = await isolated.query(LIST, who="frogner")
        assert len(rows(during)) == 3
        assert set(consulted(during).values()) == {"OK"}
        assert (await sandbox.calls())["oslo"] == 1
        own.start()
        await asyncio.sleep(1.1)  # the cache's outage back-off
        await isolated.query(LIST, who="frogner")
        await sandbox.clear()
        after = await isolated.query(LIST, who="frogner")
        assert len(rows(after)) == 3
        assert await sandbox.calls() == {}
    finally:
        own.stop()


async def test_no_national_identity_number_in_logs_metrics_or_redis_keys(
        bff: Bff, sandbox: Sandbox, redis: Redis, redis_prefix: str, capfd: Any,
        people: dict[str, CastMember]) -> None:
    await sandbox.fault("oslo", status=503)
    await sandbox.fault("helse-nord", malformed=True)
    for who in ("asane", "frogner", "parent", "unknown", "tromso"):
        await bff.post(LIST, who=who)
    await bff.post(LIST, {"after": "bad"}, who="asane")
    metrics = (await bff.http.get(f"{bff.url}/metrics")).text
    assert "bff_upstream_requests_total" in metrics
    assert "_created" not in metrics  # start timestamps are not exported (bff/metrics.py)
    captured = capfd.readouterr()
    pid = re.compile(r"(?<!\d)\d{11}(?!\d)")
    keys = [k.decode() async for k in redis.scan_iter(match=f"{redis_prefix}:*", count=1000)]
    assert keys
    for name, text in (("stdout", captured.out), ("stderr", captured.err), ("metrics", metrics),
                       ("redis keys", "\n".join(keys))):
        found = pid.search(text)
        # On failure, show where, with digits masked: the report itself must not leak one.
        context = re.sub(r"\d", "#", text[max(0, found.start() - 80):found.end() + 80]) if found else ""
        assert found is None, f"an 11-digit number in {name}: …{context}…"
    # Cached answers and directory records name their owner by the key alone: a viewer's
    # pid is in none of them (a parent's record does hold the children's: it is how their
    # appointments are fetched).
    cached = [k for k in keys if ":person:" in k or ":appts:" in k]
    assert any(":person:" in k for k in cached) and any(":appts:" in k for k in cached)
    values = b"\n".join([v for v in [await redis.get(k) for k in cached] if v])
    leaked = [who for who in ("asane", "frogner", "parent", "unknown", "tromso") if people[who].pid.encode() in values]
    assert not leaked, "their pids are in cached values"  # handles only: the report must not show a pid


async def test_many_stale_entries_are_revalidated_a_few_at_a_time_and_served_meanwhile(
        sandbox: Sandbox, make_bff: Any, redis: Redis, redis_prefix: str, monkeypatch: Any) -> None:
    from bff.readpath import gateway as gateway

    monkeypatch.setattr(gateway, "BACKGROUND_REFRESHES", 1)
    bff = await make_bff()  # its gateway takes the bound at start
    who = ["asane", "child_small", "child_teen", "elder"]
    before = {h: await bff.query(LIST, who=h) for h in who}
    # Everyone's entries go stale together, still within the revalidation window.
    stale = [k async for k in redis.scan_iter(match=f"{redis_prefix}:appts:helse-vest:*", count=1000)]
    assert len(stale) == len(who)
    for key in stale:
        entry = orjson.loads(await redis.get(key))
        entry["at"] -= 61
        await redis.set(key, orjson.dumps(entry), keepttl=True)
    await sandbox.clear()
    await sandbox.fault("helse-vest", latency_ms=150)

    answers = await asyncio.gather(*(bff.query(LIST, who=h) for h in who))

    assert [rows(a) for a in answers] == [rows(b) for b in before.values()]  # the stale rows, at once
    assert all(set(consulted(a).values()) == {"OK"} for a in answers)
    for _ in range(100):
        if (await sandbox.calls()).get("helse-vest") == len(who):
            break
        await asyncio.sleep(0.05)
    assert (await sandbox.calls()).get("helse-vest") == len(who)  # each revalidated once
    assert (await sandbox.most_at_once())["helse-vest"] == 1  # one at a time


async def test_a_finished_request_leaves_none_of_its_answer_in_memory(bff: Bff) -> None:
    """graphql-core's executor sits in a reference cycle with the request's context; the
    context lets go of its loaders (rows, provider answers) once the answer is made, so
    they are freed at once instead of waiting for the garbage collector."""
    import gc

    from resolvers.context import Context

    await bff.query(LIST, who="asane")
    gc.collect()
    gc.disable()
    try:
        for n in range(3):  # three different pages: each is executed, none a kept answer
            await bff.query(LIST, {"first": 20 + n}, who="asane")
        contexts = [o for o in gc.get_objects() if isinstance(o, Context)]
        held = sum(1 for c in contexts if c.appointments._cache or c.persons._cache)
    finally:
        gc.enable()
    assert len(contexts) >= 3, "the requests' contexts await collection (the cycle is still there)"
    assert held == 0


async def test_entries_read_ahead_for_sources_that_do_not_apply_are_let_go(
        bff: Bff, sandbox: Sandbox, redis: Redis, redis_prefix: str) -> None:
    # An own list reads (and leases) every source's entry while the directory says which
    # apply. Kari lives in Bergen: Oslo's leases must not outlive her answer, or Oslo
    # residents' lists elsewhere would wait on them.
    data = await bff.query(LIST, who="asane")
    assert "oslo-kommune" not in consulted(data)
    assert not [k async for k in redis.scan_iter(match=f"{redis_prefix}:*:lease", count=1000)]
    assert [k async for k in redis.scan_iter(match=f"{redis_prefix}:appts:helse-vest:*", count=1000)]
    assert not [k async for k in redis.scan_iter(match=f"{redis_prefix}:appts:oslo-kommune:*", count=1000)]
    # With the directory down only the hospitals are asked; the others' leases go too.
    await sandbox.fault("persons", status=503)
    data = await bff.query(LIST, who="frogner")
    assert consulted(data)["oslo-kommune"] == "UNAVAILABLE"
    assert not [k async for k in redis.scan_iter(match=f"{redis_prefix}:*:lease", count=1000)]


async def test_a_viewer_lookup_never_admitted_lets_go_of_its_lease_and_asks_no_one(
        bff: Bff, sandbox: Sandbox) -> None:
    # `People.start` reads (and leases) the viewer's record at once and asks the directory
    # only once the request is admitted; a request refused (by the rate limit, or by
    # validation) must not leave the lease to hold up the viewer's next request.
    from bff.readpath.people import Admission

    services = bff.app.state.services
    record = services.cache.person_key(PEOPLE["tromso"].pid)
    lease = record + ":lease"
    redis = redis_client_for_tests()
    try:
        await redis.delete(record)  # not cached by an earlier test: the lookup must lease it
        await sandbox.clear()
        admission = Admission()
        lookup = services.people.start(PEOPLE["tromso"].pid, asyncio.get_running_loop().time() + 5, admission)
        for _ in range(200):
            if await redis.exists(lease):
                break
            await asyncio.sleep(0.01)
        assert await redis.exists(lease), "the record was not leased"
        admission.refuse()
        assert not (await lookup).ok
        await bff.settled()
        assert not await redis.exists(lease), "the refused lookup left its lease"
        assert "persons" not in await sandbox.calls()
    finally:
        await redis.aclose()
