"""Cancellation requests in Redis: the record, the idempotency key, the per-appointment
slot, the pending index and the per-requester event stream.

A request comes into being in one script (record, key, slot and index entry, on keys of
one hash tag), and is decided in one (record and slot). The follow-ups of a decision
(event, notification, cache invalidation) are flags on the record, and the request stays
in the pending index until all are done, so a crash between steps is finished by the
worker instead of being lost; the event is appended once per decision whoever finishes.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis

from bff.domain.ids import Ids
from bff.domain.models import CancellationStatus
from bff.domain.timez import OSLO
from bff.store.audit import RECORD_ONCE_SCRIPT
from bff.store.leases import GIVE_BACK, Leases
from bff.store.slots import mget, replicated

log = structlog.get_logger(__name__)

RETENTION = 31 * 24 * 3600
"""Seconds decided requests, idempotency keys and events are kept (at least 30 days)."""
PENDING_RETENTION = 90 * 24 * 3600
BUCKETS = 16
"""Cancellation keys are spread over this many hash tags: a request's record, its
idempotency key, its appointment's slot and its pending-index entry share one (the
subject's bucket), so one script makes them together, on one Redis or one cluster node."""
REPAIR_AFTER = 60.0
"""Seconds after which a key that points at no request (left by a crash of an older
version, or by hand) is taken to be half-made and is repaired."""

CREATE = """
local idem = redis.call('get', KEYS[1])
if idem then return {'replay', idem} end
local slot = redis.call('get', KEYS[2])
if slot then
  local status = string.match(slot, '^[^|]*|([^|]*)')
  if status == 'PENDING' then return {'pending', slot} end
end
redis.call('set', KEYS[1], ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[4], 'EX', ARGV[5])
redis.call('set', KEYS[2], ARGV[1] .. '|PENDING|' .. ARGV[4], 'EX', ARGV[6])
redis.call('set', KEYS[3], ARGV[3], 'EX', ARGV[6])
redis.call('zadd', KEYS[4], ARGV[4], ARGV[1])
return {'created'}
"""
"""KEYS: the idempotency key, the appointment's slot, the record, the pending index (one
hash tag); ARGV: request id, fingerprint, record, now, retention, pending retention.
All four are written, or none: a crash cannot leave a key without its request, nor a
request outside the index the worker sweeps."""
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
local slot = redis.call('get', KEYS[2])
if slot and string.sub(slot, 1, string.len(ARGV[5]) + 1) == ARGV[5] .. '|' then
  redis.call('set', KEYS[2], ARGV[5] .. '|' .. ARGV[1], 'KEEPTTL')
end
return encoded
"""
"""KEYS: the record, its slot; ARGV: status, message, when, retention, request id.
PENDING → status once, with the slot, in one step."""
FLAG = """
local raw = redis.call('get', KEYS[1])
if not raw then return false end
local record = cjson.decode(raw)
record[ARGV[1]] = true
redis.call('set', KEYS[1], cjson.encode(record), 'KEEPTTL')
return 1
"""
DELETE_IF = GIVE_BACK
"""Delete a key only if it still holds the value seen (a half-made key being repaired)."""


@dataclass(frozen=True, slots=True)
class CancellationRecord:
    """One cancellation request and what became of it."""

    request_id: str
    actor_pid: str
    subject_pid: str
    source_id: str
    upstream_id: str
    status: CancellationStatus
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
    actor_relation: str = "self"
    """Who the requester is to the subject (self, parent, power_of_attorney), and their
    name as the directory gave it: for the subject's activity log."""
    actor_name: str = ""

    @property
    def decided(self) -> bool:
        return self.status.decided

    @property
    def open(self) -> bool:
        """Pending or accepted: no second request for the appointment may be made."""
        return self.status.open

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
    return CancellationRecord(**{**known, "status": CancellationStatus(known["status"])})


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def bucket_of(pseudonym: str) -> int:
    """The hash-tag bucket of a person's cancellation keys."""
    return hashlib.sha256(pseudonym.encode()).digest()[0] % BUCKETS


def new_request_id(bucket: int) -> str:
    """A UUID (v4) whose first hex digit is the bucket: a provider's answer names only the
    request id, and the record is found from it."""
    return f"{bucket:x}{str(uuid.uuid4())[1:]}"


def request_bucket(request_id: str) -> int | None:
    """The bucket a request id of ours names; None for an id we did not make."""
    try:
        uuid.UUID(request_id)
    except ValueError:
        return None
    return int(request_id[0], 16) % BUCKETS if len(request_id) == 36 else None


