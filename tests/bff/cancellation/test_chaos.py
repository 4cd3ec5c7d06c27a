"""Nothing lost, nothing twice: two BFF processes on one Redis (AOF on), cancellations with
each idempotency key sent to both, one process killed with SIGKILL mid-burst while the
municipality's webhooks are dropped, then Redis itself killed and restarted mid-burst.

Afterwards every key names exactly one request, every request reached the municipality
once and was decided once, with exactly one event and one notification per decision, and
nothing is left PENDING, IN_PROGRESS or REQUEST_PENDING."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from bff.cancellation.store import CancellationStore
from bff.domain.ids import Ids
from bff.domain.timez import today
from bff.sandbox.app import create_sandbox
from bff.sandbox.cast import CastMember, add_crowd
from bff.settings import DEV_ISSUER, SANDBOX_ID_SECRET
from bff.store.slots import mget
from bff.web.auth import load_dev_key, mint_dev_token
from bff.web.serving import start_server
from tests.conftest import BERGEN_SECRET, SANDBOX_CLIENTS
from tests.redis_process import RedisProcess, answers, free_port
from tests.resolvers.test_cancellation import CANCEL

PEOPLE_IN_CROWD = 24
VISITS_EACH = 5
ROUND = 60
"""Cancellations per round; two rounds."""
SETTLE_WITHIN = 60.0
RETRYABLE = {"TEMPORARILY_UNAVAILABLE", "IN_PROGRESS"}
IDS = Ids(SANDBOX_ID_SECRET.encode())
LOGS = Path(os.environ.get("BFF_TEST_PROCESS_LOGS") or tempfile.mkdtemp(prefix="bff-test-processes-"))
"""The BFF processes' log lines (JSON, no pids), one file per process."""


def logged(correlation_id: str) -> str:
    """The processes' log lines that name `correlation_id` (an INTERNAL answer's reference)."""
    return "\n".join(line for log in LOGS.glob("*.log") for line in log.read_text(errors="replace").splitlines()
                     if correlation_id and correlation_id in line)


@dataclass
class BffProcess:
    """One `uvicorn --factory bff.asgi:app` process on a fixed port."""

    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bff.asgi:app", "--http", "bff.asgi:HttpProtocol",
             "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env=self.env, stdout=self._log(), stderr=subprocess.STDOUT)

    def _log(self) -> Any:
        """Where the process's log lines go: a file in `LOGS` (BFF_TEST_PROCESS_LOGS, or a
        folder of the test run's), read back when a test must say what went wrong."""
        LOGS.mkdir(parents=True, exist_ok=True)
        with open(LOGS / f"bff-{self.port}.log", "ab") as log:
            return os.dup(log.fileno())

    async def ready(self) -> None:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError("the BFF process did not become ready")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


@dataclass
class World:
    redis: Any
    """The test's own Redis: a RedisProcess, or a RedisCluster6."""
    client: Redis
    store: CancellationStore
    sandbox: Any
    sandbox_url: str
    processes: list[BffProcess]
    tokens: dict[str, str]
    crowd: list[CastMember]


@contextlib.contextmanager
def _processes(env: dict[str, str]) -> Iterator[list[BffProcess]]:
    processes = [BffProcess(free_port(), env) for _ in range(2)]
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


