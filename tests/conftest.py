"""Shared fixtures: a real Redis, the sandbox providers and the BFF, each on real sockets.

Redis is the one at REDIS_URL (default redis://127.0.0.1:6379/0); with
`BFF_TEST_REDIS=cluster`, a six-node Redis Cluster the suite starts (`tests.redis_cluster`)
and the BFF in cluster mode. Every test run uses its own key prefix and removes its keys
afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import cast as typed

import httpx
import pytest
from redis.asyncio import Redis, RedisCluster

from bff.app import create_app
from bff.domain.sources import load_sources
from bff.domain.timez import today
from bff.sandbox.app import SandboxState, create_sandbox
from bff.sandbox.cast import CastMember, cast
from bff.sandbox.helseid import SANDBOX_CLIENT_ID
from bff.settings import DEV_ISSUER, Settings
from bff.web.auth import load_dev_client_key, load_dev_key, mint_dev_token
from bff.web.serving import RunningServer, start_server
from tests.redis_process import RedisProcess, answers

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=1.0)
"""The test clients let an idle connection go after 1 s: the servers (uvicorn) close one
after 5 s, httpx's default keeps it 5 s too, and a request sent on a connection the server
is closing that instant fails with ReadError (seen once in a teardown on CI)."""
CLUSTER = os.environ.get("BFF_TEST_REDIS", "single") == "cluster"
"""This run's Redis is a Redis Cluster (README's test command's second pass)."""


@functools.cache
def redis_url_for_tests() -> str:
    """A cluster the suite starts (`CLUSTER`); else REDIS_URL if set; else the Redis on
    6379; else a redis-server the suite starts — found when a test first needs Redis
    (`pytest -m unit` needs none)."""
    import atexit

    if CLUSTER:
        from tests.redis_cluster import RedisCluster6

        cluster = RedisCluster6().start()
        atexit.register(cluster.stop)
        return cluster.url
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if answers("127.0.0.1", 6379):
        return DEFAULT_REDIS_URL
    own = RedisProcess().start()
    atexit.register(own.stop)
    return own.url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test not marked `unit` is an integration test."""
    for item in items:
        if item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.integration)


@dataclass
class Sandbox:
    url: str
    state: SandboxState
    http: httpx.AsyncClient

    async def fault(self, target: str, **fault: Any) -> None:
        (await self.http.put(f"{self.url}/_admin/faults/{target}", json=fault)).raise_for_status()

    async def clear(self) -> None:
        (await self.http.delete(f"{self.url}/_admin/faults")).raise_for_status()
        (await self.http.delete(f"{self.url}/_admin/calls")).raise_for_status()

    async def reset(self) -> None:
        """Fresh sandbox data, no recorded requests or notifications, no faults."""
        (await self.http.post(f"{self.url}/_admin/reset")).raise_for_status()
        await self.clear()

    async def municipal(self, tenant: str, **policy: Any) -> None:
        (await self.http.put(f"{self.url}/_admin/municipal/{tenant}", json=policy)).raise_for_status()

    async def notifications(self) -> list[dict[str, Any]]:
        return list((await self.http.get(f"{self.url}/_admin/notifications")).json()["notifications"])

    async def cancellation_requests(self) -> list[dict[str, Any]]:
        return list((await self.http.get(f"{self.url}/_admin/cancellation-requests")).json()["requests"])

    async def calls(self) -> dict[str, int]:
        """Calls per provider (the token server's are in `helseid`)."""
        body = (await self.http.get(f"{self.url}/_admin/calls")).json()
        return {target: n for target, n in body["calls"].items() if target != "helseid"}

    async def helseid(self, **knobs: Any) -> dict[str, Any]:
        """Turn the token server's knobs (token_ttl, require_nonce, replay_next, revoke), if
        any are given; its report: tokens issued per `client scope`, refusals per error."""
        if knobs:
            (await self.http.put(f"{self.url}/_admin/helseid", json=knobs)).raise_for_status()
        report: dict[str, Any] = (await self.http.get(f"{self.url}/_admin/helseid")).json()
        return report

    async def most_at_once(self) -> dict[str, int]:
        """Per target, the most requests it had in progress at the same time."""
        return dict((await self.http.get(f"{self.url}/_admin/calls")).json()["mostAtOnce"])

    async def patients_per_search(self) -> list[tuple[str, int]]:
        body = (await self.http.get(f"{self.url}/_admin/calls")).json()
        return [tuple(x) for x in body["patientsPerSearch"]]


@dataclass
class Bff:
    url: str
    settings: Settings
    http: httpx.AsyncClient
    key_file: Path
    server: RunningServer | None = None
    app: Any = None

    async def settled(self) -> None:
        """Wait until the cache writes the BFF does after answering are in Redis."""
        if self.app is not None:
            await self.app.state.services.cache.settled()

    async def forget_cached(self) -> None:
        """Delete every Redis key of this BFF (its prefix): nothing cached, kept or leased."""
        redis = redis_client_for_tests()
        try:
            await delete_matching(redis, f"{self.settings.redis_prefix}:*")
        finally:
            await redis.aclose()

    def token(self, who: str | CastMember, acr: str = "idporten-loa-high") -> str:
        pid = who.pid if isinstance(who, CastMember) else PEOPLE[who].pid
        return mint_dev_token(load_dev_key(self.key_file), pid, issuer=DEV_ISSUER,
                              audience=self.settings.oidc_audience, acr=acr)

    async def post(self, query: str, variables: dict[str, Any] | None = None, *, who: str = "asane",
                   headers: dict[str, str] | None = None) -> httpx.Response:
        sent = {"Authorization": f"Bearer {self.token(who)}", **(headers or {})}
        response = await self.http.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                                        headers=sent)
        # The BFF writes its cache entries after answering; tests look at Redis and count
        # provider calls as if they were written with the answer.
        await self.settled()
        return response

    async def query(self, query: str, variables: dict[str, Any] | None = None, *, who: str = "asane") -> Any:
        """Run a document that must succeed; returns `data`."""
        response = await self.post(query, variables, who=who)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


