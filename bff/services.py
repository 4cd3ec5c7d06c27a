"""The long-lived collaborators of a running BFF, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from bff.cancellation.events import EventHub
from bff.cancellation.inbox import Inbox
from bff.cancellation.service import CancellationService
from bff.domain.ids import Ids
from bff.domain.sources import SourcesFile
from bff.readpath.breakers import Breakers
from bff.readpath.gateway import Gateway
from bff.readpath.people import People
from bff.readpath.response_cache import ResponseCache
from bff.runtime.metrics import Metrics
from bff.settings import Settings
from bff.store.audit import AuditLog
from bff.store.cache import AppointmentCache
from bff.store.ratelimit import RateLimiter
from bff.web.auth import TokenVerifier


@dataclass(frozen=True)
class Services:
    """Everything a request needs that outlives the request."""

    settings: Settings
    catalogue: SourcesFile
    ids: Ids
    redis: Redis
    cache: AppointmentCache
    gateway: Gateway
    people: People
    verifier: TokenVerifier
    metrics: Metrics
    breakers: Breakers
    cancellations: CancellationService
    inbox: Inbox
    """Providers' answers, recorded on the webhooks' own Redis connections."""
    events: EventHub
    audit: AuditLog
    rate_limiter: RateLimiter
    responses: ResponseCache
