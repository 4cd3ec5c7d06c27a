"""A pipelined Redis connection for the one command a reused answer sends.

A reused answer costs one Redis round trip (`AppointmentCache.append_if_current`), and
through redis-py that round trip took about a third of its CPU (bench/results/NOTES.md): a
connection taken from and given back to the blocking pool, a timeout context, the command
packed argument by argument in Python, the reply parsed through callbacks. A lane is one
connection on which concurrent callers' commands are written and their replies read in
order — packed and parsed by hiredis (redis-py's own parser) — so a call costs a future
and a share of one write: the commands of every caller in one turn of the event loop leave
together, in one write when the turn ends (`bff.runtime.writes`; a write per command was
an eighth of a reused answer's CPU at 16 connections: each is a system call, and on
loopback the send carries the receiving side's work too). On a Redis Cluster there is one
lane per primary, chosen by the command's slot from redis-py's slot map
(`AppointmentCache`); a redirect or a lost node sends that command through redis-py's
cluster client, which follows it and learns the new map. TLS is never laned (the lane does
not speak it: redis-py does).

Failures are redis-py's: `ConnectionError` when the connection cannot be made or is lost
(every command in flight fails with it, and the next call connects again), `TimeoutError`
when no reply came within the timeout (the connection is then closed: a Redis that does
not answer one command is not answering the ones behind it), `ResponseError` for an error
reply."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bff.runtime.writes import CoalescedWrites


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: CoalescedWrites | None = None
        """The connection: the commands of one loop turn are written together."""
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = CoalescedWrites(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the connection cannot be trusted
                self.fail(RedisConnectionError("Redis lane: a reply without a command"))
                return
            waiter = self.waiting.popleft()
            if waiter.done():
                continue  # its caller gave up (timed out); the reply is still this one's
            if isinstance(reply, ResponseError):
                waiter.set_exception(NoScriptError(str(reply)) if str(reply).startswith("NOSCRIPT") else reply)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Redis connection lost ({exc or 'closed'})"))

    def fail(self, error: BaseException) -> None:
        """No command more on this connection (the next call connects anew): those in
        flight fail with `error`, and it is closed."""
        if self.lost is None:
            self.lost = error
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(self.lost)
        if self.transport is not None:
            self.transport.abort()  # commands not yet sent are not sent: their callers have failed


class Lane:
    """One pipelined connection to the Redis `redis` speaks to (see the module)."""

    def __init__(self, address: dict[str, Any], unix: bool, timeout: float) -> None:
        self._address = address
        self._unix = unix
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def of(cls, redis: Redis, timeout: float) -> Lane | None:
        """A lane to the server of `redis`'s pool, or None where a lane cannot speak for it
        (TLS, or any connection class but redis-py's plain TCP and Unix socket ones)."""
        return cls.speaking(redis.connection_pool.connection_class, redis.connection_pool.connection_kwargs, timeout)

    @classmethod
    def to_node(cls, node: ClusterNode, timeout: float) -> Lane | None:
        """A lane to one node of a Redis Cluster (None for TLS)."""
        return cls.speaking(node.connection_class, node.connection_kwargs, timeout)

    @classmethod
    def speaking(cls, kind: type[Any], options: dict[str, Any], timeout: float) -> Lane | None:
        if kind not in (Connection, UnixDomainSocketConnection):
            return None
        return cls({key: options.get(key) for key in ("host", "port", "path", "db", "username", "password")},
                   kind is UnixDomainSocketConnection, timeout)

    async def call(self, *args: bytes | str | int | float) -> Any:
        """Send one command and return its reply (errors: see the module)."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append(waiter)
        assert protocol.transport is not None
        protocol.transport.write(hiredis.pack_command(args))  # type: ignore[arg-type]
        timer = loop.call_later(self._timeout, self._expire, protocol, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    async def evalsha(self, sha: str, script: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, falling back to EVAL when Redis has not (or no longer) the script."""
        try:
            return await self.call(b"EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.call(b"EVAL", script, len(keys), *keys, *args)

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("Redis lane closed"))
        self._protocol = None

    def _expire(self, protocol: _Protocol, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_exception(RedisTimeoutError("Timeout reading from Redis"))
            protocol.fail(RedisConnectionError("Redis did not answer in time: connection closed"))

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol  # another caller connected meanwhile
            loop = asyncio.get_running_loop()
            address = self._address
            try:
                async with asyncio.timeout(self._timeout):
                    if self._unix:
                        _, protocol = await loop.create_unix_connection(_Protocol, address["path"])
                    else:
                        _, protocol = await loop.create_connection(_Protocol, address["host"], address["port"])
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"Redis lane: cannot connect ({type(exc).__name__})") from exc
            setup: list[tuple[Any, ...]] = []
            if address.get("password"):
                setup.append((b"AUTH", *([address["username"]] if address.get("username") else []),
                              address["password"]))
            if address.get("db"):
                setup.append((b"SELECT", address["db"]))
            self._protocol = protocol
            try:
                for command in setup:
                    await self.call(*command)
            except ResponseError as exc:
                self.close()
                raise RedisConnectionError(f"Redis lane: {exc}") from exc
            return protocol
