"""A BFF as operators run it: `uvicorn --factory bff.asgi:app --http
bff.asgi:HttpProtocol` in a process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from tests.redis_process import free_port


@dataclass
class Running:
    """Where it listens; `output` (stdout and stderr) once it has stopped."""

    url: str
    output: str = ""


@contextlib.asynccontextmanager
async def bff_asgi(env: dict[str, str]) -> AsyncIterator[Running]:
    """The process, ready, with `env` over this one's environment; stopped (SIGTERM) after."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "--factory", "bff.asgi:app", "--http", "bff.asgi:HttpProtocol",
        "--port", str(port),
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    running = Running(f"http://127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            for _ in range(150):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{running.url}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield running
    finally:
        process.terminate()
        output, _ = await process.communicate()
        running.output = output.decode()
