"""Where a cold request's latency goes, BFF against the baseline: the phases of scenario (a).

Starts the bench (providers at 50 ± 5 ms, the BFF, the baseline), sends cold requests to
both in turn, one at a time, and splits each request's wall time by what the providers
saw (their clocks are this machine's):

- before: from sending the request to the first provider call arriving (token, person
  directory, cache reads and leases);
- sending: from the first provider call arriving to the last one arriving (the fan-out's
  own cost: each call is built and sent in turn);
- upstream: from the first provider call arriving to the last provider answer leaving;
- after: from the last answer leaving to the response being read (reading and mapping
  what is still queued, cache writes, building and sending the answer).

    python -m bench.timeline                 # 100 requests per side
    python -m bench.timeline --requests 300
    python -m bench.timeline --against HEAD~3   # also that commit's BFF, side by side
    python -m bench.timeline --back-to-back 10  # each side 10 requests in a row, as wrk sends them
    python -m bench.timeline --directory-ms 20  # a person directory that takes 20 ms to answer

`--against` is for A/B work: this machine's speed drifts by a third over minutes, so two
versions are only comparable when their requests interleave in one run. With
`--back-to-back N` the sides take turns of N requests, each sent as soon as the previous
answer is read (as scenario a's wrk does): work a server leaves until after an answer
then meets the next request, which the strict alternation hides.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from typing import Any

import httpx

from bench import run

PHASES = ("before", "sending", "upstream", "after", "total")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--against", metavar="GIT_REF", help="also run the BFF of this commit, interleaved")
    parser.add_argument("--back-to-back", metavar="N", type=int, default=1,
                        help="requests in a row per side before the next side's turn")
    parser.add_argument("--directory-ms", type=float, default=0,
                        help="let the person directory answer after this long (default at once)")
    args = parser.parse_args()
    bench = run.Bench(quick=True, directory_ms=args.directory_ms)
    query = {"query": run.QUERY, "variables": {"first": 50}}
    sides = {"bff": (bench.urls["bff"] + "/graphql", query), "baseline": (bench.urls["baseline"] + "/list", {})}
    warmup = 10
    with ExitStack() as stack:
        stack.callback(bench.cleanup)
        bench.start(stack)
        if args.against:
            sides[f"bff@{args.against}"] = (bench.start_other_bff(stack, args.against) + "/graphql", query)
        phases: dict[str, dict[str, list[float]]] = {side: {p: [] for p in PHASES} for side in sides}
        people = run.pids(len(sides) * (args.requests + warmup + args.back_to_back), 80_000)
        tokens = bench.tokens(people, "timeline").read_text().split()
        with httpx.Client(timeout=30) as client:
            if args.back_to_back > 1:
                _back_to_back(client, sides, tokens, phases, args.requests + warmup, warmup, args.back_to_back)
            else:
                _alternating(bench, client, sides, tokens, phases, args.requests + warmup, warmup)
    width = max(len(side) for side in sides) + 1
    shown = [p for p in PHASES if phases["bff"][p]]
    print(f"{'p50 ms':{width}}" + "".join(f"{p:>10}" for p in shown))
    for side in sides:
        print(f"{side:{width}}" + "".join(f"{statistics.median(phases[side][p]):10.1f}" for p in shown))


Sides = dict[str, tuple[str, Any]]


def _alternating(bench: run.Bench, client: httpx.Client, sides: Sides, tokens: list[str],
                 phases: dict[str, dict[str, list[float]]], requests: int, warmup: int) -> None:
    """One request per side in turn, each split into phases by the providers' timeline."""
    for n in range(requests):
        order = list(sides.items())
        for side, (url, body) in order[n % len(order):] + order[:n % len(order)]:
            bench.provider_timeline(client)
            sent = time.time()
            client.post(url, json=body, headers={"Authorization": f"Bearer {tokens.pop()}"}).raise_for_status()
            received = time.time()
            calls = [c for c in bench.provider_timeline(client) if c[0] != "persons"]
            if n < warmup:
                continue
            first, last = min(c[1] for c in calls), max(c[2] for c in calls)
            spread = max(c[1] for c in calls) - first
            for phase, ms in zip(PHASES, (first - sent, spread, last - first, received - last,
                                          received - sent), strict=True):
                phases[side][phase].append(ms * 1000)


def _back_to_back(client: httpx.Client, sides: Sides, tokens: list[str], phases: dict[str, dict[str, list[float]]],
                  requests: int, warmup: int, run_length: int) -> None:
    """Turns of `run_length` requests per side, each sent when the previous answer is read;
    only the total is measured (reading the providers' timeline would leave a gap)."""
    done = dict.fromkeys(sides, 0)
    turn = 0
    while min(done.values()) < requests:
        order = list(sides.items())
        for side, (url, body) in order[turn % len(order):] + order[:turn % len(order)]:
            for _ in range(run_length):
                sent = time.perf_counter()
                client.post(url, json=body, headers={"Authorization": f"Bearer {tokens.pop()}"}).raise_for_status()
                if done[side] >= warmup:
                    phases[side]["total"].append((time.perf_counter() - sent) * 1000)
                done[side] += 1
        turn += 1


if __name__ == "__main__":
    main()
