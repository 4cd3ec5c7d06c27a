"""A loop turn's writes sent together (`bff.runtime.writes.CoalescedWrites`), over real
TCP connections: small writes of one turn reach the peer as one, what was written before
a close is sent, and a large write within one turn is not held back from the transport's
flow control."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bff.runtime.writes import HELD_AT_MOST, CoalescedWrites


class _Reader(asyncio.Protocol):
    """The far end: what arrived, in how many reads, and when the connection ended."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.reads = 0
        self.transport: asyncio.Transport | None = None
        self.ended = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.reads += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class _Writer(asyncio.Protocol):
    def __init__(self) -> None:
        self.paused_at: int | None = None
        """How many writes had been made when the transport asked us to pause."""
        self.writes = 0

    def pause_writing(self) -> None:
        if self.paused_at is None:
            self.paused_at = self.writes


@pytest.fixture
async def pair() -> AsyncIterator[tuple[CoalescedWrites, _Writer, asyncio.Transport, list[_Reader]]]:
    loop = asyncio.get_running_loop()
    readers: list[_Reader] = []

    def reader() -> _Reader:
        readers.append(_Reader())
        return readers[-1]

    server = await loop.create_server(reader, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, writer = await loop.create_connection(_Writer, "127.0.0.1", port)
    while not readers or readers[0].transport is None:
        await asyncio.sleep(0.001)
    yield CoalescedWrites(transport), writer, transport, readers
    transport.abort()
    for each in readers:
        if each.transport is not None:
            each.transport.abort()
    server.close()
    await server.wait_closed()


async def test_small_writes_of_one_turn_arrive_as_one_and_in_order(
        pair: tuple[CoalescedWrites, _Writer, asyncio.Transport, list[_Reader]]) -> None:
    coalesced, _, _, readers = pair
    pieces = [f"{n:02};".encode() for n in range(20)]
    for piece in pieces:
        coalesced.write(piece)
    await asyncio.sleep(0.05)
    assert bytes(readers[0].received) == b"".join(pieces)
    assert readers[0].reads == 1


async def test_what_was_written_before_a_close_is_sent(
        pair: tuple[CoalescedWrites, _Writer, asyncio.Transport, list[_Reader]]) -> None:
    coalesced, _, _, readers = pair
    coalesced.write(b"the last answer")
    coalesced.close()
    await asyncio.wait_for(readers[0].ended, timeout=5)
    assert bytes(readers[0].received) == b"the last answer"


async def test_a_large_write_in_one_turn_meets_flow_control_within_that_turn(
        pair: tuple[CoalescedWrites, _Writer, asyncio.Transport, list[_Reader]]) -> None:
    """A response streamed without yielding to the loop must not pile up in the wrapper:
    past `HELD_AT_MOST` it goes to the transport, whose buffer limit then asks the
    protocol to pause (uvicorn's `send` waits for that) while the turn still runs."""
    coalesced, writer, transport, readers = pair
    assert readers[0].transport is not None
    readers[0].transport.pause_reading()  # a client that does not read
    transport.set_write_buffer_limits(high=16 * 1024)
    chunk = b"x" * 8 * 1024
    for _ in range(64 * 1024 * 1024 // len(chunk)):  # up to 64 MiB: more than the socket buffers take
        coalesced.write(chunk)
        writer.writes += 1
        if writer.paused_at is not None:
            break
    assert writer.paused_at is not None, "flow control was never engaged within the turn"
    assert coalesced.get_write_buffer_size() > 16 * 1024 - HELD_AT_MOST // 4
