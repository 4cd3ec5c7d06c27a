"""The audit log: every read and every cancellation of a person's data, as a Redis
Stream per person (the subject), so the citizen-facing access log ("who has seen my
appointments") can be built from it. Actor and subject are keyed pseudonyms; no health
detail is written. When Redis cannot take an entry it is written to the log instead, so
no access goes unrecorded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bff.domain.ids import Ids

log = structlog.get_logger(__name__)
AUDIT_RETENTION = 396 * 24 * 3600
"""Seconds audit entries are kept: 13 months (the citizen's activity log shows them)."""
APPEND_LUA = """
local function append(key, argv, first, last)
  local id = redis.call('xadd', key, 'MINID', '~', argv[first], '*', unpack(argv, first + 2, last))
  redis.call('expire', key, argv[first + 1])
  return id
end
"""
"""How an entry is appended to a stream, for every script that appends one (audit entries,
cancellation events): ARGV from `first` to `last` are the oldest entry id to keep, the
stream's TTL, then the entry's fields and values. Entries older than the retention are
dropped (by whole stream nodes: never one younger), and the stream is kept as long; the
new entry's id is returned."""
RECORD_SCRIPT = APPEND_LUA + "append(KEYS[1], ARGV, 1, #ARGV)\n"
"""One entry: one command, so one light round trip."""
RECORD_ONCE_SCRIPT = APPEND_LUA + """
if not redis.call('set', KEYS[2], '1', 'NX', 'EX', ARGV[#ARGV]) then return false end
return append(KEYS[1], ARGV, 1, #ARGV - 1)
"""
"""One entry, once for the marker KEYS[2] (kept for ARGV's last value, in seconds): what
two processes may both record (a provider's decision) appears once. Returns the entry's
id, or nil when the marker was there already."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, as the subject's activity log tells it: `relation` self, parent or
    power_of_attorney; `name` as the person directory gave it; `channel` web, calendar or
    subscription."""

    relation: str = "self"
    name: str = ""
    channel: str = "web"


SELF = Actor()


class AuditLog:
    """Writes audit entries."""

    def __init__(self, redis: Redis, prefix: str, ids: Ids) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ids = ids
        self._record = redis.register_script(RECORD_SCRIPT)
        self._record_once = redis.register_script(RECORD_ONCE_SCRIPT)

    def stream_key(self, subject_pid: str) -> str:
        return f"{self._prefix}:audit:{{{self._ids.pseudonym(subject_pid)}}}"

    async def record(self, actor_pid: str, subject_pid: str, action: str, outcome: str, what: str = "",
                     actor: Actor = SELF) -> None:
        """`action`: list, read, cancel, decided, subscribe; `outcome`: ok, a status or a
        refusal code; `what`: which sources or which object (ids, never content); `actor`:
        who the actor is to the subject, for the citizen's activity log."""
        entry = self._entry(actor_pid, subject_pid, action, outcome, what, actor)
        try:
            await self._record(keys=[self.stream_key(subject_pid)], args=_script_args(entry))
        except (RedisError, OSError) as exc:
            log.warning("audit.fallback", error=type(exc).__name__, **entry)

    async def record_once(self, marker: str, actor_pid: str, subject_pid: str, action: str, outcome: str,
                          what: str = "", actor: Actor = SELF) -> None:
        """`record`, once for `marker` (e.g. a request id), however often it is called."""
        entry = self._entry(actor_pid, subject_pid, action, outcome, what, actor)
        key = self.stream_key(subject_pid)
        try:
            await self._record_once(keys=[key, f"{key}:once:{marker}"], args=[*_script_args(entry), AUDIT_RETENTION])
        except (RedisError, OSError) as exc:
            log.warning("audit.fallback", error=type(exc).__name__, **entry)

    def appendable(self, actor_pid: str, subject_pid: str, action: str, outcome: str, what: str = "",
                   actor: Actor = SELF) -> tuple[str, list[Any]]:
        """An entry as RECORD_SCRIPT appends it, for a script that appends it along with
        other work: the stream's key, and the ARGV (the oldest entry id to keep, the
        stream's TTL, then the entry's fields and values)."""
        entry = self._entry(actor_pid, subject_pid, action, outcome, what, actor)
        return self.stream_key(subject_pid), _script_args(entry)

    async def newest(self, subject_pid: str, count: int, before: str | None = None) -> list[tuple[str, dict[str, str]]]:
        """The subject's entries, newest first: up to `count`, older than the entry id
        `before` when given (a position that stays put while new entries arrive)."""
        found: Any = await self._redis.xrevrange(self.stream_key(subject_pid), max=f"({before}" if before else "+",
                                                 min="-", count=count)
        return [(_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}) for entry_id, fields in found]

    def _entry(self, actor_pid: str, subject_pid: str, action: str, outcome: str, what: str,
               actor: Actor) -> dict[str, str]:
        return {"actor": self._ids.pseudonym(actor_pid), "subject": self._ids.pseudonym(subject_pid),
                "action": action, "outcome": outcome, "what": what, "at": f"{time.time():.3f}",
                "relation": actor.relation, "actor_name": actor.name, "channel": actor.channel}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _script_args(entry: dict[str, str]) -> list[Any]:
    oldest = int((time.time() - AUDIT_RETENTION) * 1000)
    return [oldest, AUDIT_RETENTION, *[part for item in entry.items() for part in item]]
