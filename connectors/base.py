"""The ports every upstream adapter implements, and the errors they report (the one table
from HTTP statuses to them is `connectors.http.raise_for_status`).

Nothing outside `connectors/` sees an HTTP response or upstream JSON: adapters return
frozen domain objects or raise `SourceUnavailable` (worth retrying, or serving stale data)
or `SourceRejected` (the upstream refused; retrying will not help).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bff.domain.models import Appointment, CancellationStatus, PersonRecord


class UpstreamError(Exception):
    """Base of every failure an adapter reports; `kind` is a short label for metrics
    (timeout, transport, http_5xx, malformed, rejected)."""

    def __init__(self, source: str, reason: str, kind: str = "unavailable") -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.kind = kind


class SourceUnavailable(UpstreamError):
    """Transient: timeout, connection failure, 5xx, 429, or a body we cannot read."""


class SourceRejected(UpstreamError):
    """Permanent: the upstream understood and refused (4xx other than 404/408/429)."""

    def __init__(self, source: str, reason: str, status: int, message: str | None = None) -> None:
        super().__init__(source, reason, "rejected")
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Window:
    """The time span asked of a provider; `end` None means no upper bound."""

    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a provider answered for a batch of patients.

    `skipped` counts rows that could not be read and were left out, so the answer can
    say so instead of hiding it.
    """

    by_patient: Mapping[str, tuple[Appointment, ...]]
    skipped: int = 0


class AppointmentConnector(Protocol):
    """A provider of appointments (hospital or GP FHIR server, municipal API)."""

    source_id: str

    async def fetch(self, patients: Sequence[str], window: Window) -> FetchResult:
        """All appointments of `patients` that start within `window`."""
        ...


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """What the provider said about a cancellation request, with its message if any."""

    status: CancellationStatus
    """PENDING, ACCEPTED or REJECTED (`models.ANSWERS`)."""
    message: str | None = None


class CancelConnector(Protocol):
    """A provider that takes cancellation requests.

    `cancel` is idempotent on `request_id`: sending the same request again gives the same
    answer and never a second cancellation. Raises `SourceRejected` when the provider
    refuses the request as such (it will never be decided), `SourceUnavailable` when it
    should be sent again later."""

    async def cancel(self, pid: str, upstream_id: str, request_id: str, reason: str | None) -> CancelAnswer:
        ...

    async def poll(self, pid: str, upstream_id: str, request_id: str) -> CancelAnswer:
        """Ask again about a request sent earlier (for answers whose push was lost)."""
        ...


class Notifier(Protocol):
    """The notification service (varsel)."""

    async def send(self, payload: dict[str, str], idempotency_key: str) -> None:
        """Deliver one notification; a repeat of the same `idempotency_key` is the same one."""
        ...


class PersonDirectory(Protocol):
    """The national person directory."""

    async def get(self, pid: str) -> PersonRecord | None:
        """The person's record, or None when the directory does not know them."""
        ...
