"""Whether Redis keeps what it acknowledged across a restart. Redis is the BFF's only
state (cancellation requests, idempotency keys, events), so the production profile is not
ready on a Redis that does not persist: a restart would forget requests the providers
already hold and answers they already sent."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError


@dataclass(frozen=True, slots=True)
class Persistence:
    """The answer, and why, in words for an operator."""

    ok: bool
    detail: str


NOT_PERSISTENT = ("Redis does not persist its data (appendonly no): a restart would lose cancellation requests. "
                  "Turn on AOF (appendonly yes, appendfsync everysec).")
CANNOT_SEE = ("Redis refuses CONFIG GET, so whether it persists cannot be checked. If the provider guarantees "
              "persistence, set BFF_REDIS_PERSISTENCE_GUARANTEED=true.")


async def persistence(redis: Redis, guaranteed: bool) -> Persistence:
    """Whether `redis` persists (AOF on), or is declared to (`guaranteed`: a managed Redis
    whose provider guarantees it and disables CONFIG)."""
    if guaranteed:
        return Persistence(True, "declared by BFF_REDIS_PERSISTENCE_GUARANTEED")
    try:
        found = await redis.config_get("appendonly")
    except ResponseError:
        return Persistence(False, CANNOT_SEE)
    except (RedisError, OSError) as exc:
        return Persistence(False, f"Redis did not answer ({type(exc).__name__})")
    value = found.get("appendonly", found.get(b"appendonly"))  # type: ignore[call-overload]
    if value in ("yes", b"yes"):
        return Persistence(True, "appendonly yes")
    return Persistence(False, NOT_PERSISTENT)
