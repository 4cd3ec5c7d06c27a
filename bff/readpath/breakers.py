"""Circuit breakers per source (purgatory, in process memory): after `threshold`
consecutive failures a source is not called for `cooldown` seconds; then requests
probe it (half-open) and one success closes the breaker again.

State is per process on purpose: a breaker must keep working when Redis is down, and
each process learns a provider's health from its own calls within a few requests."""

from __future__ import annotations

from typing import Any

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from bff.runtime.metrics import BREAKER_STATES, Metrics
from connectors.base import SourceRejected

DEFAULT_THRESHOLD = 5
DEFAULT_COOLDOWN = 30.0

CircuitOpen = OpenedState
"""Raised when a source's breaker is open: the call was not made."""


class Breakers:
    """One breaker per source id."""

    def __init__(self, metrics: Metrics, threshold: int = DEFAULT_THRESHOLD,
                 cooldown: float = DEFAULT_COOLDOWN) -> None:
        self._metrics = metrics
        self._threshold = threshold
        self._cooldown = cooldown
        self.reset()

    def reset(self) -> None:
        """Close every breaker (operators, and tests between cases)."""
        # A provider refusing our request (4xx) is not a sign that it is down.
        self._factory = AsyncCircuitBreakerFactory(default_threshold=self._threshold, default_ttl=self._cooldown,
                                                   exclude=[SourceRejected])
        self._factory.add_listener(self._on_event)
        self._metrics.breaker_state.clear()

    async def guard(self, source_id: str) -> Any:
        """An async context manager: raises `CircuitOpen` on entry while open."""
        return await self._factory.get_breaker(source_id)

    def _on_event(self, name: str, event_name: str, event: Any) -> None:
        if event_name == "state_changed":
            self._metrics.breaker_state.labels(name).set(BREAKER_STATES.get(event.state, 0))