PEOPLE = cast(today())
CLIENT_KEY = load_dev_client_key(Path(tempfile.mkdtemp(prefix="bfftest-")) / "helseid-client.jwk")
"""This run's HelseID client key: in HELSEID_KEY for every BFF the suite starts (in this
process or another), registered with every sandbox's token server (`SANDBOX_CLIENTS`)."""
os.environ["HELSEID_KEY"] = json.dumps(CLIENT_KEY)
SANDBOX_CLIENTS = {SANDBOX_CLIENT_ID: CLIENT_KEY}
BERGEN_SECRET = next(s for s in load_sources(None, {"SANDBOX_URL": "http://sandbox"}).sources
                     if s.id == "bergen-kommune").webhook_secret
FAST_WORKER = {"cancel_poll_interval": 0.2, "cancel_poll_after": 1.0, "rate_limit_per_minute": 100_000}
"""The test BFF's worker looks for pending requests every 0.2 s, polls after 1 s; the
per-person rate limit is out of the way (its own test sets a low one)."""


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"bfftest-{uuid.uuid4().hex[:8]}"


async def within_one_rate_window(seconds: float = 3.0) -> None:
    """Return at once unless the rate limit's minute window turns in the next `seconds`;
    then after it has: a test counting requests against a per-minute limit sees them all
    in one window."""
    from bff.store.ratelimit import WINDOW

    left = WINDOW - time.time() % WINDOW
    if left < seconds:
        await asyncio.sleep(left + 0.05)


async def delete_matching(redis: Redis, pattern: str) -> None:
    """Delete every key matching `pattern` (a SCAN pattern)."""
    keys = [k async for k in redis.scan_iter(match=pattern, count=1000)]
    if keys:
        await redis.delete(*keys)


