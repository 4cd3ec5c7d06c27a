"""Whether Redis keeps what it acknowledged across a restart. Redis is the BFF's only
state (cancellation requests, idempotency keys, events), so the production profile is not
ready on a Redis that does not persist: a restart would forget requests the providers
already hold and answers they already sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError, ResponseError

from bff.store.connection import clustered


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
        if clustered(redis):  # every node, replicas too: a promoted replica must persist as well
            answers: Any = await redis.config_get("appendonly", target_nodes=RedisCluster.ALL_NODES)
            found = {node: _appendonly(answer) for node, answer in answers.items()}
        else:
            found = {"redis": _appendonly(await redis.config_get("appendonly"))}
    except ResponseError:
        return Persistence(False, CANNOT_SEE)
    except (RedisError, OSError) as exc:
        return Persistence(False, f"Redis did not answer ({type(exc).__name__})")
    if all(value in ("yes", b"yes") for value in found.values()):
        return Persistence(True, "appendonly yes" + (f" on all {len(found)} nodes" if len(found) > 1 else ""))
    if len(found) > 1:
        off = sorted(node for node, value in found.items() if value not in ("yes", b"yes"))
        return Persistence(False, f"{NOT_PERSISTENT} Nodes without AOF: {', '.join(off)}.")
    return Persistence(False, NOT_PERSISTENT)


def _appendonly(answer: Any) -> Any:
    return answer.get("appendonly", answer.get(b"appendonly"))
