"""One cancellation request, as the root query asks for it."""

from __future__ import annotations

import strawberry

from resolvers.appointments.nodes import CancellationRequest, find_cancellation
from resolvers.context import Info


@strawberry.type
class CancellationQueries:
    @strawberry.field(description="One of the viewer's cancellation requests; null when unknown or not theirs.")
    async def cancellation_request(self, info: Info, id: strawberry.ID) -> CancellationRequest | None:
        return await find_cancellation(info, id)
