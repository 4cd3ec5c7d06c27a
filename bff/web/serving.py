"""Running ASGI apps on real sockets inside an asyncio program (CLI, tests, bench)."""

from __future__ import annotations

import asyncio
import errno
import socket
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bff.runtime.writes import CoalescedWrites

STARTUP_TIMEOUT = 15.0
GRACEFUL_SHUTDOWN = 5
"""Seconds open requests get to finish when a server stops."""


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on `CoalescedWrites`: a response leaves in one write.
    `uvicorn --http bff.asgi:HttpProtocol` (what `bff serve` and the bench run)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport))  # type: ignore[arg-type]


class PortInUse(OSError):
    """Another process listens on the address."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{host}:{port} is already in use")
        self.host = host
        self.port = port


@dataclass
class RunningServer:
    """A started uvicorn server and where it listens."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, timeout=GRACEFUL_SHUTDOWN + STARTUP_TIMEOUT)


async def start_server(app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *,
                       log_level: str = "warning") -> RunningServer:
    """Serve `app` in this event loop; port 0 picks a free port. Raises `PortInUse` when
    another process listens there."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose protocol
    # says TCP. Without it Nagle's algorithm meets the client's delayed ACK and every
    # response after the first on a keep-alive connection waits ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from exc
        raise
    # log_config=None: uvicorn's loggers go through the process's own logging (one JSON
    # object per line under bff serve), not through plain-text handlers of uvicorn's.
    config = uvicorn.Config(app, http=HttpProtocol, log_level=log_level, lifespan="on", access_log=False,
                            ws="websockets-sansio",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during start-up")
                await asyncio.sleep(0.01)
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()
    return RunningServer(server, task, f"http://{bound[0]}:{bound[1]}")
