"""Moving keys written before the cluster-ready key layout to it.

Until then a person's audit stream was `bff:audit:<pseudonym>`; it is now
`bff:audit:{<pseudonym>}` (the pseudonym as hash tag, so the stream shares a slot with the
person's other keys). Audit entries are kept 13 months, so they are moved, not left to
expire: `bff migrate-keys` renames each old stream, on the single Redis the earlier
version ran on, before the new version serves. Cache entries, generations, directory
records and rate-limit windows are not moved: they expire within a day and are rebuilt.
Cancellation keys were cluster-ready already."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Moved:
    moved: int
    kept: int
    """Old streams left where they are: the new key had entries already (a new-version
    process wrote there first); an operator merges or drops them."""


async def move_audit_streams(redis: Redis, prefix: str) -> Moved:
    """Rename every `prefix:audit:<pseudonym>` to `prefix:audit:{<pseudonym>}` (RENAMENX:
    an existing new stream is never overwritten)."""
    moved = kept = 0
    async for raw in redis.scan_iter(match=f"{prefix}:audit:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        pseudonym = key[len(f"{prefix}:audit:"):]
        if "{" in pseudonym or ":" in pseudonym:  # new layout already, or an audit marker key
            continue
        if await redis.renamenx(key, f"{prefix}:audit:{{{pseudonym}}}"):
            moved += 1
        else:
            kept += 1
    return Moved(moved, kept)
