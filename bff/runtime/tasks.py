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


class Background:
    """One background loop per object: `start()` runs `_run()`, which should loop while
    `stopping` is false; `stop_loop()` ends it for sure."""

    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        raise NotImplementedError

    async def stop_loop(self) -> bool:
        """Stop the loop; True when it had been started."""
        self._stopping = True
        await stop(self._task)
        return self._task is not None
