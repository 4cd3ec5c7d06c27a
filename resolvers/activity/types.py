"""GraphQL types of the activity log."""

from __future__ import annotations

from datetime import datetime

import strawberry

from bff.domain.activity import ActivityAction, ActivityChannel, ActorRelation
from resolvers.common import PageInfo

strawberry.enum(ActivityAction, description=(
    "LIST_READ: the list was read. APPOINTMENT_READ: one appointment was opened. CALENDAR_EXPORT: the "
    "calendar file was downloaded. CANCELLATION_REQUESTED: a cancellation was asked for. "
    "CANCELLATION_DECIDED: the provider answered one."))
strawberry.enum(ActivityChannel, description=(
    "WEB: the portal (or another client of this API). CALENDAR: the calendar export. SUBSCRIPTION: live updates."))
strawberry.enum(ActorRelation, description=(
    "SELF: the person. PARENT: a parent. POWER_OF_ATTORNEY: someone the person gave power of attorney."))


@strawberry.type(description="Who did it.")
class ActivityActor:
    name: str = strawberry.field(description="Their name, as the person register gave it then.")
    relation: ActorRelation = strawberry.field(description="Who they are to the person.")


@strawberry.type(description="One read or change of the person's appointments.")
class Activity:
    at: datetime = strawberry.field(description="When, in Europe/Oslo's offset.")
    action: ActivityAction = strawberry.field(description="What was done.")
    actor: ActivityActor = strawberry.field(description="Who did it.")
    channel: ActivityChannel = strawberry.field(description="How.")
    source_names: list[str] = strawberry.field(
        description="Which provider's data, when the action concerned one (the source's name).")


@strawberry.type(description="One page of the activity log, newest first.")
class ActivityConnection:
    nodes: list[Activity] = strawberry.field(description="The entries.")
    page_info: PageInfo = strawberry.field(description="Pass endCursor as `after` for older entries.")
