"""Outbound identity against the sandbox's HelseID-like token server: every provider
wants a DPoP-bound token and a fresh proof; tokens are shared across processes, renewed
before they expire and after a refusal; nonces, replays, a token server that is down and
a key it does not know each cost at most the one source."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from bff.domain.sources import SourcesFileError, UpstreamAuth, default_sources_text, parse_sources
from bff.domain.wire import CLIENT_ASSERTION_TYPE, token_hash
from bff.sandbox.helseid import API_SCOPES, SANDBOX_CLIENT_ID
from bff.web.auth import load_dev_client_key
from connectors.base import SourceUnavailable
from connectors.helseid import DPoPAuth, HelseIdClient, Token
from connectors.http import ProviderClient
from tests.clients.asgi_process import bff_asgi
from tests.conftest import CLIENT_KEY, CLUSTER, Bff, Sandbox, redis_url_for_tests
from tests.redis_process import free_port
from tests.resolvers.queries import LIST, consulted

ALL_OK = {"helse-vest": "OK", "helse-nord": "OK", "helse-midt": "OK", "fastlege-pilot": "OK",
          "oslo-kommune": "OK", "bergen-kommune": "OK"}
"""States of the sources a list consults (only those that apply to the person appear)."""


class MemoryStore:
    """A `TokenStore` of one process, for the connector-level tests (no sharing)."""

    def __init__(self) -> None:
        self.tokens: dict[str, Token] = {}

    async def read(self, name: str) -> Token | None:
        return self.tokens.get(name)

    async def write(self, name: str, token: Token) -> None:
        self.tokens[name] = token

    async def claim(self, name: str, seconds: float) -> bool:
        return True

    async def release(self, name: str) -> None:
        return None


def helseid_auth(sandbox: Sandbox, scope: str, key: dict[str, Any] | None = None) -> UpstreamAuth:
    token_url = f"{sandbox.url}/helseid/connect/token"
    return UpstreamAuth(kind="helseid", token_url=token_url, issuer=token_url.removesuffix("/connect/token"),
                        client_id=SANDBOX_CLIENT_ID, scope=(scope,), key=json.dumps(key or CLIENT_KEY),
                        algorithm="ES256")


def json_inline(table: dict[str, Any]) -> str:
    """A TOML inline table of strings and lists (JSON's string escapes are TOML's)."""
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + " }"


def sources_with(auth_of: dict[str, dict[str, Any]]) -> str:
    """The default sources file with some upstreams' `auth` replaced."""
    text = default_sources_text()
    for source_id, table in auth_of.items():
        pattern = rf'(id = "{source_id}"\n(?:(?!\[\[sources\]\]).*\n)*?)auth = .*\n'
        text, found = re.subn(pattern, lambda m, t=table: f"{m.group(1)}auth = {json_inline(t)}\n", text)  # type: ignore[misc]
        assert found == 1, source_id
    return text


async def auth_events(bff: Bff) -> dict[tuple[str, str], float]:
    """`bff_upstream_auth_total` by (upstream, event), from the BFF's /metrics."""
    text = (await bff.http.get(f"{bff.url}/metrics")).text
    found = re.findall(r'^bff_upstream_auth_total\{event="([^"]+)",source="([^"]+)"\} (\S+)$', text, re.M)
    return {(source, event): float(n) for event, source, n in found}


async def test_every_provider_answers_only_a_dpop_bound_token_with_a_fresh_proof(bff: Bff, sandbox: Sandbox) -> None:
    states = consulted(await bff.query(LIST, who="asane"))
    assert states and set(states.values()) == {"OK"}, states
    report = await sandbox.helseid()
    assert report["refused"] == {}, report
    async with httpx.AsyncClient() as http:
        bare = await http.get(f"{sandbox.url}/fhir/helse-vest/Appointment", params={"patient:identifier": "x|1"})
        assert bare.status_code == 401
        assert bare.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
        bearer = await http.get(f"{sandbox.url}/persons/x", headers={"Authorization": "Bearer abc"})
        assert bearer.status_code == 401


