"""GraphQL types of the coverage catalogue. Their descriptions are what app developers
read in GraphiQL."""

from __future__ import annotations

from datetime import datetime

import strawberry

from bff.domain import models as domain
from bff.domain.models import HealthRegion, MunicipalService, SourceKind
from bff.domain.sources import SourceConfig
from bff.readpath.gateway import SourceState
from resolvers.common import Node

strawberry.enum(domain.SourceKind, description="The kind of provider a source is.")
strawberry.enum(domain.MunicipalService, description=(
    "HOME_NURSING: hjemmesykepleie. PRACTICAL_ASSISTANCE: praktisk bistand."))
strawberry.enum(domain.HealthRegion, description="A regional health authority.")
strawberry.enum(SourceState, description=(
    "OK: answered now or from a fresh cache. STALE: the source failed; showing its last good "
    "answer (see fetchedAt). UNAVAILABLE: nothing from this source in this answer."))


@strawberry.type(description="What a source can do.")
class SourceCapabilities:
    future: bool = strawberry.field(description="Shows coming appointments.")
    past: bool = strawberry.field(description="Shows earlier appointments (with `includePast`).")
    cancel: bool = strawberry.field(description="Accepts cancellations through this service.")


@strawberry.type(description="A provider whose appointments can appear in the list.")
class Source(Node):
    name: str = strawberry.field(description="The provider's name, for display.")
    kind: SourceKind = strawberry.field(description="Hospital, GP or municipality.")
    region: HealthRegion | None = strawberry.field(description="Health region, for hospital sources.")
    municipality: str | None = strawberry.field(
        description="Municipality number (e.g. 0301 Oslo, 4601 Bergen), for municipal sources.")
    municipality_name: str | None = strawberry.field(description="Municipality name, for municipal sources.")
    districts: list[str] = strawberry.field(description="City districts (bydeler) that take part.")
    services: list[MunicipalService] = strawberry.field(description="Municipal services shown.")
    capabilities: SourceCapabilities = strawberry.field(description="What the source can do.")

    @classmethod
    def of(cls, config: SourceConfig) -> Source:
        caps = config.capabilities
        return cls(
            id=strawberry.ID(config.id), name=config.name, kind=config.kind, region=config.region,
            municipality=config.municipality, municipality_name=config.municipality_name,
            districts=list(config.districts), services=list(config.services),
            capabilities=SourceCapabilities(future=caps.future, past=caps.past, cancel=caps.cancel),
        )


@strawberry.type(description="How one consulted source answered.")
class SourceResult:
    source: Source = strawberry.field(description="The source.")
    state: SourceState = strawberry.field(description="OK, STALE or UNAVAILABLE.")
    fetched_at: datetime | None = strawberry.field(description="When its data was fetched from the provider.")
    message: str | None = strawberry.field(description="Why it is stale or unavailable (Norwegian).")
