"""The citizen's activity log ("Hvem har sett timene mine"): an audit entry as the log
shows it. The entries are the audit stream's, so every way of reading or changing a
person's appointments feeds it; they carry who the actor is to the person and their
name as the directory gave it when they acted, never health details."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from bff.domain.timez import OSLO


class ActivityAction(enum.Enum):
    """What was done with the person's appointments."""

    LIST_READ = "LIST_READ"
    APPOINTMENT_READ = "APPOINTMENT_READ"
    CALENDAR_EXPORT = "CALENDAR_EXPORT"
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
    CANCELLATION_DECIDED = "CANCELLATION_DECIDED"


class ActivityChannel(enum.Enum):
    """How: the web client (and the API), the calendar export, a live subscription."""

    WEB = "WEB"
    CALENDAR = "CALENDAR"
    SUBSCRIPTION = "SUBSCRIPTION"


class ActorRelation(enum.Enum):
    """Who the actor is to the person: the person, a parent, someone with power of attorney."""

    SELF = "SELF"
    PARENT = "PARENT"
    POWER_OF_ATTORNEY = "POWER_OF_ATTORNEY"


ACTIONS = {"list": ActivityAction.LIST_READ, "read": ActivityAction.APPOINTMENT_READ,
           "cancel": ActivityAction.CANCELLATION_REQUESTED, "decided": ActivityAction.CANCELLATION_DECIDED}
"""Audit actions the log shows (subscribing to one's own outcomes reads no appointment)."""


@dataclass(frozen=True, slots=True)
class Activity:
    """One line of the log."""

    at: datetime
    action: ActivityAction
    actor_name: str
    relation: ActorRelation
    channel: ActivityChannel
    source_ids: tuple[str, ...]


def activity(fields: Mapping[str, str]) -> Activity | None:
    """An audit entry as the log shows it; None for one it does not show (an action it
    does not list, or an entry written without the actor's relation and channel)."""
    action = ACTIONS.get(fields.get("action", ""))
    try:
        channel = ActivityChannel(fields["channel"].upper())
        relation = ActorRelation(fields["relation"].upper())
        at = datetime.fromtimestamp(float(fields["at"]), OSLO)
    except (KeyError, ValueError):
        return None
    if action is None:
        return None
    if action is ActivityAction.LIST_READ and channel is ActivityChannel.CALENDAR:
        action = ActivityAction.CALENDAR_EXPORT
    sources = tuple(s for s in fields.get("what", "").split(",") if s)
    return Activity(at, action, fields.get("actor_name", ""), relation, channel, sources)
