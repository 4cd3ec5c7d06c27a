"""The sandbox's people (`bff.sandbox.cast`): the children's ages are the documented ones on
every day of the year, and their pids do not change at midnight."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bff.domain.timez import age_on
from bff.sandbox.cast import cast

pytestmark = pytest.mark.unit

DOCUMENTED_AGES = {"child_small": 8, "child_teen": 14, "child_older": 17, "child_hidden": 6}
"""docs/sandbox.md's ages."""


def test_the_childrens_ages_are_the_documented_ones_on_every_day_of_a_year() -> None:
    day = date(2027, 1, 1)
    while day.year == 2027:
        people = cast(day)
        assert {h: age_on(people[h].birth, day) for h in DOCUMENTED_AGES} == DOCUMENTED_AGES, day
        day += timedelta(days=1)


@pytest.mark.parametrize("evening", [date(2026, 12, 4), date(2027, 2, 28), date(2027, 3, 31), date(2027, 10, 31)])
def test_nobody_becomes_another_person_at_midnight(evening: date) -> None:
    """A sandbox started in the evening and a token minted after midnight name the same
    person (the whole test suite once failed when its run crossed Oslo's midnight)."""
    before, after = cast(evening), cast(evening + timedelta(days=1))
    assert {h: m.pid for h, m in before.items()} == {h: m.pid for h, m in after.items()}
