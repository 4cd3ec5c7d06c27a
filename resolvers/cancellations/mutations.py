"""The mutation: ask a provider to cancel an appointment."""

from __future__ import annotations

import strawberry
import structlog
from redis.exceptions import RedisError

from bff.cancellation.service import Outcome, Problem, RequestProblem, Target
from bff.domain.errors import Unavailable
from resolvers.appointments.nodes import cancellation_node, find_target
from resolvers.cancellations.types import RequestCancellationInput, RequestCancellationPayload, UserError
from resolvers.context import Info

log = structlog.get_logger(__name__)
MAX_KEY_LENGTH = 200
MAX_REASON_LENGTH = 500
APPOINTMENT_ID_PARTS = 3
"""An appointment id names its source, the provider's id and its owner's pseudonym."""


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