async def test_a_replayed_proof_is_refused_and_the_bff_recovers_with_a_fresh_one(bff: Bff, sandbox: Sandbox,
                                                                                 provider: ProviderClient) -> None:
    client = HelseIdClient(helseid_auth(sandbox, API_SCOPES["persons"]), provider, MemoryStore(),
                           lambda *_: None)
    token = await client.token("test")
    url = f"{sandbox.url}/persons/00000000000"
    headers = {"Authorization": f"DPoP {token}", "DPoP": client.proof("GET", url, token)}
    first = await bff.http.get(url, headers=headers)
    replayed = await bff.http.get(url, headers=headers)
    assert first.status_code == 404  # past the gate: the directory does not know this person
    assert replayed.status_code == 401 and 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
    stolen = await bff.http.get(f"{sandbox.url}/persons/11111111111", headers=headers)
    assert stolen.status_code == 401, "a proof is for one URL only"

    for who in ("frogner", "tromso"):  # each list's first proof a provider sees counts as used before
        await sandbox.helseid(replay_next=1)
        states = consulted(await bff.query(LIST, who=who))
        assert set(states.values()) == {"OK"}, states
    events = await auth_events(bff)
    assert sum(n for (_, event), n in events.items() if event == "proof_retry") >= 2


async def test_one_token_per_client_and_scope_across_two_processes(make_bff: Any, sandbox: Sandbox,
                                                                   bff: Bff) -> None:
    here = await make_bff()
    env = {"REDIS_URL": redis_url_for_tests(), "BFF_REDIS_CLUSTER": str(CLUSTER).lower(),
           "BFF_SANDBOX_URL": sandbox.url, "BFF_DEV_KEY_FILE": str(bff.key_file),
           "BFF_REDIS_PREFIX": bff.settings.redis_prefix}
    async with bff_asgi(env) as there:
        other = Bff(there.url, bff.settings, bff.http, bff.key_file)
        people = ["asane", "frogner", "tromso", "trondheim", "gp_pilot", "parent"]
        answers = await asyncio.gather(*(instance.query(LIST, who=who) for who in people
                                         for instance in (here, other)))
    assert "eyJ" not in there.output, "a token, assertion or proof in the other process's log"
    assert all(set(consulted(a).values()) == {"OK"} for a in answers)
    issued = (await sandbox.helseid())["issued"]
    used = {f"{SANDBOX_CLIENT_ID} {API_SCOPES[api]}" for api in ("fhir", "kommune", "persons")}
    assert issued == dict.fromkeys(used, 1), issued


async def test_a_token_is_renewed_before_it_expires_and_after_a_refusal(make_bff: Any, sandbox: Sandbox) -> None:
    await sandbox.helseid(token_ttl=2)
    fresh = await make_bff()
    assert set(consulted(await fresh.query(LIST, who="asane")).values()) == {"OK"}
    first = sum((await sandbox.helseid())["issued"].values())
    await asyncio.sleep(2.2)
    assert set(consulted(await fresh.query(LIST, who="frogner")).values()) == {"OK"}
    report = await sandbox.helseid()
    assert sum(report["issued"].values()) > first, "expired tokens were renewed"
    assert report["refused"] == {}, "renewed before expiry, not after a 401"

    await sandbox.helseid(token_ttl=300, revoke=True)  # every token issued so far is refused now
    before = sum(report["issued"].values())
    assert set(consulted(await fresh.query(LIST, who="tromso")).values()) == {"OK"}
    report = await sandbox.helseid()
    assert report["refused"].get("invalid_token", 0) >= 1
    assert sum(report["issued"].values()) - before <= 2, "one renewal per scope the list used, not one per call"
    assert sum(n for (_, e), n in (await auth_events(fresh)).items() if e == "token_retry") >= 1


async def test_a_nonce_challenge_is_answered_once_and_the_nonce_kept(make_bff: Any, sandbox: Sandbox) -> None:
    await sandbox.helseid(require_nonce=True)
    fresh = await make_bff()
    assert set(consulted(await fresh.query(LIST, who="asane")).values()) == {"OK"}
    challenged = (await sandbox.helseid())["refused"].get("use_dpop_nonce", 0)
    assert challenged >= 1
    assert set(consulted(await fresh.query(LIST, who="frogner")).values()) == {"OK"}
    assert (await sandbox.helseid())["refused"].get("use_dpop_nonce", 0) == challenged, "the nonce was kept"