@dataclass(frozen=True, slots=True)
class Created:
    """What `CancellationStore.create` found: `created`, or the request already holding
    the key (`replay`) or the appointment (`pending`), as "request id|…|since"."""

    kind: str
    holder: str = ""

    @property
    def request_id(self) -> str:
        return self.holder.split("|", 1)[0]

    def fingerprint(self) -> str:
        parts = self.holder.split("|")
        return parts[1] if len(parts) > 1 else ""

    def older_than(self, seconds: float) -> bool:
        """Whether the holder was made `seconds` ago or more (values without a time are old)."""
        parts = self.holder.split("|")
        try:
            return time.time() - float(parts[2]) >= seconds
        except (IndexError, ValueError):
            return True


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class CancellationStore:
    """Reads and writes cancellation state."""

    def __init__(self, redis: Redis, prefix: str, ids: Ids) -> None:
        self._redis = redis
        self._p = f"{prefix}:cxl"
        self._ids = ids
        self.leases = Leases(redis, prefix)
        self._create = redis.register_script(CREATE)
        self._decide = redis.register_script(DECIDE)
        self._flag = redis.register_script(FLAG)
        self._append = redis.register_script(RECORD_ONCE_SCRIPT)
        self._delete_if = redis.register_script(DELETE_IF)

    async def first_delivery(self, source_id: str, message_id: str, ttl: int) -> bool:
        """True the first time a webhook message id is seen (replays are ignored)."""
        return bool(await self._redis.set(f"{self._p}:webhook:{source_id}:{digest(message_id)}", "1",
                                          nx=True, ex=ttl))

    async def forget_delivery(self, source_id: str, message_id: str) -> None:
        await self._redis.delete(f"{self._p}:webhook:{source_id}:{digest(message_id)}")

    def _tag(self, bucket: int) -> str:
        return f"{self._p}:{{b{bucket:x}}}"

    def record_key(self, request_id: str) -> str | None:
        bucket = request_bucket(request_id)
        return None if bucket is None else f"{self._tag(bucket)}:req:{request_id}"

    def idempotency_key(self, actor_pid: str, subject_pseudonym: str, key: str) -> str:
        """An idempotency key is the requester's, for one subject (the person whose
        appointment it is, named by the appointment id)."""
        return f"{self._tag(bucket_of(subject_pseudonym))}:idem:{self._ids.pseudonym(actor_pid)}:{digest(key)}"

    def slot_key(self, source_id: str, upstream_id: str, subject_pid: str, pseudonym: str | None = None) -> str:
        """The appointment's current request; `pseudonym`: the subject's, when the caller has it."""
        pseudonym = pseudonym or self._ids.pseudonym(subject_pid)
        return f"{self._tag(bucket_of(pseudonym))}:slot:{source_id}:{digest(upstream_id)}:{pseudonym}"

    def pending_key(self, bucket: int) -> str:
        return f"{self._tag(bucket)}:pending"

    def stream_key(self, actor_pid: str) -> str:
        return f"{self._p}:events:{{{self._ids.pseudonym(actor_pid)}}}"

    def poke_channel(self, actor_pid: str) -> str:
        return f"{self._p}:poke:{self._ids.pseudonym(actor_pid)}"

    def _orphan_key(self, source_id: str, request_id: str) -> str:
        return f"{self._p}:orphan:{source_id}:{digest(request_id)}"

    def bucket(self, subject_pid: str) -> int:
        return bucket_of(self._ids.pseudonym(subject_pid))

    async def get(self, request_id: str) -> CancellationRecord | None:
        key = self.record_key(request_id)
        return None if key is None else _load(await self._redis.get(key))

    async def get_many(self, request_ids: list[str]) -> list[CancellationRecord | None]:
        keys = [self.record_key(r) for r in request_ids]
        known = [k for k in keys if k is not None]
        found = iter([_load(raw) for raw in await mget(self._redis, known)] if known else [])
        return [next(found) if k is not None else None for k in keys]

    async def peek_idempotency(self, actor_pid: str, subject_pseudonym: str, key: str) -> Created | None:
        """The request already made with `key`, if any (as `create` would find it)."""
        found = _text(await self._redis.get(self.idempotency_key(actor_pid, subject_pseudonym, key)))
        return None if found is None else Created("replay", found)

    async def create(self, record: CancellationRecord, key: str, fingerprint: str) -> Created:
        """Store a new request (PENDING, not yet sent) with its idempotency key, its
        appointment's slot and its pending-index entry, in one step — unless the key or the
        appointment is taken already: then what holds it."""
        pseudonym = self._ids.pseudonym(record.subject_pid)
        bucket = bucket_of(pseudonym)
        keys = [self.idempotency_key(record.actor_pid, pseudonym, key),
                self.slot_key(record.source_id, record.upstream_id, record.subject_pid, pseudonym),
                f"{self._tag(bucket)}:req:{record.request_id}", self.pending_key(bucket)]
        found: Any = await self._create(keys=keys, args=[record.request_id, fingerprint,
                                                         orjson.dumps(asdict(record)), f"{time.time():.3f}",
                                                         RETENTION, PENDING_RETENTION])
        created = Created(*[_text(part) or "" for part in found])
        if created.kind == "created":
            await replicated(self._redis, keys[2])
        return created

    async def repair_idempotency(self, actor_pid: str, subject_pseudonym: str, key: str, seen: Created) -> None:
        """Drop an idempotency key whose request does not exist (if it is still as `seen`)."""
        log.warning("cancellation.repaired", what="idempotency_key")
        await self._delete_if(keys=[self.idempotency_key(actor_pid, subject_pseudonym, key)], args=[seen.holder])

    async def repair_slot(self, record: CancellationRecord, seen: Created) -> None:
        """Free an appointment's slot whose pending request does not exist (if still as `seen`)."""
        log.warning("cancellation.repaired", what="slot")
        await self._delete_if(keys=[self.slot_key(record.source_id, record.upstream_id, record.subject_pid)],
                              args=[seen.holder])

    async def latest_for(self, keys: list[tuple[str, str, str]]) -> list[str | None]:
        """The latest request id per (source id, upstream id, subject pid)."""
        if not keys:
            return []
        # A list asks for every row of one person: each pseudonym (an HMAC) is made once.
        pseudonyms = {pid: self._ids.pseudonym(pid) for pid in {pid for _, _, pid in keys}}
        raws = await mget(self._redis, [self.slot_key(s, u, pid, pseudonyms[pid]) for s, u, pid in keys])
        return [(_text(r) or "").split("|", 1)[0] or None for r in raws]

    async def mark(self, request_id: str, flag: str) -> None:
        """Set a follow-up flag (`sent`, `evented`, `notified`, `settled`) on the record."""
        key = self.record_key(request_id)
        if key is not None:
            await self._flag(keys=[key], args=[flag])

    async def decide(self, record: CancellationRecord, status: CancellationStatus, message: str | None,
                     at: datetime) -> CancellationRecord | None:
        """PENDING → `status`, once, with the appointment's slot: returns the decided record
        to the one caller that made the change, None to everyone else (already decided, or
        unknown)."""
        key = self.record_key(record.request_id)
        if key is None:
            return None
        encoded = await self._decide(
            keys=[key, self.slot_key(record.source_id, record.upstream_id, record.subject_pid)],
            args=[status.value, message or "", at.astimezone(OSLO).isoformat(), RETENTION, record.request_id])
        if not encoded:
            return None
        await replicated(self._redis, key)
        return _load(encoded)

    async def pending(self, limit: int = 100) -> list[tuple[str, float]]:
        """Requests not yet finished, oldest first, with when they were made (every bucket)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in range(BUCKETS):
                pipe.zrange(self.pending_key(bucket), 0, limit - 1, withscores=True)
            found: list[Any] = await pipe.execute()
        entries = sorted(((_text(m) or "", float(s)) for part in found for m, s in part), key=lambda e: e[1])
        return entries[:limit]

    async def done(self, request_id: str) -> None:
        bucket = request_bucket(request_id)
        if bucket is not None:
            await self._redis.zrem(self.pending_key(bucket), request_id)

    async def append_event(self, record: CancellationRecord) -> str | None:
        """Add the decision to the requester's event stream (kept 30+ days) and poke
        subscribers — once per decision: None when it was appended before."""
        key = self.stream_key(record.actor_pid)
        oldest = int((time.time() - RETENTION) * 1000)
        # Once per decision, whoever finishes it and however often: the marker shares the
        # stream's hash tag.
        entry = await self._append(keys=[key, f"{key}:seen:{record.request_id}"],
                                   args=[str(oldest), RETENTION, "rid", record.request_id, "status",
                                         record.status.value, RETENTION])
        if not entry:
            return None
        entry_id = _text(entry) or ""
        await self._redis.publish(self.poke_channel(record.actor_pid), entry_id)
        return entry_id

    async def record_orphan(self, source_id: str, request_id: str, status: str, message: str | None) -> None:
        """Keep a provider's answer about a request this BFF has no record of (its state was
        lost, say): answered, kept for operators for the retention period, never dropped."""
        entry = orjson.dumps({"source": source_id, "requestId": request_id, "status": status, "message": message,
                              "at": time.time()})
        await self._redis.set(self._orphan_key(source_id, request_id), entry, ex=RETENTION)

    async def events_after(self, actor_pid: str, cursor: str, count: int = 100) -> list[tuple[str, str]]:
        """(entry id, request id) after `cursor` ("0" from the start), oldest first."""
        start = "-" if cursor == "0" else f"({cursor}"
        entries: Any = await self._redis.xrange(self.stream_key(actor_pid), min=start, max="+", count=count)
        out = []
        for entry_id, fields in entries:
            rid = fields.get(b"rid") or fields.get("rid")
            out.append((_text(entry_id) or "", _text(rid) or ""))
        return out

    async def last_event_id(self, actor_pid: str) -> str:
        entries: Any = await self._redis.xrevrange(self.stream_key(actor_pid), count=1)
        if not entries:
            return "0-0"
        return _text(entries[0][0]) or "0-0"
