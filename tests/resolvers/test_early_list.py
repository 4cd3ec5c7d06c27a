"""The viewer's own list started at admission (`resolvers.appointments.early`): the same
answer and the same provider calls as through the resolver, and nobody asked for a
request the view then refuses."""

from __future__ import annotations

import json

from graphql import parse

from bff.web.trusted import default_manifest_path
from resolvers.appointments.early import own_list
from tests.conftest import Bff, Sandbox, redis_client_for_tests

OWN = """
query Own($first: Int, $after: String) {
  appointments(first: $first, after: $after) {
    totalCount
    nodes { id title status start source { id } canCancel }
    sources { source { id } state }
  }
}
"""
OWN_AND_SOURCES = OWN.replace("query Own(", "query OwnAndSources(").rstrip()[:-1] + "  sources { id }\n}\n"
"""The same list beside another root field: its list starts in the resolver, as before."""


def started_early(bff: Bff) -> float:
    value = bff.app.state.services.metrics.registry.get_sample_value("bff_lists_started_early_total")
    return value or 0.0


async def leases_left(bff: Bff) -> list[bytes]:
    redis = redis_client_for_tests()
    try:
        return [k async for k in redis.scan_iter(match=f"{bff.settings.redis_prefix}:*:lease", count=1000)]
    finally:
        await redis.aclose()


async def cold(bff: Bff, sandbox: Sandbox, document: str, who: str, **variables: object) -> tuple[dict, dict]:
    """The answer to `document` for a viewer nothing is cached for, and the calls it made."""
    await bff.forget_cached()
    await sandbox.clear()
    data = await bff.query(document, dict(variables), who=who)
    await bff.settled()
    return data, await sandbox.calls()


async def test_a_known_own_list_starts_at_admission_with_the_resolvers_answer_and_calls(
        bff: Bff, sandbox: Sandbox) -> None:
    await bff.query(OWN, who="frogner")  # the document passes validation once, through the view
    through_resolver, resolver_calls = await cold(bff, sandbox, OWN_AND_SOURCES, "asane", first=3)
    before = started_early(bff)
    early, early_calls = await cold(bff, sandbox, OWN, "asane", first=3)
    assert started_early(bff) == before + 1
    assert early["appointments"] == through_resolver["appointments"]
    assert early["appointments"]["totalCount"] > len(early["appointments"]["nodes"]) == 3
    assert {s["state"] for s in early["appointments"]["sources"]} == {"OK"}
    # The early start and the resolver share the list: the same calls as the resolver makes
    # alone (each source once; Helse Vest's answer has two pages), the directory once.
    assert early_calls == resolver_calls
    assert early_calls.pop("persons") == 1
    assert early_calls == {"helse-vest": 2, "helse-nord": 1, "helse-midt": 1, "fastlege": 1, "bergen": 1}
    assert not await leases_left(bff)
    # Back with another page size (no kept answer for it): the viewer's record is cached, so
    # the request goes on without waiting for its entries, which are cached too.
    await sandbox.clear()
    again = await bff.query(OWN, {"first": 2}, who="asane")
    assert started_early(bff) == before + 2
    assert again["appointments"]["nodes"] == early["appointments"]["nodes"][:2]
    assert await sandbox.calls() == {}


async def test_the_web_clients_document_starts_early_unless_it_names_a_filter_or_person(
        bff: Bff, sandbox: Sandbox) -> None:
    # Its variables are all optional; set, `filter` and `onBehalfOf` make another list.
    manifest = json.loads(default_manifest_path().read_text("utf-8"))
    document = next(text for text in manifest.values() if "query Appointments(" in text)
    await bff.query(document, who="frogner")
    reps = await bff.query("{ me { mayActFor { id name } } }", who="parent")
    emma = next(p["id"] for p in reps["me"]["mayActFor"] if p["name"] == "Emma Dahl")
    for variables, early in [({"first": 5}, True), ({"filter": {"includePast": True}}, False),
                             ({"filter": None, "onBehalfOf": None}, True), ({"onBehalfOf": emma}, False)]:
        before = started_early(bff)
        data, _ = await cold(bff, sandbox, document, "parent", **variables)
        assert {s["state"] for s in data["appointments"]["sources"]} == {"OK"}
        assert started_early(bff) == before + early, variables
    assert not await leases_left(bff)


async def test_a_request_the_view_refuses_starts_no_list_early(bff: Bff, sandbox: Sandbox) -> None:
    await bff.query(OWN, who="asane")
    before = started_early(bff)
    refused = [
        ({"first": 1000}, "BAD_USER_INPUT"),  # the resolver's own bounds
        ({"after": "not-a-cursor"}, "BAD_USER_INPUT"),
        ({"first": "ten"}, None),  # the variables do not coerce: nothing is executed
    ]
    for variables, code in refused:
        await bff.forget_cached()
        await sandbox.clear()
        body = (await bff.post(OWN, variables, who="frogner")).json()
        await bff.settled()
        assert body["errors"], variables
        if code:
            assert body["errors"][0]["extensions"]["code"] == code
        calls = await sandbox.calls()
        # The view admits a request it executes, so the viewer's record may be looked up;
        # no provider is asked for a list that was never going to be made.
        assert set(calls) <= {"persons"}, (variables, calls)
        assert not await leases_left(bff), variables
    assert started_early(bff) == before


async def test_a_document_that_never_passed_validation_is_never_started_early(bff: Bff, sandbox: Sandbox) -> None:
    invalid = OWN.replace("canCancel", "canCancel bogus")
    before = started_early(bff)
    for _ in range(2):
        await bff.forget_cached()
        await sandbox.clear()
        body = (await bff.post(invalid, who="frogner")).json()
        assert body["errors"] and "data" not in body
        await bff.settled()
        assert await sandbox.calls() == {}
    assert started_early(bff) == before


def test_only_the_viewers_own_list_alone_is_started_early() -> None:
    found = own_list(parse(OWN))
    assert found is not None and found.name == "Own" and len(found.variables) == 2
    assert found.field.selection_set is None, "a remembered document keeps only what the early start reads"
    assert own_list(parse("{ appointments { totalCount } }")) is not None
    assert own_list(parse("query L($n: Int) { mine: appointments(first: $n, after: null) { totalCount } }"))
    # Their values decide (`test_the_web_clients_document_starts_early_unless_it_names_a_filter_or_person`).
    assert own_list(parse("query L($f: AppointmentFilter, $on: ID) { appointments(filter: $f, onBehalfOf: $on) "
                          "{ totalCount } }"))
    not_early = [
        "{ appointments { totalCount } sources { id } }",  # not alone: batched with the others
        "{ appointments @include(if: true) { totalCount } }",
        "query L @deprecated { appointments { totalCount } }",
        "{ ...F } fragment F on Query { appointments { totalCount } }",
        "query A { appointments { totalCount } } query B { appointments { totalCount } }",
        "{ me { name } }",
        "subscription { cancellationUpdates { id } }",
    ]
    for text in not_early:
        assert own_list(parse(text)) is None, text
