"""Live updates: decisions on the viewer's cancellation requests."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from bff.cancellation.events import valid_cursor
from bff.domain.errors import BadInput, PublicError
from resolvers.appointments.nodes import cancellation_node
from resolvers.cancellations.types import CancellationEvent
from resolvers.context import Info


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
            raise BadInput('`after` må være "0" eller en markør fra en tidligere hendelse.')
        await ctx.audit(ctx.viewer.pid, "subscribe", "ok", "cancellationUpdates", channel="subscription")
        async for cursor, record in ctx.services.events.updates(ctx.viewer.pid, after):
            ctx.renew()
            yield CancellationEvent(cursor=cursor, request=cancellation_node(info, record))
