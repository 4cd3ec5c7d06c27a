"""Whose appointments a request is about: the viewer, or a person they may act for."""

from __future__ import annotations

import strawberry

from bff.domain.errors import NotFound, Unavailable
from bff.readpath.appointments import Subject, subject_for
from resolvers.context import Info
from resolvers.persons.types import Person, person_id


async def subject(info: Info, on_behalf_of: strawberry.ID | None) -> Subject:
    """The viewer, or the person `onBehalfOf` names if the viewer may act for them."""
    ctx = info.context
    return await subject_for(ctx.viewer.pid, on_behalf_of, ctx.services.ids, ctx.persons.load, ctx.today)


async def owner_subject(info: Info, owner: str) -> Subject | None:
    """The subject an id's owner (a pseudonym) is, when the viewer may see them; else None."""
    ctx = info.context
    ids = ctx.services.ids
    if owner == ids.pseudonym(ctx.viewer.pid):
        return await subject(info, None)
    try:
        return await subject(info, strawberry.ID(ids.encode("P", owner)))
    except (NotFound, Unavailable):
        return None


def patient(info: Info, who: Subject) -> Person:
    return Person.of(who.pid, who.lookup.record, person_id(info, who.pid))
