"""Where a cold request's time goes inside the BFF: a timeline of marks, per request.

Starts the bench (providers at 50 ± 5 ms, Redis) and a second BFF, this module run as
`--serve PORT`: the bench's BFF with its key steps wrapped so that each notes when it
starts (`>`) and ends (`<`), relative to the request's arrival. Sends cold requests (the
bench's cold query, a new person each) one at a time and prints, per mark, the median
time of its first and of its last occurrence in a request.

    python -m bench.trace                  # 200 cold requests
    python -m bench.trace --requests 500 --directory-ms 20
    python -m bench.trace --peer-shape --connections 16 --requests 1500
                                           # (p)'s shape under (p)'s load: where queueing adds
    python -m bench.trace --gaps           # between consecutive marks: median wall and CPU time

The marks:

| mark | what |
|---|---|
| token | verifying the bearer token |
| kept | `BffGraphQL.kept_answer`: kept answer and rate count (a round trip); an own list's early start |
| lane | one Redis command on the lane (written → reply) |
| execute | Strawberry's `Schema.execute` (parse and validation caches, extensions, execution) |
| list | the list resolver starting the own list (read-ahead, early hospital calls) |
| redis | `AppointmentCache.read_or_lease` (a round trip, or nothing when every key was read ahead) |
| directory | the person directory's answer, asked over HTTP |
| provider | one provider call, from building the request to its rows mapped (per call) |
| http | one HTTP exchange under a provider or directory call (request sent → response read) |
| gateway | `Gateway.fetch`: one source's answer through cache, single-flight and breaker (per source) |
| batch | the source loader's batch (the list's sources awaited) |
| consulted, page, latest | the list resolver's parts: its sources' answers, the page, the rows' cancellation requests |
| rows | `visible_rows` (the answers' rows filtered, merged and sorted) |
| headers, body | the response's start and body handed to the server |

Each wrapper costs a few µs, so later marks drift a little; read the gaps between marks.
`--gaps` prints, for each pair of consecutive marks, the median wall time between them and
the median CPU time the process spent meanwhile: where the two differ, the request waited
(for Redis, a provider, or — under load — other requests' work).
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import inspect
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx

from bench import run

_events: contextvars.ContextVar[list[tuple[str, float]] | None] = contextvars.ContextVar("trace", default=None)


def _mark(label: str) -> None:
    events = _events.get()
    if events is not None:
        events.append((label, time.perf_counter(), time.thread_time()))


def _wrapped(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            _mark(label + ">")
            try:
                return await function(*args, **kwargs)
            finally:
                _mark(label + "<")
        return timed_async

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        _mark(label + ">")
        try:
            return function(*args, **kwargs)
        finally:
            _mark(label + "<")
    return timed


def _instrument() -> None:
    """Wrap the steps named in the module's docstring, wherever they are looked up."""
    import strawberry.schema.schema as strawberry_schema

    import bff.app
    import bff.readpath.appointments
    import bff.readpath.gateway
    import bff.store.cache
    import bff.store.lane
    import bff.web.auth
    import connectors.fhir.connector
    import connectors.http
    import connectors.municipal
    import connectors.persons
    import resolvers.appointments.listing
    import resolvers.appointments.queries
    import resolvers.loaders

    targets: list[tuple[Any, str, str, list[Any]]] = [
        (bff.web.auth.TokenVerifier, "verify", "token", []),
        (bff.app.BffGraphQL, "kept_answer", "kept", []),
        (bff.store.lane.Lane, "call", "lane", []),
        (strawberry_schema.Schema, "execute", "execute", []),
        (resolvers.loaders.AppointmentsBySourceLoader, "start_own_list", "list", []),
        (bff.store.cache.AppointmentCache, "read_or_lease", "redis", []),
        (connectors.persons.HttpPersonDirectory, "get", "directory", []),
        (connectors.fhir.connector.FhirConnector, "fetch", "provider", []),
        (connectors.municipal.MunicipalConnector, "fetch", "provider", []),
        (connectors.http, "send", "http", [connectors.fhir.connector, connectors.municipal, connectors.persons]),
        (bff.readpath.appointments, "visible_rows", "rows", [resolvers.appointments.listing]),
        (bff.readpath.gateway.Gateway, "fetch", "gateway", []),
        (resolvers.loaders.AppointmentsBySourceLoader, "batch_load_fn", "batch", []),
        (resolvers.appointments.listing, "consulted_for", "consulted", [resolvers.appointments.queries]),
        (resolvers.appointments.listing, "page_of", "page", [resolvers.appointments.queries]),
        (resolvers.appointments.listing, "_latest_requests", "latest", []),
    ]
    for owner, name, label, importers in targets:
        wrapped = _wrapped(getattr(owner, name), label)
        for place in (owner, *importers):
            setattr(place, name, wrapped)


