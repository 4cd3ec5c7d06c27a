"""CPU per cold request, BFF against the baseline: the number the cold-list targets come down to.

Starts the bench's providers with no latency, the BFF and the baseline (as `bench.run`
does), then sends cold requests (a new person each) to both in turn, one at a time, and
reads each server's CPU time from /proc before the first and after the last request (and
its work after the last answer, such as cache writes, has settled): each serves only its
own requests, so that is its CPU per request, work after the answer included.
Interleaving keeps a noisy neighbour from favouring either side.

    python -m bench.cpu                 # 200 requests per side
    python -m bench.cpu --requests 500
    python -m bench.cpu --against HEAD~1   # also that commit's BFF, interleaved (A/B work)
    python -m bench.cpu --warm --requests 2000 --against HEAD~1
                                        # one person again and again: CPU per reused answer
    python -m bench.cpu --peer-shape --against HEAD~1
                                        # scenario (p)'s providers: 5 sources x 6, pages of 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench import run

SETTLE = 0.5
"""Seconds for the work a server does after its last answer (cache writes) to finish."""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--against", metavar="GIT_REF", help="also run the BFF of this commit, interleaved")
    parser.add_argument("--warm", action="store_true", help="one person every time: CPU per reused answer")
    parser.add_argument("--peer-shape", action="store_true",
                        help="scenario (p)'s providers and sources (5 sources × 6 appointments, pages of 5)")
    args = parser.parse_args()
    run.LATENCY_MS = run.JITTER_MS = 0.0
    bench = run.Bench(quick=True, peer_shape=args.peer_shape)
    sides = {"bff": (bench.urls["bff"] + "/graphql", {"query": run.PEER_QUERY if args.peer_shape else run.QUERY,
                                                      "variables": {"first": 100 if args.peer_shape else 50}}),
             "baseline": (bench.urls["baseline"] + "/list", {})}
    warmup = 10
    with ExitStack() as stack:
        stack.callback(bench.cleanup)
        bench.start(stack)
        if args.against:
            other = f"bff@{args.against}"
            sides[other] = (bench.start_other_bff(stack, args.against) + "/graphql", sides["bff"][1])
        tokens = bench.tokens(run.pids(len(sides) * (args.requests + warmup + 1), 70_000), "cpu").read_text().split()
        same = {side: tokens.pop() for side in sides}
        wall: dict[str, list[float]] = {side: [] for side in sides}
        pids = {side: bench.procs[side if side in bench.procs else "against"].pid for side in sides}
        cpu: dict[str, float] = {}
        with httpx.Client(timeout=30) as client:
            for n in range(args.requests + warmup):
                if n == warmup:
                    time.sleep(SETTLE)
                    cpu = {side: -cpu_seconds(pid) for side, pid in pids.items()}
                for side, (url, body) in sides.items():
                    started = time.perf_counter()
                    token = same[side] if args.warm else tokens.pop()
                    client.post(url, json=body, headers={"Authorization": f"Bearer {token}"}).raise_for_status()
                    if n >= warmup:
                        wall[side].append((time.perf_counter() - started) * 1000)
        time.sleep(SETTLE)
        cpu = {side: spent + cpu_seconds(pids[side]) for side, spent in cpu.items()}
    width = max(len(side) for side in sides)
    for side in sides:
        print(f"{side:{width}} wall p50 {statistics.median(wall[side]):5.1f} ms   "
              f"CPU {cpu[side] / args.requests * 1000:6.2f} ms per {'warm' if args.warm else 'cold'} request")
    print(f"BFF/baseline CPU: {cpu['bff'] / cpu['baseline']:.2f}")
    if args.against:
        print(f"BFF/BFF@{args.against} CPU: {cpu['bff'] / cpu[other]:.3f}")


if __name__ == "__main__":
    main()
