"""Fictional national identity numbers in the valid 11-digit format.

They are synthetic test numbers: the month is raised by 80, as in the Norwegian test
population (Tenor), so they can never belong to a real person, and the two mod-11 check
digits are correct.
"""

from __future__ import annotations

from datetime import date

WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
SYNTHETIC_MONTH_OFFSET = 80


def _check(digits: str, weights: tuple[int, ...]) -> int | None:
    rest = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return {11: 0, 10: None}.get(rest, rest)


def synthetic_pid(birth: date, serial: int = 0) -> str:
    """The first valid synthetic number for `birth`, starting from individual number `serial`."""
    base = 0 if birth.year < 2000 else 500
    for offset in range(500):
        individual = base + (serial + offset) % 500
        body = f"{birth.day:02d}{birth.month + SYNTHETIC_MONTH_OFFSET:02d}{birth.year % 100:02d}{individual:03d}"
        k1 = _check(body, WEIGHTS_1)
        k2 = _check(f"{body}{k1}", WEIGHTS_2) if k1 is not None else None
        if k1 is not None and k2 is not None:
            return f"{body}{k1}{k2}"
    raise ValueError(f"no valid number for {birth}")