def serve(port: int, out: str) -> None:
    """The bench's BFF, instrumented; one JSON line per /graphql request to `out`."""
    import uvicorn

    from bff import asgi

    _instrument()
    sink = open(out, "a", buffering=1)  # noqa: SIM115 - open for the server's lifetime

    def app() -> Callable[..., Any]:
        inner = asgi.app()

        async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"] != "/graphql":
                await inner(scope, receive, send)
                return
            events = [("arrived", time.perf_counter(), time.thread_time())]
            _events.set(events)

            async def noting(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    _mark("headers")
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    _mark("body")
                await send(message)

            await inner(scope, receive, noting)
            start, cpu = events[0][1], events[0][2]
            sink.write(json.dumps([(label, round((at - start) * 1000, 3), round((used - cpu) * 1000, 3))
                                   for label, at, used in events]) + "\n")

        return traced

    uvicorn.run(app, factory=True, port=port, log_level="warning", access_log=False, http=asgi.HttpProtocol)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--directory-ms", type=float, default=0,
                        help="let the person directory answer after this long (default at once)")
    parser.add_argument("--peer-shape", action="store_true",
                        help="scenario (p)'s providers and query (5 sources x 6, pages of 5, the directory's 50 ms)")
    parser.add_argument("--connections", type=int, default=1,
                        help="requests in flight at once (16: as (p)'s wrk; the BFF then pinned to CPU 0)")
    parser.add_argument("--gaps", action="store_true", help="median wall and CPU time between consecutive marks")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, os.environ["BENCH_TRACE_OUT"])
        return
    bench = run.Bench(quick=True, directory_ms=args.directory_ms, peer_shape=args.peer_shape)
    out = bench.tmp / "trace.jsonl"
    warmup = 20 * args.connections
    with ExitStack() as stack:
        stack.callback(bench.cleanup)
        bench.start(stack)
        url = bench.start_extra_bff(stack, "trace",
                                    lambda port: [sys.executable, "-m", "bench.trace", "--serve", str(port)],
                                    run.ROOT.parent, {"BENCH_TRACE_OUT": str(out)})
        if args.connections > 1:
            subprocess.run(["taskset", "-pc", "0", str(bench.procs["trace"].pid)], check=True, capture_output=True)
        tokens = bench.tokens(run.pids(args.requests + warmup, 60_000), "trace").read_text().split()
        body = {"query": run.PEER_QUERY, "variables": {"first": 100}} if args.peer_shape else \
            {"query": run.QUERY, "variables": {"first": 50}}

        def send_all(mine: list[str]) -> None:
            with httpx.Client(timeout=30) as client:
                for token in mine:
                    client.post(f"{url}/graphql", json=body,
                                headers={"Authorization": f"Bearer {token}"}).raise_for_status()

        with ThreadPoolExecutor(args.connections) as pool:
            list(pool.map(send_all, [tokens[n::args.connections] for n in range(args.connections)]))
        time.sleep(0.2)
        requests = [json.loads(line) for line in out.read_text().splitlines()][warmup:]
    print(gaps(requests) if args.gaps else report(requests))


Events = list[tuple[str, float, float]]
"""A request's marks: (label, ms after it arrived, ms of the process's CPU since then)."""


def report(requests: list[Events]) -> str:
    """Per mark, the median ms of its first and last occurrence, in the order they happen."""
    seen: dict[str, list[list[float]]] = {}
    for events in requests:
        times: dict[str, list[float]] = {}
        for label, at, _ in events:
            times.setdefault(label, []).append(at)
        for label, ats in times.items():
            seen.setdefault(label, []).append([ats[0], ats[-1], len(ats)])
    lines = [f"{'mark':12} {'first':>8} {'last':>8} {'times':>6}   (ms after the request arrived; median of "
             f"{len(requests)} cold requests)"]
    order = sorted(seen, key=lambda label: statistics.median(s[0] for s in seen[label]))
    for label in order:
        first, last, count = (statistics.median(s[i] for s in seen[label]) for i in range(3))
        lines.append(f"{label:12} {first:8.2f} {last:8.2f} {count:6.0f}")
    return "\n".join(lines)


def gaps(requests: list[Events]) -> str:
    """Per pair of consecutive marks (in the order of the first requests), the median wall
    and CPU ms between them, over the requests that have the pair."""
    between: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    order: list[tuple[str, str]] = []
    for n, events in enumerate(requests):
        for (a, wall_a, cpu_a), (b, wall_b, cpu_b) in itertools.pairwise(events):
            walls, cpus = between.setdefault((a, b), ([], []))
            walls.append(wall_b - wall_a)
            cpus.append(cpu_b - cpu_a)
            if n < 50 and (a, b) not in order:
                order.append((a, b))
    lines = [f"{'from':>12} -> {'to':12} {'wall':>7} {'cpu':>7} {'seen':>6}   (ms; median of {len(requests)} requests)"]
    for a, b in order:
        walls, cpus = between[(a, b)]
        if len(walls) >= len(requests) / 3:
            lines.append(f"{a:>12} -> {b:12} {statistics.median(walls):7.3f} {statistics.median(cpus):7.3f} "
                         f"{len(walls):6d}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
