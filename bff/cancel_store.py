"""Cancellation requests in Redis: the record, the idempotency key, the per-appointment
slot, the pending index and the per-person event stream.

Every state change is a single-key atomic operation (safe on a Redis Cluster); the
follow-ups of a decision (event, notification, cache invalidation) are recorded as flags
on the record, and the request stays in the pending index until all are done, so a crash
between steps is finished by the worker instead of being lost.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from bff.ids import Ids
from bff.timez import OSLO

PENDING = "PENDING"
ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"
FAILED = "FAILED"
RETENTION = 31 * 24 * 3600
"""Seconds decided requests, idempotency keys and events are kept (at least 30 days)."""
PENDING_RETENTION = 90 * 24 * 3600

CREATE_SLOT = """
local current = redis.call('get', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if string.sub(current, sep + 1) == 'PENDING' then return string.sub(current, 1, sep - 1) end
end
redis.call('set', KEYS[1], ARGV[1] .. '|PENDING', 'EX', ARGV[2])
return false
"""
SETTLE_SLOT = """
local current = redis.call('get', KEYS[1])
if current and string.sub(current, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  redis.call('set', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'KEEPTTL')
end
return 1
"""
DECIDE = """
local raw = redis.call('get', KEYS[1])
if not raw then return false end
local record = cjson.decode(raw)
if record['status'] ~= 'PENDING' then return false end
record['status'] = ARGV[1]
record['provider_message'] = ARGV[2]
record['decided_at'] = ARGV[3]
if ARGV[2] == '' then record['provider_message'] = cjson.null end
local encoded = cjson.encode(record)
redis.call('set', KEYS[1], encoded, 'EX', ARGV[4])
return encoded
"""
FLAG = """
local raw = redis.call('get', KEYS[1])
if not raw then return false end
local record = cjson.decode(raw)
record[ARGV[1]] = true
redis.call('set', KEYS[1], cjson.encode(record), 'KEEPTTL')
return 1
"""


@dataclass(frozen=True, slots=True)
class CancellationRecord:
    """One cancellation request and what became of it."""

    request_id: str
    actor_pid: str
    subject_pid: str
    source_id: str
    upstream_id: str
    status: str
    requested_at: str
    reason: str | None = None
    provider_message: str | None = None
    decided_at: str | None = None
    sent: bool = False
    evented: bool = False
    notified: bool = False
    settled: bool = False
    title: str | None = None
    service: str | None = None
    start: str | None = None
    organization: str | None = None

    @property
    def decided(self) -> bool:
        return self.status != PENDING

    def requested(self) -> datetime:
        return datetime.fromisoformat(self.requested_at)

    def decided_time(self) -> datetime | None:
        return datetime.fromisoformat(self.decided_at) if self.decided_at else None


def _load(raw: bytes | str | None) -> CancellationRecord | None:
    if raw is None:
        return None
    data = orjson.loads(raw)
    fields = CancellationRecord.__dataclass_fields__
    known: dict[str, Any] = {k: v for k, v in data.items() if k in fields}
    return CancellationRecord(**known)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class CancellationStore:
    """Reads and writes cancellation state."""

    def __init__(self, redis: Redis, prefix: str, ids: Ids) -> None:
        self._redis = redis
        self._p = f"{prefix}:cxl"
        self._ids = ids
        self.leases = Leases(redis, prefix, uuid.uuid4().hex)

    async def try_lock(self, name: str, ttl_ms: int) -> str | None:
        """A short exclusive lock, even against other callers in this process; its token."""
        token = uuid.uuid4().hex
        if await self._redis.set(f"{self._p}:lock:{name}", token, nx=True, px=ttl_ms):
            return token
        return None

    async def unlock(self, name: str, token: str) -> None:
        await self._redis.eval(UNLOCK, 1, f"{self._p}:lock:{name}", token)

    async def first_delivery(self, source_id: str, message_id: str, ttl: int) -> bool:
        """True the first time a webhook message id is seen (replays are ignored)."""
        return bool(await self._redis.set(f"{self._p}:webhook:{source_id}:{digest(message_id)}", "1",
                                          nx=True, ex=ttl))

    async def forget_delivery(self, source_id: str, message_id: str) -> None:
        await self._redis.delete(f"{self._p}:webhook:{source_id}:{digest(message_id)}")

    def record_key(self, request_id: str) -> str:
        return f"{self._p}:req:{request_id}"

    def idempotency_key(self, actor_pid: str, key: str) -> str:
        return f"{self._p}:idem:{self._ids.pseudonym(actor_pid)}:{digest(key)}"

    def slot_key(self, source_id: str, upstream_id: str, subject_pid: str, pseudonym: str | None = None) -> str:
        """The appointment's current request; `pseudonym`: the subject's, when the caller has it."""
        return f"{self._p}:slot:{source_id}:{digest(upstream_id)}:{pseudonym or self._ids.pseudonym(subject_pid)}"

    def stream_key(self, actor_pid: str) -> str:
        return f"{self._p}:events:{self._ids.pseudonym(actor_pid)}"

    def poke_channel(self, actor_pid: str) -> str:
        return f"{self._p}:poke:{self._ids.pseudonym(actor_pid)}"

    @property
    def pending_key(self) -> str:
        return f"{self._p}:pending"

    async def get(self, request_id: str) -> CancellationRecord | None:
        return _load(await self._redis.get(self.record_key(request_id)))

    async def get_many(self, request_ids: list[str]) -> list[CancellationRecord | None]:
        if not request_ids:
            return []
        return [_load(raw) for raw in await self._redis.mget([self.record_key(r) for r in request_ids])]

    async def claim_idempotency(self, actor_pid: str, key: str, request_id: str, fingerprint: str) -> str | None:
        """Claim `key` for a new request; returns the existing "request_id|fingerprint" if taken."""
        redis_key = self.idempotency_key(actor_pid, key)
        value = f"{request_id}|{fingerprint}"
        if await self._redis.set(redis_key, value, nx=True, ex=RETENTION):
            return None
        existing = await self._redis.get(redis_key)
        return existing.decode() if isinstance(existing, bytes) else existing

    async def peek_idempotency(self, actor_pid: str, key: str) -> str | None:
        existing = await self._redis.get(self.idempotency_key(actor_pid, key))
        return existing.decode() if isinstance(existing, bytes) else existing

    async def release_idempotency(self, actor_pid: str, key: str) -> None:
        await self._redis.delete(self.idempotency_key(actor_pid, key))

    async def claim_slot(self, record: CancellationRecord) -> str | None:
        """Make this the appointment's current request; returns a pending one's id instead."""
        key = self.slot_key(record.source_id, record.upstream_id, record.subject_pid)
        found = await self._redis.eval(CREATE_SLOT, 1, key, record.request_id, PENDING_RETENTION)
        return found.decode() if isinstance(found, bytes) else found

    async def latest_for(self, keys: list[tuple[str, str, str]]) -> list[str | None]:
        """The latest request id per (source id, upstream id, subject pid)."""
        if not keys:
            return []
        # A list asks for every row of one person: each pseudonym (an HMAC) is made once.
        pseudonyms = {pid: self._ids.pseudonym(pid) for pid in {pid for _, _, pid in keys}}
        raws = await self._redis.mget([self.slot_key(s, u, pid, pseudonyms[pid]) for s, u, pid in keys])
        return [(r.decode() if isinstance(r, bytes) else r).split("|", 1)[0] if r else None for r in raws]

    async def create(self, record: CancellationRecord) -> None:
        """Store a new request (PENDING, not yet sent) and index it as pending."""
        await self._redis.set(self.record_key(record.request_id), orjson.dumps(asdict(record)),
                              ex=PENDING_RETENTION)
        await self._redis.zadd(self.pending_key, {record.request_id: time.time()})

    async def mark(self, request_id: str, flag: str) -> None:
        """Set a follow-up flag (`sent`, `evented`, `notified`, `settled`) on the record."""
        await self._redis.eval(FLAG, 1, self.record_key(request_id), flag)

    async def decide(self, request_id: str, status: str, message: str | None,
                     at: datetime) -> CancellationRecord | None:
        """PENDING → `status`, once: returns the decided record to the one caller that
        made the change, None to everyone else (already decided, or unknown)."""
        encoded = await self._redis.eval(DECIDE, 1, self.record_key(request_id), status, message or "",
                                         at.astimezone(OSLO).isoformat(), RETENTION)
        if not encoded:
            return None
        record = _load(encoded)
        if record is not None:
            await self._redis.eval(SETTLE_SLOT, 1, self.slot_key(record.source_id, record.upstream_id,
                                                                 record.subject_pid), request_id, status)
        return record

    async def pending(self, limit: int = 100) -> list[tuple[str, float]]:
        """Requests not yet finished, oldest first, with when they were made."""
        entries: Any = await self._redis.zrange(self.pending_key, 0, limit - 1, withscores=True)
        return [(m.decode() if isinstance(m, bytes) else str(m), float(s)) for m, s in entries]

    async def done(self, request_id: str) -> None:
        await self._redis.zrem(self.pending_key, request_id)

    async def append_event(self, record: CancellationRecord) -> str:
        """Add the decision to the actor's event stream (kept 30+ days) and poke subscribers."""
        key = self.stream_key(record.actor_pid)
        oldest = int((time.time() - RETENTION) * 1000)
        entry = await self._redis.xadd(key, {"rid": record.request_id, "status": record.status},
                                       minid=str(oldest), approximate=False)
        await self._redis.expire(key, RETENTION)
        entry_id = entry.decode() if isinstance(entry, bytes) else str(entry)
        await self._redis.publish(self.poke_channel(record.actor_pid), entry_id)
        return entry_id

    async def events_after(self, actor_pid: str, cursor: str, count: int = 100) -> list[tuple[str, str]]:
        """(entry id, request id) after `cursor` ("0" from the start), oldest first."""
        start = "-" if cursor == "0" else f"({cursor}"
        entries: Any = await self._redis.xrange(self.stream_key(actor_pid), min=start, max="+", count=count)
        out = []
        for entry_id, fields in entries:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            rid = fields.get(b"rid") or fields.get("rid")
            out.append((eid, rid.decode() if isinstance(rid, bytes) else str(rid)))
        return out

    async def last_event_id(self, actor_pid: str) -> str:
        entries: Any = await self._redis.xrevrange(self.stream_key(actor_pid), count=1)
        if not entries:
            return "0-0"
        entry_id = entries[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"


class Leases:
    """Named leases in Redis, held by one process at a time (this process's `token`)."""

    def __init__(self, redis: Redis, prefix: str, token: str) -> None:
        self._redis = redis
        self._p = f"{prefix}:lease"
        self._token = token

    async def take(self, name: str, ttl_ms: int) -> bool:
        """Take or renew the lease; True while this process holds it."""
        key = f"{self._p}:{name}"
        if await self._redis.set(key, self._token, nx=True, px=ttl_ms):
            return True
        return bool(await self._redis.eval(RENEW, 1, key, self._token, ttl_ms))

    async def give_back(self, name: str) -> None:
        await self._redis.eval(UNLOCK, 1, f"{self._p}:{name}", self._token)