@contextlib.asynccontextmanager
async def running_world(tmp_path: Path, redis: Any, client: Redis, env: dict[str, str]) -> AsyncIterator[World]:
    """Two `uvicorn --factory bff.asgi:app` processes on `redis` (reached through `client`;
    `env`: the Redis settings), the sandbox with a crowd of Bergen citizens."""
    sandbox = create_sandbox(clients=SANDBOX_CLIENTS)
    crowd = add_crowd(sandbox.state.world, today(), PEOPLE_IN_CROWD, VISITS_EACH)
    running = await start_server(sandbox.app)
    key_file = tmp_path / "dev-key.pem"
    key = load_dev_key(key_file)
    prefix = "chaos"
    env = {**os.environ, **env, "BFF_SANDBOX_URL": running.url, "BFF_REDIS_PREFIX": prefix,
           "BFF_DEV_KEY_FILE": str(key_file), "BFF_CANCEL_POLL_INTERVAL": "0.2", "BFF_CANCEL_POLL_AFTER": "1.0",
           "BFF_RATE_LIMIT_PER_MINUTE": "100000", "BFF_LOG_LEVEL": "WARNING"}
    try:
        with _processes(env) as processes:
            for process in processes:
                process.start()
            await asyncio.gather(*(p.ready() for p in processes))
            tokens = {m.pid: mint_dev_token(key, m.pid, issuer=DEV_ISSUER, audience="timeavtaler-bff",
                                            acr="idporten-loa-high") for m in crowd}
            yield World(redis, client, CancellationStore(client, prefix, IDS), sandbox, running.url, processes,
                        tokens, crowd)
    finally:
        await client.aclose()
        await running.stop()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    redis = RedisProcess(appendonly=True).start()
    try:
        async with running_world(tmp_path, redis, Redis.from_url(redis.url), {"REDIS_URL": redis.url,
                                                                              "BFF_REDIS_CLUSTER": "false"}) as built:
            yield built
    finally:
        redis.stop()


def _visits(world: World) -> list[tuple[CastMember, str]]:
    """Every crowd visit: (its citizen, its appointment id as the BFF gives it)."""
    return [(member, IDS.encode("A", "bergen-kommune", visit["id"], IDS.pseudonym(member.pid)))
            for member in world.crowd for visit in world.sandbox.state.world.visits["bergen"][member.pid]]


@dataclass
class Seen:
    """What the clients got: each key's answers, and how often they had to try again."""

    answers: list[tuple[str, str]]
    retries: Counter[str]
    under_way: asyncio.Event
    fault_after: int

    def answered(self, key: str, request: str) -> None:
        self.answers.append((key, request))
        if len(self.answers) >= self.fault_after:
            self.under_way.set()


async def _cancel_until_answered(world: World, http: httpx.AsyncClient, member: CastMember, appointment: str,
                                 key: str, first: int, seen: Seen) -> None:
    """What a careful client does: send, and on no answer (a process gone, Redis down) or
    an answer that says to try again, send the same key again — to either process."""
    body = {"query": CANCEL, "variables": {"input": {"appointmentId": appointment, "idempotencyKey": key}}}
    headers = {"Authorization": f"Bearer {world.tokens[member.pid]}"}
    for attempt in range(200):
        process = world.processes[(first + attempt) % 2]
        try:
            response = await http.post(f"{process.url}/graphql", json=body, headers=headers)
        except httpx.HTTPError as exc:
            seen.retries[type(exc).__name__] += 1
            await asyncio.sleep(0.1)
            continue
        answer = response.json()
        if not answer.get("data"):  # never a top-level error: INTERNAL is a bug; say where it came from
            reference = ((answer.get("errors") or [{}])[0].get("extensions") or {}).get("correlationId", "")
            raise AssertionError(f"{answer}\nthe process's log:\n{logged(reference)}")
        payload = answer["data"]["requestCancellation"]
        codes = [e["code"] for e in payload["errors"]]
        if payload["request"] is not None:
            seen.answered(key, payload["request"]["id"])
            return
        assert set(codes) <= RETRYABLE, (key, codes)
        seen.retries.update(codes)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{key} never got a request")


