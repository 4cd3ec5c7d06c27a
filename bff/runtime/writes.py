"""Writes of one event-loop turn sent together.

Every `transport.write` on a socket is a system call, and with TCP_NODELAY a segment of
its own; on loopback the send also does the receiving side's TCP work. Where several
writes to one connection are made within one turn of the event loop — uvicorn's status
line and headers, then the body (`bff.web.serving.HttpProtocol`); the Redis commands of
every request handled in that turn (`bff.store.lane`) — they are worth one: a write each
was a quarter of a reused answer's CPU at 16 connections (bench/results/NOTES.md). The
turn's writes leave when it ends (`loop.call_soon`), microseconds later."""

from __future__ import annotations

import asyncio
from typing import Any

HELD_AT_MOST = 64 * 1024
"""Bytes held for the turn's end: past this the writes go out at once, so a response
streamed within one turn meets the transport's flow control as it would without us."""


class CoalescedWrites:
    """A transport whose writes of one event-loop turn go out together, in one write when
    the turn ends; everything else is the transport's own. `close` sends what was
    written first (as the transport does); `abort` drops it. More than `HELD_AT_MOST`
    is written at once."""

    __slots__ = ("_held", "_loop", "_transport", "_unsent")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._unsent: list[bytes] = []
        self._held = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._unsent:
            self._loop.call_soon(self._flush)
        chunk = bytes(data)
        self._unsent.append(chunk)
        self._held += len(chunk)
        if self._held > HELD_AT_MOST:
            self._flush()

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        unsent, self._unsent, self._held = self._unsent, [], 0
        if unsent and not self._transport.is_closing():
            self._transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))

    def close(self) -> None:
        self._flush()  # what was written before the close is sent, as by the transport itself
        self._transport.close()

    def abort(self) -> None:
        self._unsent.clear()
        self._held = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
