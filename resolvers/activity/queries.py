"""The activity log, as the root query asks for it. Reading it is not itself logged as a
read of appointments."""

from __future__ import annotations

import strawberry

from bff.domain.activity import activity
from bff.domain.errors import BadInput, NotFound
from bff.domain.rules import ALL_KINDS
from bff.readpath.appointments import UNKNOWN_PERSON_TEXT, Subject
from resolvers.activity.types import Activity, ActivityActor, ActivityConnection
from resolvers.common import PageInfo
from resolvers.context import Info
from resolvers.persons.subjects import subject

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
READ_BATCH = 100
"""Entries read from the stream at a time (the log skips a few kinds of entry)."""


@strawberry.type
class ActivityQueries:
    @strawberry.field(description=(
        "Who has read or changed the viewer's appointments (or, with `onBehalfOf`, those of a person "
        "the viewer has full access for: a child under 12, a power of attorney), newest first; "
        "entries are kept 13 months."))
    async def activity(self, info: Info, first: int | None = DEFAULT_PAGE_SIZE, after: str | None = None,
                       on_behalf_of: strawberry.ID | None = None) -> ActivityConnection:
        first = DEFAULT_PAGE_SIZE if first is None else first
        if not 0 <= first <= MAX_PAGE_SIZE:
            raise BadInput(f"`first` må være mellom 0 og {MAX_PAGE_SIZE}.")
        whose = await _whose(info, on_behalf_of)
        return await _page(info, whose, first, _position(info, whose, after))


async def _whose(info: Info, on_behalf_of: strawberry.ID | None) -> Subject:
    """The person whose log it is: full access only, anyone else answers as unknown."""
    whose = await subject(info, on_behalf_of)
    if whose.kinds != ALL_KINDS:
        raise NotFound(UNKNOWN_PERSON_TEXT)
    return whose


def _position(info: Info, whose: Subject, after: str | None) -> str | None:
    if after is None:
        return None
    ids = info.context.services.ids
    parts = ids.decode("L", after)
    if parts is None or len(parts) != 2 or parts[1] != ids.pseudonym(whose.pid):
        raise BadInput("`after` er ikke en markør fra denne loggen.")
    return parts[0]


async def _page(info: Info, whose: Subject, first: int, before: str | None) -> ActivityConnection:
    services = info.context.services
    shown: list[tuple[str, Activity]] = []
    more = False
    while len(shown) <= first:
        entries = await services.audit.newest(whose.pid, READ_BATCH, before)
        for entry_id, fields in entries:
            found = activity(fields)
            if found is not None:
                names = [s.name for i in found.source_ids if (s := services.catalogue.by_id(i)) is not None]
                shown.append((entry_id, Activity(at=found.at, action=found.action, channel=found.channel,
                                                 actor=ActivityActor(name=found.actor_name, relation=found.relation),
                                                 source_names=names)))
        if len(entries) < READ_BATCH:
            break
        before = entries[-1][0]
    more, shown = len(shown) > first, shown[:first]
    end = services.ids.encode("L", shown[-1][0], services.ids.pseudonym(whose.pid)) if shown else None
    return ActivityConnection(nodes=[a for _, a in shown], page_info=PageInfo(has_next_page=more, end_cursor=end))
