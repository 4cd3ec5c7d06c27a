"""A/B under (p)'s cold load: this working tree's BFF against another commit's, side by side.

`bench.cpu --against` compares CPU per list one request at a time; what a cold list waits
for on a busy event loop only shows with many in flight. This starts (p)'s providers (5
sources, 6 appointments each, pages of 5, every call 50 ± 5 ms), the working tree's BFF
and the other commit's (a temporary worktree), both pinned to CPU 0, and sends each cold
lists (a new person every request) at 16 connections in alternating rounds, which side
goes first alternating too. Per side: throughput over all its rounds, the median of its rounds' p50
and p95, and its CPU per list.

    python -m bench.ab --against HEAD                # 6 rounds of 4 s per side
    python -m bench.ab --against HEAD --rounds 8
    python -m bench.ab --against HEAD --env-b BFF_RATE_LIMIT_PER_MINUTE=0   # B with a setting
    python -m bench.ab --against HEAD --warm         # (p)'s warm row: one person, the same query
    python -m bench.ab --against HEAD --one          # (a)'s cold row: one connection, (a)'s providers

`--warm` measures (p)'s warm ad-hoc row instead: one person asking the same query again,
every answer reused (both sides are asked it twice first, to keep an answer). `--one`
measures scenario (a) instead: its providers (6 sources x 30 appointments, one page each,
the directory at once), its query, cold lists one at a time on one connection — the
latency a request adds on an idle server.

The same commit on both sides differed by up to ~2 % in throughput and ~4 % in CPU per
list (bench/results/NOTES.md, 2026-12-04): smaller differences are noise.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from contextlib import ExitStack
from typing import Any

from bench import run

CONNECTIONS = 16


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", metavar="GIT_REF", required=True, help="side B: this commit's BFF")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=4, help="length of one round")
    parser.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for side B only (repeatable)")
    parser.add_argument("--warm", action="store_true", help="one person, the same query again (reused answers)")
    parser.add_argument("--one", action="store_true", help="scenario (a): cold lists on one connection")
    args = parser.parse_args()
    connections, first = (1, 50) if args.one else (CONNECTIONS, 100)
    bench = run.Bench(quick=True, peer_shape=not args.one)
    with ExitStack() as stack:
        stack.callback(bench.cleanup)
        bench.start(stack)
        urls = {"A": bench.urls["bff"],
                "B": bench.start_other_bff(stack, args.against, dict(setting.split("=", 1) for setting in args.env_b))}
        pids = {"A": bench.procs["bff"].pid, "B": bench.procs["against"].pid}
        for pid in pids.values():
            subprocess.run(["taskset", "-pc", "0", str(pid)], check=True, capture_output=True)
        tokens = bench.tokens(run.pids(1, 20_000) if args.warm else run.pids(60_000, 700_000), "cold")
        document = {"query": run.QUERY if args.one else run.PEER_QUERY}
        if args.warm:
            for side in "AB":
                bench.warm(tokens, first, urls[side], document=document)
        others = ["taskset", "-c", "1"]
        offset = 0
        for side in "AB":  # first connections, first lists: not measured
            warm = bench.wrk(urls[side] + "/graphql", tokens, first, connections, 3, document=document, offset=offset,
                             cpus=others)
            offset = 0 if args.warm else offset + warm["requests"] + connections
        rounds: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
        for n in range(args.rounds):
            for side in "AB" if n % 2 == 0 else "BA":
                before = run.cpu_seconds(pids[side])
                result = bench.wrk(urls[side] + "/graphql", tokens, first, connections, args.seconds,
                                   document=document, offset=offset, cpus=others)
                offset = 0 if args.warm else offset + result["requests"] + connections
                result["cpu_ms"] = (run.cpu_seconds(pids[side]) - before) / max(1, result["requests"]) * 1000
                rounds[side].append(result)
    for side, name in (("A", "working tree"), ("B", args.against)):
        mine = rounds[side]
        requests = sum(r["requests"] for r in mine)
        seconds = sum(r["duration_us"] for r in mine) / 1e6
        p50, p95 = (statistics.median(r[key] for r in mine) for key in ("p50_ms", "p95_ms"))
        cpu = statistics.median(r["cpu_ms"] for r in mine)
        print(f"{side} {name:14} {requests / seconds:6.1f} lists/s  p50 {p50:6.2f}  p95 {p95:6.2f} ms  "
              f"CPU {cpu:5.3f} ms/list  p50 per round {[round(r['p50_ms'], 1) for r in mine]}")


if __name__ == "__main__":
    main()
