"""The coverage catalogue, as the root query asks for it."""

from __future__ import annotations

import strawberry

from resolvers.context import Info
from resolvers.sources.types import Source


@strawberry.type
class SourceQueries:
    @strawberry.field(description="Every configured source: the coverage catalogue.")
    def sources(self, info: Info) -> list[Source]:
        return [Source.of(s) for s in info.context.services.catalogue.sources]
