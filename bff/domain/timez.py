"""Time in Europe/Oslo: the portal's clock, whatever the server's own zone is."""

from __future__ import annotations

import functools
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")


def now() -> datetime:
    """The current instant, in Oslo's offset."""
    return datetime.now(OSLO)


@functools.lru_cache(maxsize=64)
def start_of_day(day: date) -> datetime:
    """Midnight at the start of `day` in Oslo (remembered: a list asks it for every row)."""
    return datetime.combine(day, time.min, tzinfo=OSLO)


def today(at: datetime | None = None) -> date:
    """Today's calendar date in Oslo."""
    return (at or now()).astimezone(OSLO).date()


def to_oslo(value: datetime) -> datetime:
    """The same instant, expressed in Oslo's offset; naive values are Oslo local time."""
    if value.tzinfo is None:
        return value.replace(tzinfo=OSLO)
    return value.astimezone(OSLO)


FIRST_YEAR = 1900
LAST_YEAR = 2199
"""The years a filter may name: far wider than any appointment, and far from the edges
of the calendar where shifting an instant to another offset overflows."""


@functools.lru_cache(maxsize=8192)
def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 date-time; without an offset it is Oslo local time. Remembered:
    providers' times repeat (slots start on the hour and half hour, a list's rows are
    read again and again), and shifting one to Oslo's offset costs more than the parse."""
    return to_oslo(datetime.fromisoformat(text.replace("Z", "+00:00")))


def age_on(birth_date: date, day: date) -> int:
    """Whole years between `birth_date` and `day`."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years
