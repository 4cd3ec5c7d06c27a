"""Prometheus metrics, in a registry of the app's own (several apps can share a process,
as in the tests). Labels name sources and outcomes, never persons."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BREAKER_STATES = {"closed": 0, "half-opened": 1, "opened": 2}
M = TypeVar("M", Counter, Gauge, Histogram)

disable_created_metrics()  # type: ignore[no-untyped-call]
"""No `*_created` series: in the text format Prometheus scrapes they are one more series per
counter and histogram child, holding a start timestamp nothing here reads. (The privacy
test also once took such a timestamp, printed with exactly 11 digits, for a pid.)"""


class Metrics:
    """The BFF's metrics."""

    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        """`of`'s children, by metric and label values."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.upstream_requests = Counter("bff_upstream_requests", "Calls to providers, by outcome",
                                         ["source", "outcome"], registry=r)
        self.upstream_latency = Histogram("bff_upstream_latency_seconds", "Provider call latency",
                                          ["source"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter("bff_upstream_errors", "Provider failures by kind",
                                       ["source", "kind"], registry=r)
        self.cache = Counter("bff_cache", "Cache lookups: hit, miss, revalidate (served stale while "
                             "refreshing), stale (served stale because the provider failed)",
                             ["source", "result"], registry=r)
        self.breaker_state = Gauge("bff_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                   ["source"], registry=r)
        self.source_states = Counter("bff_source_results", "Source states reported to clients",
                                     ["source", "state"], registry=r)
        self.upstream_auth = Counter("bff_upstream_auth", "HelseID per upstream: token_fetched (from the token "
                                     "server), token_failed, token_refused (an operator must act), token_retry "
                                     "(401 answered with a renewed token), proof_retry, nonce_retry",
                                     ["source", "event"], registry=r)
        self.redis_errors = Counter("bff_redis_errors", "Redis operations that failed", ["operation"], registry=r)
        self.responses = Counter("bff_response_cache", "Query documents answered: hit (reused) or miss",
                                 ["result"], registry=r)
        self.early_lists = Counter("bff_lists_started_early", "Own lists started as soon as the rate limit "
                                   "admitted the request, before the GraphQL view ran (resolvers.appointments.early)",
                                   registry=r)
        self.responses_kept = Gauge("bff_response_cache_entries", "Answers to query documents kept in memory",
                                    registry=r)
        self.webhook_orphans = Counter("bff_webhook_unknown_requests", "Provider answers about requests this "
                                       "BFF has no record of (kept, acknowledged)", ["source"], registry=r)
        self.redis_persistence = Gauge("bff_redis_persistent", "1 when Redis persists its data (AOF) or is "
                                       "declared to, 0 when it does not", registry=r)
        self.graphql_requests = Counter("bff_graphql_requests", "GraphQL HTTP requests by status class",
                                        ["status"], registry=r)

    def of(self, metric: M, *values: str) -> M:
        """`metric.labels(*values)`, made once: a cold list counts some thirty of them, and
        prometheus-client checks and locks on every `labels` call. Label values are
        sources and fixed outcomes, so the children are few."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
