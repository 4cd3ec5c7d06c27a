"""GraphQL types of the cancellation flow: the mutation's input and answer, and a
decision as the subscription delivers it."""

from __future__ import annotations

import strawberry

from bff.cancellation.service import ERROR_CODES
from resolvers.appointments.nodes import CancellationRequest


@strawberry.input(description="What to cancel. Send the same idempotencyKey again to get the same request back.")
class RequestCancellationInput:
    appointment_id: strawberry.ID = strawberry.field(description="The appointment's id.")
    idempotency_key: str = strawberry.field(description=(
        "A key of the client's choosing (e.g. a UUID), unique per intended cancellation; "
        "a retry with the same key and input never cancels twice."))
    reason: str | None = strawberry.field(default=None, description="Why (optional, passed to the provider).")


@strawberry.type(description="An expected refusal, with a stable code the client can act on.")
class UserError:
    code: str = strawberry.field(description=(
        f"One of {', '.join(ERROR_CODES)}. TEMPORARILY_UNAVAILABLE: nothing was stored; try again with the "
        "same idempotencyKey."))
    message: str = strawberry.field(description="What happened, in Norwegian, for the citizen.")


@strawberry.type(description="The outcome of requestCancellation: a request, or errors.")
class RequestCancellationPayload:
    request: CancellationRequest | None = strawberry.field(description="The request (also for a repeated key).")
    errors: list[UserError] = strawberry.field(description="Why nothing was requested; empty on success.")


@strawberry.type(description="One decision on one of the viewer's cancellation requests.")
class CancellationEvent:
    cursor: str = strawberry.field(description="Pass as `after` to resume after this event.")
    request: CancellationRequest = strawberry.field(description="The request, as decided.")
