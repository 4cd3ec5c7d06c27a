"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
from typing import Any

STOP_ATTEMPTS = 50
STOP_WAIT = 0.1


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended. A cancellation can be lost inside a
    library (in Python 3.11 an `asyncio.timeout` racing a cancel may raise TimeoutError
    instead, which a retry loop then treats as an ordinary error), so cancel again until
    the task is done rather than wait forever."""
    if task is None:
        return
    for _ in range(STOP_ATTEMPTS):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=STOP_WAIT)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved, so it is not reported as never retrieved