async def test_a_token_server_that_is_down_costs_only_its_source(make_bff: Any, sandbox: Sandbox,
                                                                   tmp_path: Path) -> None:
    down = {"kind": "helseid", "token_url": f"http://127.0.0.1:{free_port()}/connect/token",
            "client_id": SANDBOX_CLIENT_ID, "scope": [API_SCOPES["fhir"]], "key": "${HELSEID_KEY}"}
    (tmp_path / "sources.toml").write_text(sources_with({"helse-vest": down}))
    fresh = await make_bff(sources=tmp_path / "sources.toml")
    states = consulted(await fresh.query(LIST, who="asane"))
    assert states.pop("helse-vest") == "UNAVAILABLE"
    assert set(states.values()) == {"OK"}, states
    await sandbox.fault("helseid", status=503)
    states = consulted(await fresh.query(LIST, who="frogner"))  # tokens in hand: the others still answer
    assert states.pop("helse-vest") == "UNAVAILABLE"
    assert set(states.values()) == {"OK"}, states
    assert (await auth_events(fresh)).get(("helse-vest", "token_failed"), 0) >= 1


async def test_a_key_the_token_server_does_not_know_is_a_clear_source_error(make_bff: Any, sandbox: Sandbox,
                                                                            tmp_path: Path) -> None:
    stranger = load_dev_client_key(tmp_path / "other.jwk")
    wrong = {"kind": "helseid", "token_url": "${SANDBOX_URL}/helseid/connect/token", "client_id": SANDBOX_CLIENT_ID,
             "scope": [API_SCOPES["fhir"]], "key": json.dumps(stranger)}
    (tmp_path / "sources.toml").write_text(sources_with({"fastlege-pilot": wrong}))
    fresh = await make_bff(sources=tmp_path / "sources.toml")
    response = await fresh.post(LIST, who="gp_pilot")
    states = consulted(response.json()["data"])
    assert states.pop("fastlege-pilot") == "UNAVAILABLE"
    assert set(states.values()) == {"OK"}, states
    assert (await auth_events(fresh)).get(("fastlege-pilot", "token_refused")) == 1
    assert (await sandbox.helseid())["refused"].get("invalid_client") == 1
    metrics = (await fresh.http.get(f"{fresh.url}/metrics")).text
    for secret in (stranger["d"], CLIENT_KEY["d"]):
        assert secret not in response.text and secret not in metrics


async def test_the_token_endpoint_error_names_what_failed_and_no_secret(sandbox: Sandbox, bff: Bff,
                                                                        provider: ProviderClient) -> None:
    stranger = load_dev_client_key(Path(tempfile.mkdtemp()) / "k.jwk")
    client = HelseIdClient(helseid_auth(sandbox, API_SCOPES["fhir"], key=stranger), provider, MemoryStore(),
                           lambda *_: None)
    auth = DPoPAuth("helse-vest", client, lambda *_: None)
    with pytest.raises(SourceUnavailable) as refused:
        async with ProviderClient(auth=auth) as signed:
            await signed.get(f"{sandbox.url}/fhir/helse-vest/Appointment")
    assert str(refused.value) == ("helse-vest: HelseID: token endpoint refused the client "
                                  "(HTTP 401, error=invalid_client)")


@pytest.fixture
async def provider() -> AsyncIterator[ProviderClient]:
    """The kind of client the BFF's HelseID clients ask the token server with."""
    async with ProviderClient() as client:
        yield client


