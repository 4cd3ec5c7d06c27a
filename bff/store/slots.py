"""Splitting a command over keys of several persons into one command per Redis Cluster
hash slot, and putting the replies back in the order of the keys.

On a single Redis everything is one slot's worth: `split` returns the command whole, so
the single-Redis path sends exactly what it sent before."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from bff.store.connection import clustered

log = structlog.get_logger(__name__)
REPLICA_WAIT_MS = 200
"""How long a write that must survive a failover waits for a replica's acknowledgement."""


def slot(key: str) -> int:
    """The key's hash slot (of its `{tag}` when it has one)."""
    return int(key_slot(key.encode()))


@dataclass(slots=True)
class Part:
    """One slot's share of a command: its keys and per-group arguments, and which groups
    (by position in the whole command) it carries."""

    keys: list[str] = field(default_factory=list)
    argv: list[Any] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)


def split(keys: Sequence[str], width: int, per_group: Sequence[Any] = (), per_width: int = 0,
          by_slot: bool = True) -> list[Part]:
    """`keys` in groups of `width` (a lease key and its entry, say; a group's keys share a
    slot), each group with `per_width` arguments from `per_group`: one Part per slot, or
    one Part for all when not `by_slot`."""
    parts: dict[int, Part] = {}
    for group in range(len(keys) // width):
        names = keys[group * width:(group + 1) * width]
        part = parts.setdefault(slot(names[0]) if by_slot else 0, Part())
        part.keys += names
        part.argv += per_group[group * per_width:(group + 1) * per_width]
        part.groups.append(group)
    return list(parts.values())


def join(parts: Iterable[Part], replies: Iterable[Any], groups: int, width: int) -> list[Any]:
    """The parts' replies (`width` values per group) in the order of the whole command's
    groups; a part whose reply is an error gives that error for each of its values."""
    out: list[Any] = [None] * (groups * width)
    for part, reply in zip(parts, replies, strict=True):
        for at, group in enumerate(part.groups):
            for i in range(width):
                out[group * width + i] = reply if isinstance(reply, Exception) else reply[at * width + i]
    return out


async def mget(redis: Redis, keys: list[str]) -> list[Any]:
    """MGET of keys that may lie in several slots: one MGET per slot on a cluster."""
    if clustered(redis) and len({slot(key) for key in keys}) > 1:
        return list(await redis.mget_nonatomic(keys))  # type: ignore[attr-defined]
    return list(await redis.mget(keys))


async def replicated(redis: Redis, key: str) -> bool:
    """On a cluster, wait (up to REPLICA_WAIT_MS) until a replica of `key`'s primary has what
    that primary acknowledged: replication is asynchronous, and a primary that dies before
    passing a write on takes it along when its replica is promoted. Used before a citizen is
    told a cancellation request exists or was decided. On a single Redis, AOF is the
    guarantee and nothing is waited for. False (logged) when no replica confirmed in time:
    the write stands on the primary, with its AOF."""
    if not clustered(redis):
        return True
    try:
        node = redis.get_node_from_key(key)  # type: ignore[attr-defined]
        confirmed = int(await redis.execute_command(  # type: ignore[no-untyped-call]
            "WAIT", 1, REPLICA_WAIT_MS, target_nodes=node))
    except (RedisError, OSError) as exc:
        log.warning("redis.replica_wait_failed", error=type(exc).__name__)
        return False
    if confirmed < 1:
        log.warning("redis.replica_not_confirmed", waited_ms=REPLICA_WAIT_MS)
    return confirmed >= 1
