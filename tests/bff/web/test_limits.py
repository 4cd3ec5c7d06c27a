"""Query limits, request limits, production switches, security headers, CORS, audit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bff.domain.ids import Ids
from bff.domain.sources import default_sources_text
from bff.store.audit import AUDIT_RETENTION, AuditLog
from tests.conftest import PEOPLE, Bff, Sandbox, redis_client_for_tests, redis_url_for_tests, within_one_rate_window
from tests.resolvers.queries import LIST, rows


async def refused_before_resolvers(bff: Bff, sandbox: Sandbox, query: str) -> str:
    await sandbox.clear()
    response = await bff.post(query)
    body = response.json()
    assert body.get("data") is None, body
    assert await sandbox.calls() == {}, "a resolver ran"
    return str(body["errors"][0]["message"])


async def test_too_deep_is_refused(bff: Bff, sandbox: Sandbox) -> None:
    nested = "id"
    for _ in range(6):
        nested = f"cancellation {{ appointment {{ {nested} }} }}"
    deep = f"{{ appointments {{ nodes {{ {nested} }} }} }}"
    assert "exceeds maximum operation depth" in await refused_before_resolvers(bff, sandbox, deep)


async def test_too_many_aliases_are_refused(bff: Bff, sandbox: Sandbox) -> None:
    aliased = "{ " + " ".join(f"a{i}: sources {{ id }}" for i in range(40)) + " }"
    assert "aliases" in (await refused_before_resolvers(bff, sandbox, aliased)).lower()


async def test_too_many_tokens_are_refused(bff: Bff, sandbox: Sandbox) -> None:
    long = "{ sources { " + " ".join(["id"] * 2100) + " } }"
    assert "token" in (await refused_before_resolvers(bff, sandbox, long)).lower()


FIELDS = "id title status start end kind organization department practitioner location { name address } " \
         "source { id name kind } patient { name }"
COSTLY = "{ " + " ".join(f"a{i}: appointments(first: 100) {{ nodes {{ {FIELDS} }} edges {{ cursor }} }}"
                         for i in range(5)) + " }"


async def test_too_expensive_is_refused_with_a_clear_message(bff: Bff, sandbox: Sandbox) -> None:
    message = await refused_before_resolvers(bff, sandbox, COSTLY)
    assert "too expensive" in message and "first" in message


async def test_a_refused_document_lets_go_of_the_viewers_record_at_once(bff: Bff, sandbox: Sandbox) -> None:
    # The viewer's record is read, and its fetch leased, as soon as the rate limit admits a
    # request; validation then refuses the document: the directory is not asked, and the
    # lease goes with the answer — the viewer's next list is not kept waiting behind it.
    services = bff.app.state.services
    lease = services.cache.person_key(PEOPLE["asane"].pid) + ":lease"
    await refused_before_resolvers(bff, sandbox, COSTLY)
    await bff.settled()
    redis = redis_client_for_tests()
    try:
        assert not await redis.exists(lease), "the refused request left its lease on the record"
    finally:
        await redis.aclose()
    data = await bff.query(LIST)
    assert {s["source"]["id"]: s["state"] for s in data["appointments"]["sources"]}["fastlege-pilot"] == "OK"
    assert (await sandbox.calls())["persons"] == 1


async def test_a_normal_client_query_is_well_within_the_cost_limit(bff: Bff) -> None:
    assert len(rows(await bff.query(LIST, {"first": 100}))) == 10


async def test_oversized_bodies_and_batches_are_refused(bff: Bff, sandbox: Sandbox) -> None:
    headers = {"Authorization": f"Bearer {bff.token('asane')}", "content-type": "application/json"}
    huge = json.dumps({"query": "{ sources { id } }", "variables": {"x": "y" * 70_000}})
    response = await bff.http.post(f"{bff.url}/graphql", content=huge, headers=headers)
    assert response.status_code == 413
    await sandbox.clear()
    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: cut off as it arrives
        yield b'{"query": "{ sources { id } }", "variables": {"x": "'
        for _ in range(10):
            yield b"y" * 8_000
        yield b'"}}'

    cut = await bff.http.post(f"{bff.url}/graphql", content=streamed(), headers=headers)
    assert cut.status_code == 413 and cut.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert cut.headers["x-content-type-options"] == "nosniff" and "x-request-id" in cut.headers
    batch = json.dumps([{"query": LIST}, {"query": LIST}])
    response = await bff.http.post(f"{bff.url}/graphql", content=batch, headers=headers)
    assert 400 <= response.status_code < 500
    assert await sandbox.calls() == {}


async def test_the_per_person_rate_limit_is_shared_and_answers_429(make_bff: Any) -> None:
    limited = await make_bff(rate_limit_per_minute=3)
    await within_one_rate_window()
    statuses = [(await limited.post("{ sources { id } }", who="nobody")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = await limited.post("{ sources { id } }", who="nobody")
    assert int(response.headers["retry-after"]) <= 60
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert (await limited.post("{ sources { id } }", who="gp_other")).status_code == 200


async def test_a_list_over_the_rate_limit_asks_no_one_and_holds_up_no_later_request(
        make_bff: Any, sandbox: Sandbox) -> None:
    # A cold viewer's record is read (and its fetch leased) beside the rate count; refused,
    # the request asks no provider, not even the directory, and lets go of the lease.
    limited = await make_bff(rate_limit_per_minute=1)
    services = limited.app.state.services
    record = services.cache.person_key(PEOPLE["tromso"].pid)
    redis = redis_client_for_tests()
    try:
        await redis.delete(record)
        await within_one_rate_window()
        assert (await limited.post("{ sources { id } }", who="tromso")).status_code == 200
        await sandbox.clear()
        assert (await limited.post(LIST, who="tromso")).status_code == 429
        await limited.settled()
        assert await sandbox.calls() == {}
        assert not await redis.exists(record + ":lease"), "the refused request left its lease on the record"
    finally:
        await redis.aclose()


async def production_bff(make_bff: Any, tmp_path: Path, **overrides: Any) -> Bff:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "p1", "alg": "RS256"}]}))
    (tmp_path / "sources.toml").write_text(default_sources_text())
    bff: Bff = await make_bff(profile="production", sources=tmp_path / "sources.toml", id_secret="prod-secret",
                              oidc_issuer="https://idp.prod", oidc_jwks_file=tmp_path / "jwks.json",
                              **{"redis_url": redis_url_for_tests(), **overrides})
    token = jwt.encode({"pid": PEOPLE["asane"].pid, "acr": "idporten-loa-high", "iss": "https://idp.prod",
                        "aud": "timeavtaler-bff", "iat": 0, "exp": 4_000_000_000}, key, algorithm="RS256",
                       headers={"kid": "p1", "typ": "at+jwt"})
    bff.token = lambda who, acr="": token  # type: ignore[method-assign]
    return bff


@pytest.fixture
async def production(make_bff: Any, tmp_path: Path) -> Bff:
    return await production_bff(make_bff, tmp_path)


async def test_production_turns_off_introspection_suggestions_and_graphiql(make_bff: Any, tmp_path: Path) -> None:
    # Raw queries are refused in production anyway (trusted documents only); switch that off
    # to see the schema-level protections underneath.
    production = await production_bff(make_bff, tmp_path, trusted_documents_only=False)
    introspection = (await production.post("{ __schema { types { name } } }")).json()
    assert introspection.get("data") is None
    assert "introspection" in introspection["errors"][0]["message"].lower()
    typo = (await production.post("{ appointmnts { totalCount } }")).json()
    assert "Did you mean" not in typo["errors"][0]["message"]
    page = await production.http.get(f"{production.url}/graphql", headers={"Accept": "text/html"})
    assert "graphiql" not in page.text.lower()
    assert (await production.post("{ sources { id } }")).json()["data"]["sources"]


async def test_the_sandbox_keeps_suggestions_and_introspection(bff: Bff) -> None:
    typo = (await bff.post("{ appointmnts { totalCount } }")).json()
    assert "Did you mean" in typo["errors"][0]["message"]
    assert (await bff.query("{ __schema { queryType { name } } }"))["__schema"]["queryType"]["name"] == "Query"


async def test_security_headers_on_every_response(bff: Bff) -> None:
    responses = [
        await bff.http.get(f"{bff.url}/healthz"),
        await bff.post("{ sources { id } }"),
        await bff.post("{ sources { id } }"),  # a reused answer, sent without the GraphQL view
        await bff.http.post(f"{bff.url}/graphql", json={"query": "{ sources { id } }"}),
        await bff.http.post(f"{bff.url}/webhooks/bergen-kommune", content=b"{}"),
    ]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "x-request-id" in response.headers
        assert "Origin" in response.headers["vary"]  # what a cache must key on: CORS depends on it


async def test_request_ids_never_look_like_a_national_identity_number(bff: Bff) -> None:
    from bff.web.logs import PID_PATTERN, new_request_id

    # About one random uuid in fifty holds a run of exactly eleven digits.
    assert not [rid for rid in (new_request_id() for _ in range(3000)) if PID_PATTERN.search(rid)]
    kept = await bff.http.get(f"{bff.url}/healthz", headers={"X-Request-ID": "client-id-12345"})
    assert kept.headers["x-request-id"] == "client-id-12345"
    pid_like = await bff.http.get(f"{bff.url}/healthz", headers={"X-Request-ID": "req-01017012345"})
    assert not PID_PATTERN.search(pid_like.headers["x-request-id"])


async def test_cors_allows_only_listed_origins(make_bff: Any) -> None:
    portal = await make_bff(cors_origins=["https://portal.example"])
    ok = await portal.http.options(f"{portal.url}/graphql", headers={
        "Origin": "https://portal.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert ok.headers["access-control-allow-origin"] == "https://portal.example"
    evil = await portal.http.options(f"{portal.url}/graphql", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in evil.headers
    headers = {"Authorization": f"Bearer {portal.token('asane')}", "Origin": "https://portal.example"}
    for _ in range(2):  # computed, then reused: both carry what the browser needs to read them
        answer = await portal.http.post(f"{portal.url}/graphql", json={"query": "{ sources { id } }"},
                                        headers=headers)
        assert answer.status_code == 200 and answer.json()["data"]["sources"]
        assert answer.headers["access-control-allow-origin"] == "https://portal.example"
        assert answer.headers["x-content-type-options"] == "nosniff" and "x-request-id" in answer.headers


async def test_reads_and_cancellations_are_audited_with_pseudonyms(bff: Bff) -> None:
    listed = rows(await bff.query(LIST, who="asane"))
    await bff.query("query($id: ID!) { appointment(id: $id) { id } }", {"id": listed[0]["id"]}, who="asane")
    reps = await bff.query("{ me { mayActFor { id name } } }", who="parent")
    emma = next(p["id"] for p in reps["me"]["mayActFor"] if p["name"] == "Emma Dahl")
    await bff.query(LIST, {"on": emma}, who="parent")
    ids = Ids(bff.settings.secret_for_ids)
    redis = redis_client_for_tests()
    streams = AuditLog(redis, bff.settings.redis_prefix, ids)
    try:
        own = await redis.xrange(streams.stream_key(PEOPLE['asane'].pid))
        child = await redis.xrange(streams.stream_key(PEOPLE['child_small'].pid))
        kept = await redis.ttl(streams.stream_key(PEOPLE['asane'].pid))
    finally:
        await redis.aclose()
    assert AUDIT_RETENTION - 60 < kept <= AUDIT_RETENTION  # kept more than a year, then gone
    actions = [fields[b"action"] for _, fields in own]
    assert actions[:2] == [b"list", b"read"]
    entry = child[-1][1]
    assert entry[b"action"] == b"list" and entry[b"actor"] == ids.pseudonym(PEOPLE["parent"].pid).encode()
    assert b"helse-vest" in entry[b"what"]
    flat = json.dumps([{k.decode(): v.decode() for k, v in f.items()} for _, f in own + child])
    assert PEOPLE["asane"].pid not in flat and PEOPLE["parent"].pid not in flat