@pytest.mark.unit
@pytest.mark.parametrize(("table", "message"), [
    ({"kind": "oauth"}, "auth.kind must be one of ['helseid', 'none']"),
    ({"kind": "helseid", "client_id": "c", "scope": ["s"], "key": "k"}, "needs token_url"),
    ({"kind": "helseid", "token_url": "https://t", "client_id": "c", "scope": ["s"]}, "needs key or key_file"),
    ({"kind": "helseid", "token_url": "https://t", "client_id": "c", "scope": ["s"], "key": "not json"},
     "auth.key is not a JSON Web Key (JSON)"),
    ({"kind": "helseid", "token_url": "https://t", "client_id": "c", "scope": ["s"], "key": "PUBLIC"},
     "auth.key is a public key; HelseID needs the client's private key"),
    ({"kind": "helseid", "token_url": "https://t", "client_id": "c", "scope": ["s"], "key": "RS_ON_EC"},
     "auth.key: alg RS256 does not fit a EC key (use ES256)"),
    ({"kind": "helseid", "token_url": "https://t", "client_id": "c", "scope": ["s"], "key": "BROKEN"},
     "auth.key is not a usable EC private key"),
    ({"kind": "helseid", "token_url": "https://t", "client_id": "c", "scope": ["s"], "key_file": "/nowhere.jwk"},
     "auth.key_file cannot be read: No such file or directory"),
])
def test_a_wrong_auth_table_stops_the_start_naming_the_field_and_never_the_key(table: dict[str, Any],
                                                                                message: str) -> None:
    keys = {"PUBLIC": {k: v for k, v in CLIENT_KEY.items() if k != "d"}, "RS_ON_EC": {**CLIENT_KEY, "alg": "RS256"},
            "BROKEN": {**CLIENT_KEY, "d": CLIENT_KEY["x"]}}
    if table.get("key") in keys:
        table = {**table, "key": json.dumps(keys[table["key"]])}
    text = sources_with({"helse-vest": table})
    with pytest.raises(SourcesFileError) as wrong:
        parse_sources(text, {"SANDBOX_URL": "http://sandbox", "HELSEID_KEY": json.dumps(CLIENT_KEY)})
    assert str(wrong.value).startswith("source 'helse-vest': ")
    assert message in str(wrong.value)
    assert CLIENT_KEY["d"] not in str(wrong.value) and CLIENT_KEY["x"] not in str(wrong.value)


@pytest.mark.unit
def test_the_default_sources_send_a_helseid_token_to_every_upstream() -> None:
    catalogue = parse_sources(default_sources_text(), {"SANDBOX_URL": "http://sandbox",
                                                       "HELSEID_KEY": json.dumps(CLIENT_KEY)})
    upstreams = catalogue.upstreams()
    assert set(upstreams) == {"helse-vest", "helse-nord", "helse-midt", "fastlege-pilot", "oslo-kommune",
                              "bergen-kommune", "directory", "notifier"}
    assert all(a is not None and a.kind == "helseid" and a.dpop for a in upstreams.values())
    assert CLIENT_KEY["d"] not in repr(catalogue), "the key is never printed"


async def test_the_production_profile_refuses_an_upstream_without_auth(make_bff: Any, tmp_path: Path) -> None:
    text = sources_with({"oslo-kommune": {"kind": "none"}})
    text = re.sub(r'\nauth = .*"sandbox:fhir/appointments".*\n', "\n", text, count=1)  # helse-vest says nothing
    (tmp_path / "sources.toml").write_text(text)
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": []}))
    with pytest.raises(SourcesFileError) as refused:
        await make_bff(profile="production", sources=tmp_path / "sources.toml", id_secret="s",
                       oidc_issuer="https://idp", oidc_jwks_file=tmp_path / "jwks.json",
                       redis_url=redis_url_for_tests())
    assert str(refused.value).endswith("missing for helse-vest")