def redis_client_for_tests() -> Redis:
    """A client of this run's Redis (a cluster client when `CLUSTER`)."""
    if CLUSTER:
        return typed(Redis, RedisCluster.from_url(redis_url_for_tests()))
    return Redis.from_url(redis_url_for_tests())


@pytest.fixture(scope="session")
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = redis_client_for_tests()
    await client.ping()
    yield client
    # Also the prefixes made from it (`<prefix>-logs`, `<prefix>-otel`: BFF processes a test
    # starts beside the main one), whose audit streams would otherwise stay for a year.
    await delete_matching(client, f"{redis_prefix}*")
    await client.aclose()


@pytest.fixture(scope="session")
async def sandbox() -> AsyncIterator[Sandbox]:
    built = create_sandbox(clients=SANDBOX_CLIENTS)
    running = await start_server(built.app)
    async with httpx.AsyncClient(limits=CLIENT_LIMITS) as http:
        yield Sandbox(running.url, built.state, http)
    await running.stop()


def bff_settings(tmp: Path, prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"redis_url": redis_url_for_tests(), "redis_cluster": CLUSTER, "redis_prefix": prefix,
                              "dev_key_file": tmp / "dev-key.pem"}
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="session")
async def bff_server(sandbox: Sandbox, redis: Redis, redis_prefix: str,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[RunningServer, Settings, Any]]:
    settings = bff_settings(tmp_path_factory.mktemp("bff"), redis_prefix, **FAST_WORKER)
    app = create_app(settings, {"SANDBOX_URL": sandbox.url})
    running = await start_server(app)
    await sandbox.municipal("bergen", webhook_url=f"{running.url}/webhooks/bergen-kommune",
                            webhook_secret=BERGEN_SECRET)
    yield running, settings, app
    await running.stop()


@pytest.fixture
async def bff(bff_server: tuple[RunningServer, Settings, Any], sandbox: Sandbox, redis: Redis,
              redis_prefix: str) -> AsyncIterator[Bff]:
    """The running BFF, with a clean cache, closed breakers, no faults and zeroed call counters."""
    running, settings, app = bff_server
    await app.state.services.gateway.settled()  # no refresh of the previous test calls a provider in this one
    await app.state.services.cache.settled()  # nothing of the previous test lands in Redis later
    await delete_matching(redis, f"{redis_prefix}:*")
    await sandbox.reset()
    await sandbox.municipal("bergen", delay_ms=300, rule="notice", notice_hours=48, drop_webhooks=False)
    app.state.services.breakers.reset()
    async with httpx.AsyncClient(timeout=30, limits=CLIENT_LIMITS) as http:
        yield Bff(running.url, settings, http, settings.dev_key_file, app=app)
    await sandbox.clear()


@pytest.fixture
async def make_bff(sandbox: Sandbox, redis_prefix: str, tmp_path: Path, bff: Bff) -> AsyncIterator[Any]:
    """Start another BFF instance on the same sandbox (and, unless told otherwise, the same
    Redis and prefix as the main one), with other settings."""
    started: list[RunningServer] = []

    async def start(**overrides: Any) -> Bff:
        if "redis_url" in overrides:  # a Redis of the test's own: a single one unless it says so
            overrides.setdefault("redis_cluster", False)
        settings = bff_settings(tmp_path, redis_prefix, **{**FAST_WORKER, **overrides}).model_copy(
            update={"dev_key_file": bff.key_file})
        app = create_app(settings, {"SANDBOX_URL": sandbox.url})
        running = await start_server(app)
        started.append(running)
        return Bff(running.url, settings, bff.http, bff.key_file, running, app)

    yield start
    for running in started:
        if not running.task.done():
            await running.stop()


@pytest.fixture
def people() -> dict[str, CastMember]:
    return PEOPLE


FIXTURES = Path(__file__).parent / "fixtures" / "fhir-helsenorge"
"""Norsk Helsenett's published Helsenorge appointment examples (copied from shared/)."""
