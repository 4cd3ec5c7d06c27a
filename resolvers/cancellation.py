"""The cancellation flow in GraphQL: the request type, the mutation and the subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
import structlog
from redis.exceptions import RedisError

from bff.cancellation.events import valid_cursor
from bff.cancellation.service import ERROR_CODES, Outcome, Problem, RequestProblem, Target
from bff.cancellation.store import CancellationRecord
from bff.domain.errors import BadInput, PublicError, Unavailable
from bff.domain.models import CancellationStatus
from resolvers.context import Info
from resolvers.types import Node

if TYPE_CHECKING:
    from resolvers.types import Appointment

log = structlog.get_logger(__name__)
MAX_KEY_LENGTH = 200
APPOINTMENT_ID_PARTS = 3
"""An appointment id names its source, the provider's id and its owner's pseudonym."""
MAX_REASON_LENGTH = 500


strawberry.enum(CancellationStatus, description=(
    "PENDING: sent (or about to be sent), waiting for the provider. ACCEPTED / REJECTED: the "
    "provider's answer. FAILED: the provider could not take the request at all."))


@strawberry.type(description="A request to cancel an appointment, and the provider's answer.")
class CancellationRequest(Node):
    status: CancellationStatus = strawberry.field(description="Where the request stands.")
    reason: str | None = strawberry.field(description="The reason the citizen gave.")
    provider_message: str | None = strawberry.field(description="The provider's message with its answer.")
    requested_at: datetime = strawberry.field(description="When the citizen asked.")
    decided_at: datetime | None = strawberry.field(description="When the provider answered.")
    appointment_id: strawberry.Private[str]

    @strawberry.field(description="The appointment it concerns, as it stands now (null if no longer visible).")
    async def appointment(self, info: Info) -> Annotated[Appointment, strawberry.lazy("resolvers.types")] | None:
        from resolvers.query import find_appointment

        return await find_appointment(info, self.appointment_id)


def cancellation_node(info: Info, record: CancellationRecord) -> CancellationRequest:
    ids = info.context.services.ids
    return CancellationRequest(
        id=strawberry.ID(ids.encode("C", record.request_id, ids.pseudonym(record.actor_pid))),
        status=record.status, reason=record.reason, provider_message=record.provider_message,
        requested_at=record.requested(), decided_at=record.decided_time(),
        appointment_id=ids.encode("A", record.source_id, record.upstream_id, ids.pseudonym(record.subject_pid)),
    )


async def find_cancellation(info: Info, request_id: str) -> CancellationRequest | None:
    """A request the viewer made; None for anything else (unknown or someone else's)."""
    ctx = info.context
    parts = ctx.services.ids.decode("C", request_id)
    if parts is None or parts[1] != ctx.services.ids.pseudonym(ctx.viewer.pid):
        return None
    record = await ctx.services.cancellations.store.get(parts[0])
    return cancellation_node(info, record) if record is not None and record.actor_pid == ctx.viewer.pid else None


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


def _refused(problem: Problem, message: str | None = None) -> RequestCancellationPayload:
    return RequestCancellationPayload(request=None, errors=[UserError(code=problem.code,
                                                                      message=message or problem.message)])


def _input_problem(input: RequestCancellationInput) -> str | None:
    key = input.idempotency_key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        return f"idempotencyKey må være 1–{MAX_KEY_LENGTH} synlige tegn."
    if input.reason is not None and len(input.reason) > MAX_REASON_LENGTH:
        return f"Begrunnelsen kan være på høyst {MAX_REASON_LENGTH} tegn."
    return None


async def _request(info: Info, appointment_id: str, key: str, reason: str | None) -> Outcome:
    """Ask the service for the request, the appointment found under the access policy;
    audited for the person whose appointment it is."""
    from resolvers.query import find_target

    ctx = info.context
    owner = ctx.services.ids.decode("A", appointment_id)
    if owner is None or len(owner) != APPOINTMENT_ID_PARTS:
        return Outcome(problem=RequestProblem.NOT_FOUND)
    found: list[Target] = []

    async def find() -> Target | None:
        target = await find_target(info, appointment_id)
        if target is not None:
            found.append(target)
        return target

    try:
        outcome = await ctx.services.cancellations.request(ctx.viewer.pid, appointment_id, owner[2], key, reason,
                                                           find)
    except (RedisError, OSError, Unavailable) as exc:
        log.warning("cancellation.not_taken", error=type(exc).__name__)
        return Outcome(problem=RequestProblem.TEMPORARILY_UNAVAILABLE)
    if outcome.record is not None:
        await ctx.audit(outcome.record.subject_pid, "cancel", outcome.record.status, outcome.record.source_id)
    elif found:
        await ctx.audit(found[0].subject_pid, "cancel", outcome.problem.code if outcome.problem else "",
                        found[0].source.id)
    return outcome


@strawberry.type(description="Change things: ask a provider to cancel an appointment.")
class Mutation:
    @strawberry.mutation(description=(
        "Ask the provider to cancel an appointment. The request is stored before it is sent; a "
        "hospital or GP answers at once, a municipality later (see cancellationUpdates)."))
    async def request_cancellation(self, info: Info, input: RequestCancellationInput) -> RequestCancellationPayload:
        problem = _input_problem(input)
        if problem is not None:
            return _refused(RequestProblem.INVALID_INPUT, problem)
        outcome = await _request(info, str(input.appointment_id), input.idempotency_key.strip(), input.reason)
        if outcome.record is None:
            return _refused(outcome.problem or RequestProblem.INVALID_INPUT)
        return RequestCancellationPayload(request=cancellation_node(info, outcome.record), errors=[])


@strawberry.type(description="One decision on one of the viewer's cancellation requests.")
class CancellationEvent:
    cursor: str = strawberry.field(description="Pass as `after` to resume after this event.")
    request: CancellationRequest = strawberry.field(description="The request, as decided.")


@strawberry.type(description="Live updates.")
class Subscription:
    @strawberry.subscription(description=(
        "Decisions on the viewer's cancellation requests. Without `after`, only new ones; "
        '`after: "0"` replays the retained history (30 days or more); a cursor resumes after that event.'))
    async def cancellation_updates(self, info: Info, after: str | None = None) -> AsyncGenerator[CancellationEvent]:
        ctx = info.context
        if not ctx.authenticated:
            raise PublicError("Logg inn først.", "UNAUTHENTICATED")
        if after is not None and not valid_cursor(after):
            raise BadInput('`after` must be "0" or a cursor from an earlier event.')
        await ctx.audit(ctx.viewer.pid, "subscribe", "ok", "cancellationUpdates")
        async for cursor, record in ctx.services.events.updates(ctx.viewer.pid, after):
            ctx.renew()
            yield CancellationEvent(cursor=cursor, request=cancellation_node(info, record))
