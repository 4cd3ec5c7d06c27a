"""The appointment list and one appointment, as the root query asks for them."""

from __future__ import annotations

import strawberry

from resolvers.appointments.listing import (
    DEFAULT_PAGE_SIZE,
    AppointmentConnection,
    AppointmentFilter,
    consulted_for,
    page_of,
    page_request,
)
from resolvers.appointments.nodes import Appointment, find_appointment
from resolvers.context import Info


@strawberry.type
class AppointmentQueries:
    @strawberry.field(description=(
        "One list of appointments from every provider that holds some for the person, sorted by "
        "start, then source, then id. `sources` tells which providers were consulted and how they "
        "answered: a slow or broken provider never breaks the list."))
    async def appointments(
        self, info: Info, filter: AppointmentFilter | None = None,
        first: int | None = DEFAULT_PAGE_SIZE, after: str | None = None,
        on_behalf_of: strawberry.ID | None = None,
    ) -> AppointmentConnection:
        size, position = page_request(info, first, after)
        wanted = (filter or AppointmentFilter()).to_domain()
        who, consulted = await consulted_for(info, wanted, on_behalf_of)
        return await page_of(info, who, consulted, wanted, size, position)

    @strawberry.field(description="One appointment by id; null when unknown or not yours to see.")
    async def appointment(self, info: Info, id: strawberry.ID) -> Appointment | None:
        return await find_appointment(info, id)
