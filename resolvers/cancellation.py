"""GraphQL types of the cancellation flow."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from resolvers.types import Node

if TYPE_CHECKING:
    from resolvers.types import Appointment


@strawberry.enum(description=(
    "PENDING: sent (or about to be sent), waiting for the provider. ACCEPTED / REJECTED: the "
    "provider's answer. FAILED: the provider could not take the request at all."))
class CancellationStatus(enum.Enum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


@strawberry.type(description="A request to cancel an appointment, and the provider's answer.")
class CancellationRequest(Node):
    appointment: Annotated[Appointment, strawberry.lazy("resolvers.types")] | None = strawberry.field(
        description="The appointment it concerns, as it stands now.")
    status: CancellationStatus = strawberry.field(description="Where the request stands.")
    reason: str | None = strawberry.field(description="The reason the citizen gave.")
    provider_message: str | None = strawberry.field(description="The provider's message with its answer.")
    requested_at: datetime = strawberry.field(description="When the citizen asked.")
    decided_at: datetime | None = strawberry.field(description="When the provider answered.")
