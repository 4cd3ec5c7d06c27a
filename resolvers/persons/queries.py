"""The viewer, as the root query asks for them."""

from __future__ import annotations

import strawberry

from bff.domain.errors import Unavailable
from bff.readpath.appointments import Subject
from resolvers.context import Info
from resolvers.persons.subjects import patient
from resolvers.persons.types import Person

DIRECTORY_DOWN_TEXT = "Personregisteret svarer ikke akkurat nå. Prøv igjen om litt."


@strawberry.type
class PersonQueries:
    @strawberry.field(description="The logged-in citizen.")
    async def me(self, info: Info) -> Person:
        lookup = await info.context.persons.load(info.context.viewer.pid)
        if not lookup.ok:
            raise Unavailable(DIRECTORY_DOWN_TEXT)
        return patient(info, Subject(info.context.viewer.pid, lookup, frozenset()))
