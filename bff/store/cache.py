"""The Redis cache: provider answers per (source, window, day, person), person-directory
records, and short leases that make concurrent misses cause one upstream call across all
BFF processes sharing the Redis.

Every key of a person carries the person's pseudonym as its hash tag (`{…}`), so on a
Redis Cluster a person's entries, leases and generation share one slot; what one round
trip asks of several persons is split into one command per slot there (`bff.store.slots`).

Keys name a person only by keyed pseudonym; values leave the pid out where the key
already implies it, and everything expires. When Redis fails, the cache stops trying
for a moment (`OUTAGE_BACKOFF`) and every call degrades to a miss; it is used again as
soon as Redis answers: the list never depends on the cache being up.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar, cast

import structlog
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bff.domain.ids import Ids
from bff.runtime.answer_first import later
from bff.runtime.metrics import Metrics
from bff.store.audit import APPEND_LUA
from bff.store.connection import SOCKET_TIMEOUT, clustered, lane_of
from bff.store.lane import Lane
from bff.store.slots import Part, join, slot, split

log = structlog.get_logger(__name__)
WINDOWS = ("future", "history")
OUTAGE_BACKOFF = 1.0
"""Seconds to skip Redis after it failed, so an outage costs requests nothing."""
MGET_SCRIPT = "return redis.call('mget', unpack(KEYS))"
"""MGET in a cluster pipeline (which refuses MGET itself): the keys of one slot."""
LOCK_SCRIPT = """
local out = {}
for i = 1, #KEYS, 2 do
  out[i] = redis.call('set', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
  out[i + 1] = redis.call('get', KEYS[i + 1])
end
return out
"""
"""For each (lease key, entry key): take the lease if free (1 or 0), then read the entry
(nil when absent). One command for all of a request's sources: every reply costs the
client more than the work in Redis."""
READ_OR_LEASE_SCRIPT = """
local out = {}
for i = 1, #KEYS, 2 do
  local value = redis.call('get', KEYS[i + 1])
  out[i] = value
  out[i + 1] = (not value and redis.call('set', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[1 + (i + 1) / 2])) and 1 or 0
end
return out
"""
"""For each (lease key, entry key): read the entry, and when there is none take the lease
if free (1 or 0); ARGV: the token, then each pair's lease in ms. A cold read then leases
what it must fetch in the same round trip (each costs the client ~0.4 ms of CPU here)."""
WRITE_SCRIPT = """
local entries, generations = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, entries do
  redis.call('set', KEYS[i], ARGV[2 + 2 * i], 'EX', ARGV[3 + 2 * i])
end
for i = 1, generations do
  redis.call('set', KEYS[entries + i], ARGV[3 + 2 * entries + i], 'EX', ARGV[4 + 2 * entries + generations])
end
for i = entries + generations + 1, #KEYS do
  if redis.call('get', KEYS[i]) == ARGV[1] then redis.call('del', KEYS[i]) end
end
return 1
"""
"""Every entry write of a flush as one command: KEYS are the entries, then the generations
to renew, then the leases to release (if the token ARGV[1] still holds them); ARGV: the
token, the number of entries and of generations, each entry's value and TTL, each
generation's new token, the generations' TTL. In this order: a process that sees a new
generation or a released lease finds the entry written. One command, because each
command costs redis-py client CPU."""
APPEND_IF_CURRENT_SCRIPT = APPEND_LUA + """
local limit, k = tonumber(ARGV[1]), 0
if limit >= 0 then
  k = 1
  local counted = redis.call('incr', KEYS[1])
  if counted == 1 then redis.call('expire', KEYS[1], ARGV[2]) end
  if limit > 0 and counted > limit then return -counted end
end
local n = tonumber(ARGV[3])
for i = 1, n do
  if redis.call('get', KEYS[k + i]) ~= ARGV[3 + i] then
    return redis.call('mget', unpack(KEYS, k + 1, k + n))
  end
end
local at = n + 4
for i = k + n + 1, #KEYS do
  local count = tonumber(ARGV[at])
  append(KEYS[i], ARGV, at + 1, at + count)
  at = at + count + 1
end
return 1
"""
"""KEYS: a rate-limit window (when ARGV[1] ≥ 0), n generations, then streams; ARGV: the
rate limit (-1: count nothing; 0: count, no limit), the window's TTL, n, the generations
expected, then per stream the number of its arguments and those arguments (the oldest id
to keep, the TTL, the entry's fields and values). Counts the request first and stops at
once, appending nothing, when it is over the limit (-count). Appends to the streams only
if every generation is as expected (1); else returns the generations as they are."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Count:
    """A request to count in a rate-limit window: its key, the limit (0: none) and the
    window key's TTL in seconds."""

    key: str
    limit: int
    ttl: int


class Limited(Exception):
    """The request was counted and is over its rate limit."""

    def __init__(self, count: int) -> None:
        super().__init__(f"request {count} in this window")
        self.count = count
Write = tuple[dict[str, bytes], int, list[str], list[str], asyncio.Future[list[Any]]]
"""Entries, their TTL, generations to renew, leases to release, and who waits for it."""
Command = tuple[str | None, list[str], list[Any]]
"""A script (or None for MGET), its keys and its ARGV."""
GENERATION_TTL = 24 * 3600
NO_GENERATION = b""
"""What no generation is (they are random hex tokens): expected by a read that only wants
the generations as they are."""


class AppointmentCache:
    """Reads and writes cached provider answers; every method survives a Redis outage."""

    def __init__(self, redis: Redis, prefix: str, ids: Ids, metrics: Metrics) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ids = ids
        self._metrics = metrics
        self._scripts = {script: redis.register_script(script)
                         for script in (READ_OR_LEASE_SCRIPT, WRITE_SCRIPT, APPEND_IF_CURRENT_SCRIPT)}
        self._clustered = clustered(redis)
        self._node_lanes: dict[str, Lane | None] = {}
        """On a cluster: a lane per primary, by node name, for a reused answer's one command
        (on a single Redis the client itself lanes it: `bff.store.connection.LANED`)."""
        self._down_until = 0.0
        self._token = secrets.token_hex(8)
        self._held: set[str] = set()
        """Entry keys whose fetch lease this process holds (released once, see `write_behind`)."""
        self._queue: list[tuple[Callable[[Pipeline], None], asyncio.Future[list[Any]]]] = []
        self._writes: list[tuple[dict[str, bytes], int, list[str], list[str], asyncio.Future[list[Any]]]] = []
        """Entry writes waiting for the next pipeline (entries, TTL, persons whose generation
        to renew, leases to release): they leave as one WRITE_SCRIPT."""
        self._reads: list[tuple[list[str], list[int] | None, asyncio.Future[list[Any]]]] = []
        """Entry reads waiting for the next pipeline, with the lease in ms to take for a
        missing entry (or None): they leave as one MGET and one script."""
        self._sending: set[asyncio.Task[None]] = set()
        self._writing: set[asyncio.Task[None]] = set()
        self._queued = 0
        """Writes waiting for an answer to be sent (`write_behind`, `release_behind`)."""
        self._unwritten: dict[str, bytes | Deferred] = {}
        """Entries written behind (`write_behind`) and not yet in Redis: this process reads
        them from here."""

    def key(self, source_id: str, window: str, day: date, pid: str) -> str:
        return f"{self._prefix}:appts:{source_id}:{window}:{day.isoformat()}:{{{self._ids.pseudonym(pid)}}}"

    def person_key(self, pid: str) -> str:
        return f"{self._prefix}:person:{{{self._ids.pseudonym(pid)}}}"

    def generation_key(self, pseudonym: str) -> str:
        """A token renewed whenever anything a person's answers are built from changes."""
        return f"{self._prefix}:gen:{{{pseudonym}}}"

    async def bump(self, pids: Iterable[str]) -> None:
        """A person's data changed (new entries, an invalidation, a cancellation): answers
        cached for them must not be served again."""
        changed = list(pids)
        if changed:
            await self._write({}, 0, changed, [], "bump")

    async def generations(self, pseudonyms: list[str], count: Count | None = None) -> list[bytes] | None:
        """The persons' generations (by pseudonym); None when Redis cannot say or a person
        has none yet — then nothing may be reused. With `count`, the same round trip
        counts the request in its rate-limit window (`append_if_current` expecting what no
        generation is, so it appends nothing and answers the generations): over the limit,
        `Limited` is raised. Raises RedisError then when Redis fails: nothing is counted."""
        found: list[bytes | None] | None
        if count is not None:
            found = await self.append_if_current(pseudonyms, [NO_GENERATION] * len(pseudonyms), [], count)
            if found is None:  # every generation "as expected": none is what it should be
                return None
        else:
            if time.monotonic() < self._down_until:
                return None
            try:
                found = [_as_bytes(v) for v in await self._read([self.generation_key(p) for p in pseudonyms])]
            except (RedisError, OSError):
                return None
        if any(v is None for v in found):
            return None
        return cast(list[bytes], found)

    async def append_if_current(self, pseudonyms: list[str], expected: Iterable[bytes],
                                appends: list[tuple[str, list[Any]]],
                                count: Count | None = None) -> list[bytes | None] | None:
        """If every person's generation is still `expected`, append the stream entries
        `appends` (each a stream key and RECORD_SCRIPT's ARGV), and return None; else
        return the generations as they are, and append nothing. One round trip: a reused
        answer's audit entries are written by the command that confirms it is current,
        and the request is counted in its rate-limit window (`count`) by it too — over the
        limit, `Limited` is raised and nothing appended.
        Raises RedisError when Redis fails (or is being skipped after a failure): nothing
        is appended or counted then."""
        if time.monotonic() < self._down_until:
            raise RedisConnectionError("Redis is skipped after a failure")
        wanted = list(expected)
        generations = [self.generation_key(p) for p in pseudonyms]
        # One command — or, on a cluster, one per slot: a slot whose generations still hold
        # appends its streams even if another's changed (the answer is then computed and
        # audited again: a read may be recorded twice, never not at all).
        parts: dict[int, tuple[list[int], list[tuple[str, list[Any]]]]] = {}
        for at, key in enumerate(generations):
            parts.setdefault(slot(key) if self._clustered else 0, ([], []))[0].append(at)
        for key, args in appends:
            parts.setdefault(slot(key) if self._clustered else 0, ([], []))[1].append((key, args))
        counted_in = None
        if count is not None:
            counted_in = slot(count.key) if self._clustered else 0
            if len(parts.keys() | {counted_in}) > 1:
                # Several slots (a cluster, and persons in more than one): count first, on its
                # own, so that no slot records a read the limit then refuses.
                await self._counted_alone(count)
                count = None
            else:
                parts.setdefault(counted_in, ([], []))
        commands: list[tuple[list[str], list[Any]]] = []
        for where, (mine, streams) in parts.items():
            counter = count is not None and where == counted_in
            commands.append((([count.key] if count is not None and counter else []) +
                             [generations[at] for at in mine] + [key for key, _ in streams],
                             [*((count.limit, count.ttl) if count is not None and counter else (-1, 0)),
                              len(mine), *[wanted[at] for at in mine],
                              *[part for _, args in streams for part in (len(args), *args)]]))
        try:
            if len(commands) == 1:
                replies = [await self._append_if_current(*commands[0])]
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for keys, argv in commands:
                        pipe.eval(APPEND_IF_CURRENT_SCRIPT, len(keys), *keys, *argv)
                    replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed("reuse", exc)
            raise
        over = [-reply for reply in replies if isinstance(reply, int) and reply < 0]
        if over:
            raise Limited(over[0])
        if all(reply == 1 for reply in replies):
            return None
        current: list[bytes | None] = list(wanted)
        for (mine, _), reply in zip(parts.values(), replies, strict=True):
            if reply != 1:
                for at, value in zip(mine, reply, strict=True):
                    current[at] = _as_bytes(value)
        return current

    async def _append_if_current(self, keys: list[str], args: list[Any]) -> Any:
        """One APPEND_IF_CURRENT_SCRIPT: straight through a lane to its server (on a single
        Redis the client's own, `bff.store.connection.lane_of`: a reused answer's one
        command then skips redis-py's script, command and reply layers, ~4 % of its CPU);
        what the lane cannot do (a lost connection; on a cluster a redirect: the slot
        moved, or a node gone) is done by redis-py's client, which connects again (and on
        a cluster follows redirects and learns the new map).
        A lane that timed out may have had its command run: sent again, the read is then
        audited twice, never not at all (as with several slots, above)."""
        script = self._scripts[APPEND_IF_CURRENT_SCRIPT]
        lane = self._node_lane(keys[0]) if self._clustered else lane_of(self._redis)
        if lane is None:
            return await script(keys=keys, args=args)
        try:
            return await lane.evalsha(script.sha, APPEND_IF_CURRENT_SCRIPT, keys, args)
        except (ResponseError, RedisConnectionError, RedisTimeoutError):
            self._forget_node_lanes()  # chosen again from the (possibly new) slot map next time
            return await script(keys=keys, args=args)

    def _forget_node_lanes(self) -> None:
        for lane in self._node_lanes.values():
            if lane is not None:
                lane.close()
        self._node_lanes.clear()

    def _node_lane(self, key: str) -> Lane | None:
        node = cast(RedisCluster, self._redis).get_node_from_key(key)
        if node is None:
            return None
        if node.name not in self._node_lanes:
            self._node_lanes[node.name] = Lane.to_node(node, SOCKET_TIMEOUT)
        return self._node_lanes[node.name]

    async def _counted_alone(self, count: Count) -> None:
        try:
            reply = await self._scripts[APPEND_IF_CURRENT_SCRIPT](keys=[count.key], args=[count.limit, count.ttl, 0])
        except (RedisError, OSError) as exc:
            self._failed("reuse", exc)
            raise
        if isinstance(reply, int) and reply < 0:
            raise Limited(-reply)

    def _failed(self, operation: str, exc: BaseException) -> None:
        """Redis failed: skip it for `OUTAGE_BACKOFF`, and count and log the failure."""
        self._down_until = time.monotonic() + OUTAGE_BACKOFF
        self._metrics.redis_errors.labels(operation).inc()
        log.warning("cache.redis_failed", operation=operation, error=type(exc).__name__)

    async def _safely(self, operation: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            try:
                return await call()
            except RedisConnectionError:
                # A pooled connection from before a Redis restart fails once; a new one works.
                return await call()
        except (RedisError, OSError) as exc:
            self._failed(operation, exc)
            return fallback

    async def _send(self, build: Callable[[Pipeline], None]) -> list[Any]:
        """Run the commands `build` adds, in the pipeline that leaves once the event loop
        has run everything now ready: operations that tasks start together (a request's
        six sources reading, then leasing, their entries) share one round trip. A round
        trip costs the client more CPU than the commands in it."""
        future = self._enqueue()
        self._queue.append((build, future))
        return await future

    async def _read(self, keys: list[str], lease_ms: list[int] | None = None) -> list[Any]:
        """The values of `keys`, read in the next pipeline's one MGET; with `lease_ms`, in
        its one READ_OR_LEASE_SCRIPT instead: then each value is followed by whether its
        lease was taken (1 or 0)."""
        future = self._enqueue()
        self._reads.append((keys, lease_ms, future))
        return await future

    async def _read_now(self, keys: list[str], lease_ms: list[int]) -> list[Any]:
        """`_read` with leases, as commands of their own (one per slot), sent at once."""
        parts = self._leasing(keys, lease_ms)
        replies = [await self._command(READ_OR_LEASE_SCRIPT, part.keys, [self._token, *part.argv]) for part in parts]
        return join(parts, replies, len(keys), 2)

    def _leasing(self, keys: list[str], lease_ms: list[int]) -> list[Part]:
        """READ_OR_LEASE_SCRIPT's commands for `keys` (each with its lease in ms): each key's
        lease key and the key; one command per slot on a cluster."""
        return split([name for key in keys for name in (f"{key}:lease", key)], 2, lease_ms, 1, by_slot=self._clustered)

    def _enqueue(self) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        if not self._queue and not self._reads and not self._writes:
            loop.call_soon(self._flush)
        return loop.create_future()

    def _flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self._execute_queued())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _execute_queued(self) -> None:
        """Send what is queued once this task runs — a loop turn after `_flush`, so what
        tasks queued in that turn goes too. A request's person lookup queues its read one
        turn after its read-ahead (the DataLoader's dispatch is a turn later): waiting a
        turn lets the two leave in one round trip."""
        batch, self._queue = self._queue, []
        reads, self._reads = self._reads, []
        writes, self._writes = self._writes, []
        await self._execute(batch, reads, writes)

    async def _execute(self, batch: list[tuple[Callable[[Pipeline], None], asyncio.Future[list[Any]]]],
                       reads: list[tuple[list[str], list[int] | None, asyncio.Future[list[Any]]]],
                       writes: list[tuple[dict[str, bytes], int, list[str], list[str], asyncio.Future[list[Any]]]],
                       ) -> None:
        waiting = [(build, future) for build, future in batch if not future.done()]
        readers = [(keys, future) for keys, lease, future in reads if lease is None and not future.done()]
        leasers = [(keys, lease, future) for keys, lease, future in reads if lease is not None and not future.done()]
        writers = [w for w in writes if not w[-1].done()]
        # (script, or None for MGET; keys; ARGV): one command each for the reads, the
        # leasing reads and the writes — one per hash slot of each on a cluster.
        commands: list[Command] = []
        read_keys = [key for keys, _ in readers for key in keys]
        read_parts = split(read_keys, 1, by_slot=self._clustered) if readers else []
        commands += [(None, part.keys, []) for part in read_parts]
        leased_keys = [key for keys, _, _ in leasers for key in keys]
        lease_parts = self._leasing(leased_keys, [ms for _, leases, _ in leasers for ms in leases]) if leasers else []
        commands += [(READ_OR_LEASE_SCRIPT, part.keys, [self._token, *part.argv]) for part in lease_parts]
        write_commands = self._write_commands(writers) if writers else []
        commands += write_commands
        sizes: list[int] = []
        try:
            if not waiting and len(commands) == 1:
                results = [await self._command(*commands[0])]
            elif not waiting and not self._clustered:
                # One lane carries them (`bff.store.connection.LANED`): one round trip, and
                # each reply, or its error, in its place as a pipeline's would be.
                results = await asyncio.gather(*(self._command(*command) for command in commands),
                                               return_exceptions=True)
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for script, keys, argv in commands:
                        if script is None and not self._clustered:
                            pipe.mget(keys)
                        else:  # a cluster pipeline has no MGET: it reads one slot by script
                            pipe.eval(script or MGET_SCRIPT, len(keys), *keys, *argv)
                    for build, _ in waiting:
                        before = len(pipe)
                        build(pipe)
                        sizes.append(len(pipe) - before)
                    results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else RedisConnectionError("pipeline cancelled")
            futures = [f for _, f in waiting] + [f for _, f in readers] + [f for *_, f in leasers] + \
                [f for *_, f in writers]
            for future in futures:
                if not future.done():
                    future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        if readers:
            replies, results = results[:len(read_parts)], results[len(read_parts):]
            _share(join(read_parts, replies, len(read_keys), 1), readers, 1)
        if leasers:
            replies, results = results[:len(lease_parts)], results[len(lease_parts):]
            _share(join(lease_parts, replies, len(leased_keys), 2), [(keys, future) for keys, _, future in leasers], 2)
        if writers:
            outcomes, results = results[:len(write_commands)], results[len(write_commands):]
            failed = next((o for o in outcomes if isinstance(o, Exception)), None)
            for *_, future in writers:
                if not future.done():
                    if failed is not None:
                        future.set_exception(failed)
                    else:
                        future.set_result([])
        start = 0
        for (_, future), size in zip(waiting, sizes, strict=True):
            part, start = results[start:start + size], start + size
            if future.done():
                continue
            error = next((r for r in part if isinstance(r, Exception)), None)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(part)

    async def _command(self, script: str | None, keys: list[str], argv: list[Any]) -> Any:
        """One command on its own: no pipeline to build, and a script by its SHA1 (redis-py's
        registered script loads it when Redis does not know it yet). A pipeline of one costs
        the client more CPU (bench/results/NOTES.md)."""
        if script is None:
            return await self._redis.mget(keys)
        return await self._scripts[script](keys=keys, args=argv)

    def _write_commands(self, writers: list[Write]) -> list[Command]:
        """The WRITE_SCRIPT commands for the writes of `writers`: one for all, or one per hash
        slot on a cluster (a person's entries, generation and leases share a slot, so each
        person's writes still land in the script's order)."""
        by_slot: dict[int, tuple[list[tuple[str, bytes, int]], list[str], list[str]]] = {}

        def part(key: str) -> tuple[list[tuple[str, bytes, int]], list[str], list[str]]:
            return by_slot.setdefault(slot(key) if self._clustered else 0, ([], [], []))

        for items, ttl, _, _, _ in writers:
            for key, value in items.items():
                part(key)[0].append((key, value, ttl))
        for key in dict.fromkeys(key for _, _, renew, _, _ in writers for key in renew):
            part(key)[1].append(key)
        for key in dict.fromkeys(f"{key}:lease" for _, _, _, releasing, _ in writers for key in releasing):
            part(key)[2].append(key)
        return [(WRITE_SCRIPT, [*[key for key, _, _ in entries], *generations, *leases],
                 [self._token, len(entries), len(generations),
                  *[piece for _, value, ttl in entries for piece in (value, ttl)],
                  *[secrets.token_hex(8) for _ in generations], GENERATION_TTL])
                for entries, generations, leases in by_slot.values()]

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []

        held, asked = self._split(keys)

        async def read() -> list[bytes | None]:
            return [_as_bytes(v) for v in await self._read(asked)]

        nothing: list[bytes | None] = [None] * len(asked)
        return _merged(keys, held, asked, await self._safely("read", read, nothing) if asked else nothing)

    async def read_or_lease(self, keys: list[str], lease: float | list[float],
                            now: bool = False) -> tuple[list[bytes | None], set[str]]:
        """Each key's entry, and the fetch lease of each key without one, where it is free
        (held leases are released by `write_behind`, `release_many` or `release_behind`);
        `lease` is in seconds, one for all keys or one per key. Without Redis: no entries
        and no leases — the caller then goes the way of `lock_many`. `now`: sent at once,
        on its own, not in the round trip the loop turn's other reads share (two turns
        later: under load, milliseconds)."""
        seconds = dict(zip(keys, lease if isinstance(lease, list) else [lease] * len(keys), strict=True))
        held, asked = self._split(keys)

        async def read() -> tuple[list[bytes | None], set[str]]:
            ms = [int(seconds[key] * 1000) for key in asked]
            found = await (self._read_now(asked, ms) if now else self._read(asked, ms))
            taken = {key for key, ok in zip(asked, found[1::2], strict=True) if ok}
            self._held |= taken
            return [_as_bytes(v) for v in found[0::2]], taken

        nothing: tuple[list[bytes | None], set[str]] = ([None] * len(asked), set())
        values, taken = await self._safely("read", read, nothing) if asked else nothing
        return _merged(keys, held, asked, values), taken

    def _split(self, keys: list[str]) -> tuple[dict[str, bytes | Deferred], list[str]]:
        """The entries of `keys` written behind and still in memory, taken now (their write
        may finish, and drop them from memory, while the others are read), and the keys to
        ask Redis for."""
        held = {key: self._unwritten[key] for key in keys if key in self._unwritten}
        return held, [key for key in keys if key not in held]

    def write_behind(self, items: Mapping[str, bytes | Deferred], ttl: int, changed: Iterable[str] = ()) -> None:
        """Write entries — the persons in `changed` get a new generation, and the leases this
        process holds on the entries are released, in the same round trip (after the writes,
        so a process waiting on a lease finds the entry when the lease is gone) — once the
        answer is sent (`answer_first`), encoding them then when given as `Deferred`. A
        provider's answer is used at once. Until written, this process reads the entries from memory;
        other processes keep waiting on the leases, which the write releases. `aclose`
        waits for writes under way."""
        if not items:
            return
        releasing = self._hand_over(items.keys())
        self._unwritten.update(items)
        changed = list(changed)

        self._behind(lambda: self._start_write(items, ttl, changed, releasing))

    def _behind(self, start: Callable[[], None]) -> None:
        """Start a write once the answer is sent (`answer_first.later`), counted meanwhile."""
        self._queued += 1

        def started() -> None:
            self._queued -= 1
            start()

        later(started)

    def _start_write(self, items: Mapping[str, bytes | Deferred], ttl: int, changed: list[str],
                     releasing: list[str]) -> None:
        def written(done: asyncio.Task[None]) -> None:
            self._writing.discard(done)
            for key, value in items.items():
                if self._unwritten.get(key) is value:
                    del self._unwritten[key]

        # An entry invalidated (or written again) since it was queued is not written: it would
        # bring back what an invalidation removed.
        current = {key: _made(value) for key, value in items.items() if self._unwritten.get(key) is value}
        task = asyncio.get_running_loop().create_task(self._write(current, ttl, changed, releasing))
        self._writing.add(task)
        task.add_done_callback(written)

    def release_behind(self, keys: Iterable[str]) -> None:
        """Release this process's leases on `keys`, with the request's writes (`write_behind`)."""
        releasing = self._hand_over(keys)
        if releasing:
            self._behind(lambda: self._start_write({}, 0, [], releasing))

    async def settled(self) -> None:
        """Return once every write queued behind an answer has been started and has ended
        (a queued one starts within `answer_first.MAX_DELAY`)."""
        while self._queued or self._writing:
            if self._writing:
                await asyncio.gather(*self._writing, return_exceptions=True)
            else:
                await asyncio.sleep(0.005)

    async def aclose(self) -> None:
        """Let the writes under way finish (at shutdown: an answer fetched is not thrown away)."""
        await self.settled()
        self._forget_node_lanes()

    def _hand_over(self, keys: Iterable[str]) -> list[str]:
        """The leases this process holds on `keys`: they are no longer counted as held, the
        caller releases them (writing the entries, or on their own)."""
        releasing = [key for key in keys if key in self._held]
        self._held.difference_update(releasing)
        return releasing

    async def _write(self, items: dict[str, bytes], ttl: int, changed: list[str], releasing: list[str],
                     operation: str = "write") -> None:
        """Write entries, renew the `changed` persons' generations (a fresh random token, not
        a counter: after a flush or an expiry a counter would start again and could match an
        answer kept under its earlier value) and release leases, in the next pipeline's one
        WRITE_SCRIPT."""
        renew = [self.generation_key(self._ids.pseudonym(pid)) for pid in changed]

        async def send() -> None:
            future = self._enqueue()
            self._writes.append((items, ttl, renew, releasing, future))
            await future

        await self._safely(operation, send, None)

    async def invalidate(self, source_id: str, pid: str, day: date) -> None:
        """Forget what a source said about one person today (after a change there)."""
        keys = [self.key(source_id, w, day, pid) for w in WINDOWS]
        for key in keys:
            self._unwritten.pop(key, None)

        async def delete() -> None:
            await self._redis.delete(*keys)

        await self._safely("invalidate", delete, None)
        await self.bump([pid])

    async def lock_many(self, keys: Iterable[str], lease: float) -> tuple[set[str], dict[str, bytes | None]]:
        """Take the fetch lease for each key not already leased; returns those taken, and
        each key's entry as it is once its lease is taken (read in the same round trip: an
        entry written by a process that released its lease just before is seen, not fetched
        again). Without Redis every lease is "taken" and nothing is known: the process
        then fetches on its own."""
        wanted = list(keys)
        parts = split([name for key in wanted for name in (f"{key}:lease", key)], 2, by_slot=self._clustered)

        def build(pipe: Pipeline) -> None:
            for part in parts:
                pipe.eval(LOCK_SCRIPT, len(part.keys), *part.keys, self._token, int(lease * 1000))

        async def take() -> tuple[set[str], dict[str, bytes | None]]:
            if not wanted:
                return set(), {}
            results = join(parts, await self._send(build), len(wanted), 2)
            taken = {key for key, ok in zip(wanted, results[0::2], strict=True) if ok}
            self._held |= taken
            values = {key: _as_bytes(v) for key, v in zip(wanted, results[1::2], strict=True)}
            return taken, values

        return await self._safely("lock", take, (set(wanted), {}))

    async def leased(self, keys: list[str]) -> list[bool]:
        """Whether someone still holds each key's lease. When Redis cannot say (it timed
        out a moment ago, say, because the event loop was busy) the answer is yes: a caller
        waiting for another process's entry keeps waiting, up to its deadline, instead of
        reporting that process's fetch as failed."""

        def build(pipe: Pipeline) -> None:
            for key in keys:
                pipe.exists(f"{key}:lease")

        async def check() -> list[bool]:
            return [bool(n) for n in await self._send(build)]

        return await self._safely("lock", check, [True] * len(keys))

    async def release_many(self, keys: Iterable[str]) -> None:
        """Release this process's leases on `keys` that writing their entries has not."""
        held = self._hand_over(keys)
        if held:
            await self._write({}, 0, [], held, "unlock")


class Deferred:
    """An entry's bytes, made when first needed. A provider's answer written behind is
    encoded after the answer is sent, not between the provider's reply and the response."""

    __slots__ = ("_made", "_make")

    def __init__(self, make: Callable[[], bytes]) -> None:
        self._make: Callable[[], bytes] | None = make
        self._made = b""

    def __call__(self) -> bytes:
        if self._make is not None:
            self._made, self._make = self._make(), None
        return self._made


def _made(value: bytes | Deferred) -> bytes:
    return value() if isinstance(value, Deferred) else value


def _merged(keys: list[str], held: Mapping[str, bytes | Deferred], asked: list[str],
            values: list[bytes | None]) -> list[bytes | None]:
    """`keys`' values: those `held` in memory, the others (`asked`) as Redis answered."""
    found = dict(zip(asked, values, strict=True))
    return [_made(held[key]) if key in held else found[key] for key in keys]


def _share(values: list[Any], readers: list[tuple[list[str], asyncio.Future[list[Any]]]], width: int) -> None:
    """Give each reader its part of the reply (`width` values per key), or the error in it."""
    at = 0
    for keys, future in readers:
        mine = values[at:at + width * len(keys)]
        error = next((v for v in mine if isinstance(v, Exception)), None)
        if future.done():
            pass
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(mine)
        at += width * len(keys)


def _as_bytes(value: object) -> bytes | None:
    """A value as Redis stored it (bytes), whether or not the client decodes responses."""
    return value if value is None or isinstance(value, bytes) else str(value).encode()
