"""`node(id:)`: any object with an id, whichever domain it belongs to."""

from __future__ import annotations

import strawberry

from resolvers.appointments.nodes import find_appointment, find_cancellation
from resolvers.common import Node
from resolvers.context import Info
from resolvers.sources.types import Source


@strawberry.type
class NodeQueries:
    @strawberry.field(description="Any object with an id: an appointment, a source or a cancellation request.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        source = info.context.services.catalogue.by_id(id)
        if source is not None:
            return Source.of(source)
        return await find_appointment(info, id) or await find_cancellation(info, id)