async def _burst(world: World, visits: list[tuple[CastMember, str]], tag: str, fault: Any) -> Seen:
    """Each visit's key sent to both processes at once; `fault` runs once a tenth of the
    answers are in (the rest are under way)."""
    seen = Seen([], Counter(), asyncio.Event(), len(visits) // 5)
    async with httpx.AsyncClient(timeout=30) as http:
        sends = [_cancel_until_answered(world, http, member, appointment, f"{tag}-{n}", side, seen)
                 for n, (member, appointment) in enumerate(visits) for side in (0, 1)]
        tasks = [asyncio.create_task(send) for send in sends]
        await seen.under_way.wait()
        await fault()
        await asyncio.gather(*tasks)
    return seen


async def _settled(world: World) -> None:
    deadline = time.monotonic() + SETTLE_WITHIN
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if not await world.store.pending():
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"still pending after {SETTLE_WITHIN} s: {len(await world.store.pending())}")


async def assert_nothing_lost_or_twice(world: World, answers: list[tuple[str, str]], count: int) -> None:
    """Every key names exactly one request, which reached the municipality once, was decided
    once as it decided, with one event and one notification; no slot is left PENDING."""
    desk = world.sandbox.state.desk
    # Every key names exactly one request, whichever process answered.
    by_key: dict[str, set[str]] = {}
    for key, request in answers:
        by_key.setdefault(key, set()).add(request)
    assert len(by_key) == count and all(len(r) == 1 for r in by_key.values())
    requests = {IDS.decode("C", next(iter(r)))[0] for r in by_key.values()}  # type: ignore[index]
    assert len(requests) == count

    # Each reached the municipality once: one request id per visit, and only ours.
    asked = Counter(entry["visit"] for entry in desk.requests.values())
    assert set(desk.requests) == requests and set(asked.values()) == {1}

    # Decided once, as the municipality decided; no slot or index entry left pending.
    records = await world.store.get_many(sorted(requests))
    assert all(r is not None and r.decided and r.evented and r.notified for r in records)
    decided = {r.request_id: r.status.lower() for r in records if r is not None}
    assert decided == {rid: entry["status"] for rid, entry in desk.requests.items()}
    slots = [world.store.slot_key("bergen-kommune", r.upstream_id, r.subject_pid) for r in records if r]
    assert not any((v or b"").split(b"|")[1:2] == [b"PENDING"] for v in await mget(world.client, slots))

    # Exactly one event and one notification per decision.
    streams = [await world.store.events_after(m.pid, "0", 1000) for m in world.crowd]
    events = Counter(rid for stream in streams for _, rid in stream)
    assert set(events) == requests and set(events.values()) == {1}
    assert len(world.sandbox.state.notifications) == count
    assert world.sandbox.state.notification_keys == requests


async def test_nothing_is_lost_or_sent_twice_through_process_kills_and_a_redis_restart(world: World) -> None:
    visits = _visits(world)
    assert len(visits) >= 2 * ROUND
    first, second = visits[:ROUND], visits[ROUND:2 * ROUND]
    desk = world.sandbox.state.desk
    desk.policy("bergen").update({"webhook_url": f"{world.processes[0].url}/webhooks/bergen-kommune",
                                  "webhook_secret": BERGEN_SECRET, "drop_webhooks": True, "delay_ms": 100})

    async def kill_one_process() -> None:
        world.processes[0].kill()
        await asyncio.sleep(0.5)
        world.processes[0].start()

    killed = await _burst(world, first, "one", kill_one_process)
    assert killed.retries, "the process was killed after the burst, not during it"
    await world.processes[0].ready()
    desk.policy("bergen").update({"drop_webhooks": False})

    async def restart_redis() -> None:
        world.redis.kill()
        await asyncio.sleep(0.5)
        world.redis.start()
        assert answers("127.0.0.1", world.redis.port)

    restarted = await _burst(world, second, "two", restart_redis)
    assert restarted.retries["TEMPORARILY_UNAVAILABLE"], "Redis was restarted after the burst, not during it"
    await _settled(world)

    await assert_nothing_lost_or_twice(world, killed.answers + restarted.answers, 2 * ROUND)
    print(f"chaos: {2 * ROUND} cancellations, 1 process kill, 1 Redis kill; client retries {dict(killed.retries)} "
          f"and {dict(restarted.retries)}; lost 0, duplicated 0")
