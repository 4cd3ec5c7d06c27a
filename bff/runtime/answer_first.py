"""Answer first, write the cache after: work an HTTP request may leave until its answer
is sent.

A cold list's last provider answers, on a busy event loop, while the others are still
being read; every cache write started then (a Redis round trip each) would stand between
the last answer and the response. Inside `answer_first()` such work is queued and started
once the response has been sent, all of it together, so a list's writes leave as one
pipeline.

Nobody waits longer for it than `MAX_DELAY`:
- this process reads entries written behind from memory until they are in Redis
  (`AppointmentCache.write_behind`);
- a request that is about to wait on a lease another request holds starts its own
  queued work first (`start_now`), so two requests each waiting for the other's entry
  cannot wait for each other's answers;
- another process waiting on a lease this request holds waits at most `MAX_DELAY` more,
  however long the rest of the answer takes (a slow provider, say).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

MAX_DELAY = 0.1
"""Seconds queued work may wait for the answer to be sent."""


class _Queue:
    def __init__(self) -> None:
        self._jobs: list[Callable[[], None]] = []
        self._open = True
        self._timer: asyncio.TimerHandle | None = None

    def add(self, job: Callable[[], None]) -> bool:
        if not self._open:
            return False
        self._jobs.append(job)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(MAX_DELAY, self.start)
        return True

    def start(self) -> None:
        """Start every queued job; later ones start at once."""
        self._open = False
        if self._timer is not None:
            self._timer.cancel()
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job()


_queue: ContextVar[_Queue | None] = ContextVar("answer_first", default=None)


@contextlib.contextmanager
def answer_first() -> Iterator[None]:
    """Within the block (a request's handling, up to sending its answer), `later` queues
    work; leaving the block starts it."""
    queue = _Queue()
    token = _queue.set(queue)
    try:
        yield
    finally:
        _queue.reset(token)
        queue.start()


def later(job: Callable[[], None]) -> None:
    """Start `job` (a function that starts work, e.g. creates a task) once the answer is
    sent — or now, outside `answer_first()` (WebSocket events, background refreshes that
    outlived their request)."""
    queue = _queue.get()
    if queue is None or not queue.add(job):
        job()


def start_now() -> None:
    """Start what the current request has queued (it is about to wait for another)."""
    queue = _queue.get()
    if queue is not None:
        queue.start()
