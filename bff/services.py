"""The long-lived collaborators of a running BFF, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from bff.auth import TokenVerifier
from bff.cache import AppointmentCache
from bff.gateway import Gateway
from bff.ids import Ids
from bff.settings import Settings
from bff.sources import SourcesFile
from connectors.base import PersonDirectory


@dataclass(frozen=True)
class Services:
    """Everything a request needs that outlives the request."""

    settings: Settings
    catalogue: SourcesFile
    ids: Ids
    redis: Redis
    cache: AppointmentCache
    gateway: Gateway
    directory: PersonDirectory
    verifier: TokenVerifier
