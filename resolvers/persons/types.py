"""The Person type, and how persons are named and listed."""

from __future__ import annotations

from datetime import date

import strawberry

from bff.domain.models import PersonRecord
from bff.readpath.appointments import representations
from resolvers.context import Info


@strawberry.type(description="A person: the viewer, or someone they may act for.")
class Person:
    id: strawberry.ID = strawberry.field(description="Opaque id; pass it as `onBehalfOf` to act for them.")
    name: str = strawberry.field(description="Full name (empty when the person directory does not know them).")
    birth_date: date | None = strawberry.field(description="Date of birth.")
    pid: strawberry.Private[str]

    @strawberry.field(description="Persons this person may act for, by Helsenorge's rules.")
    async def may_act_for(self, info: Info) -> list[Person]:
        return await represented_persons(info, self.pid)

    @classmethod
    def of(cls, pid: str, record: PersonRecord | None, person_id: str) -> Person:
        return cls(id=strawberry.ID(person_id), name=record.name if record else "",
                   birth_date=record.birth_date if record else None, pid=pid)


def person_id(info: Info, pid: str) -> str:
    ids = info.context.services.ids
    return ids.encode("P", ids.pseudonym(pid))


async def represented_persons(info: Info, pid: str) -> list[Person]:
    """The persons the viewer may act for (only the viewer's own list is ever shown)."""
    ctx = info.context
    if pid != ctx.viewer.pid:
        return []
    viewer = await ctx.persons.load(pid)
    reps = await representations(viewer, ctx.persons.load, ctx.today)
    return [Person.of(rep.pid, lookup.record, person_id(info, rep.pid)) for rep, lookup, _ in reps]