async def test_the_sandbox_providers_check_every_part_of_the_proof(bff: Bff, sandbox: Sandbox, tmp_path: Path,
                                                                   provider: ProviderClient) -> None:
    """What the issue asks the sandbox to verify, each broken alone: the answer is 401 with
    the error a real resource server gives, so the BFF's recovery is tested against it."""
    client = HelseIdClient(helseid_auth(sandbox, API_SCOPES["persons"]), provider, MemoryStore(), lambda *_: None)
    stranger = HelseIdClient(helseid_auth(sandbox, API_SCOPES["persons"], key=load_dev_client_key(tmp_path / "k")),
                             provider, MemoryStore(), lambda *_: None)
    token = await client.token("test")
    url = f"{sandbox.url}/persons/00000000000"

    def proof(**claims: Any) -> str:
        signer = claims.pop("signer", client)
        now = int(time.time())
        body = {"htm": "GET", "htu": str(url), "iat": now, "jti": uuid.uuid4().hex, "ath": token_hash(token), **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, signer._signing_key, algorithm="ES256",
                          headers={"typ": "dpop+jwt", "jwk": signer._header_jwk})

    cases = {
        "good": (proof(), 404),
        "another method": (proof(htm="POST"), 401),
        "another URL": (proof(htu=f"{sandbox.url}/persons/11111111111"), 401),
        "made two minutes ago": (proof(iat=int(time.time()) - 120), 401),
        "for another token": (proof(ath=token_hash("another")), 401),
        "without ath": (proof(ath=None), 401),
        "signed by another key": (proof(signer=stranger), 401),
    }
    answers = {}
    for name, (dpop, _) in cases.items():
        answer = await bff.http.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": dpop})
        answers[name] = answer.status_code
        if answer.status_code == 401:
            assert 'error="invalid_dpop_proof"' in answer.headers["www-authenticate"], name
    assert answers == {name: status for name, (_, status) in cases.items()}
    bearer = await bff.http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 401 and 'error="invalid_token"' in bearer.headers["www-authenticate"]


async def test_the_token_server_refuses_a_reused_or_long_lived_client_assertion(bff: Bff, sandbox: Sandbox,
                                                                                provider: ProviderClient) -> None:
    client = HelseIdClient(helseid_auth(sandbox, API_SCOPES["fhir"]), provider, MemoryStore(), lambda *_: None)
    token_url = f"{sandbox.url}/helseid/connect/token"

    async def ask(assertion: str) -> httpx.Response:
        form = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": assertion, "scope": API_SCOPES["fhir"]}
        return await bff.http.post(token_url, data=form, headers={"DPoP": client.proof("POST", token_url)})

    assertion = client._assertion()
    first, again = await ask(assertion), await ask(assertion)
    assert first.status_code == 200 and first.json()["token_type"] == "DPoP"
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"
    now = int(time.time())
    too_long = jwt.encode({"iss": SANDBOX_CLIENT_ID, "sub": SANDBOX_CLIENT_ID, "aud": sandbox.url + "/helseid",
                           "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}, client._signing_key,
                          algorithm="ES256")
    assert (await ask(too_long)).json()["error"] == "invalid_client"
    bound = jwt.decode(first.json()["access_token"], options={"verify_signature": False})
    assert bound["cnf"]["jkt"] == client.jkt and bound["client_id"] == SANDBOX_CLIENT_ID


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
async def test_an_rsa_client_key_signs_with_the_algorithm_it_names(bff: Bff, sandbox: Sandbox, alg: str,
                                                                   provider: ProviderClient) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key)), "alg": alg}
    client_id = f"rsa-client-{alg.lower()}"
    sandbox.state.helseid.register(client_id, jwk)
    token_url = f"{sandbox.url}/helseid/connect/token"
    table = {"kind": "helseid", "token_url": token_url, "client_id": client_id, "scope": [API_SCOPES["persons"]],
             "key": json.dumps(jwk)}
    text = default_sources_text().replace("[directory]\n", f"[directory]\nauth = {json_inline(table)}\n", 1)
    text = re.sub(r'(\[directory\]\nauth = .*\n(?:.*\n)*?)auth = .*\n', r"\1", text, count=1)  # one auth table
    auth = parse_sources(text, {"SANDBOX_URL": sandbox.url, "HELSEID_KEY": json.dumps(CLIENT_KEY)}).directory.auth
    assert auth is not None and auth.algorithm == alg
    client = HelseIdClient(auth, provider, MemoryStore(), lambda *_: None)
    async with ProviderClient(auth=DPoPAuth("directory", client, lambda *_: None)) as signed:
        answer = await signed.get(f"{sandbox.url}/persons/00000000000")
    assert answer.status_code == 404  # past the gate
    token = await client.token("directory")
    assert jwt.get_unverified_header(client._assertion())["alg"] == alg
    assert jwt.get_unverified_header(client.proof("GET", token_url, token))["alg"] == alg
    assert (await sandbox.helseid())["issued"] == {f"{client_id} {API_SCOPES['persons']}": 1}
