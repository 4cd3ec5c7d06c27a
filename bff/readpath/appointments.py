"""Assembling one person's list: whose list it is, which sources to consult, and which
rows to show, in order. Plain async functions over loader callables, testable without
GraphQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from bff.domain.access import may_consult, may_see_kind, seen
from bff.domain.errors import NotFound, Unavailable
from bff.domain.ids import Ids
from bff.domain.models import Appointment, AppointmentStatus, PersonRecord, Representation, SourceKind
from bff.domain.rules import (
    ALL_KINDS,
    TimeFilter,
    applies_to_everyone,
    representation_kinds,
    sort_key,
    with_cancellation,
)
from bff.domain.sources import SourceConfig, SourcesFile
from bff.readpath.gateway import SourceOutcome, SourceState

DIRECTORY_DOWN_TEXT = "Personregisteret svarer ikke, så vi vet ikke om denne kilden gjelder deg."
UNKNOWN_PERSON_TEXT = "Personen er ukjent eller har ikke lov å representeres."


@dataclass(frozen=True, slots=True)
class PersonLookup:
    """The directory's answer: `ok` False when the directory could not be asked."""

    record: PersonRecord | None
    ok: bool = True


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose appointments are shown, and which kinds the viewer may see of them."""

    pid: str = field(repr=False)  # a repr (a log line, a test failure) never shows a pid
    lookup: PersonLookup
    kinds: frozenset[SourceKind]


@dataclass(frozen=True, slots=True)
class ListFilter:
    """What the client asked for."""

    time: TimeFilter
    statuses: frozenset[AppointmentStatus] | None = None
    source_kinds: frozenset[SourceKind] | None = None
    source_ids: frozenset[str] | None = None

    def consults(self, source: SourceConfig) -> bool:
        return (self.source_kinds is None or source.kind in self.source_kinds) and (
            self.source_ids is None or source.id in self.source_ids)


@dataclass(frozen=True, slots=True)
class Consulted:
    """A source consulted for this answer, with its outcome."""

    source: SourceConfig
    outcome: SourceOutcome


LoadPerson = Callable[[str], Awaitable[PersonLookup]]
LoadSource = Callable[[str, str, bool], Awaitable[SourceOutcome]]


async def representations(viewer: PersonLookup, load_person: LoadPerson,
                          today: date) -> list[tuple[Representation, PersonLookup, frozenset[SourceKind]]]:
    """The persons the viewer may act for today, with what they may see of each."""
    if viewer.record is None:
        return []
    found = []
    for rep in viewer.record.may_act_for:
        subject = await load_person(rep.pid)
        kinds = representation_kinds(rep, subject.record, viewer.record, today)
        if kinds:
            found.append((rep, subject, kinds))
    return found


async def subject_for(viewer_pid: str, on_behalf_of: str | None, ids: Ids, load_person: LoadPerson,
                      today: date) -> Subject:
    """Resolve `onBehalfOf` (a Person.id) to a subject the viewer may see, or fail alike
    for unknown and forbidden persons."""
    viewer = await load_person(viewer_pid)
    if on_behalf_of is None:
        return Subject(viewer_pid, viewer, ALL_KINDS)
    decoded = ids.decode("P", on_behalf_of)
    if decoded is None:
        raise NotFound(UNKNOWN_PERSON_TEXT)
    if decoded[0] == ids.pseudonym(viewer_pid):
        return Subject(viewer_pid, viewer, ALL_KINDS)
    if not viewer.ok:
        raise Unavailable("Personregisteret svarer ikke, så representasjon kan ikke sjekkes nå.")
    reps = viewer.record.may_act_for if viewer.record else ()
    rep = next((r for r in reps if ids.pseudonym(r.pid) == decoded[0]), None)
    if rep is None:
        raise NotFound(UNKNOWN_PERSON_TEXT)
    lookup = await load_person(rep.pid)
    kinds = representation_kinds(rep, lookup.record, viewer.record, today)
    if not kinds:
        raise NotFound(UNKNOWN_PERSON_TEXT)
    return Subject(rep.pid, lookup, kinds)


Chosen = list[tuple[SourceConfig, SourceOutcome | None]]
"""The sources a list consults, each with its outcome when it is known without asking."""


def choose(subject: Subject, catalogue: SourcesFile, wanted: ListFilter) -> Chosen:
    """The sources that apply to the subject (and the filter). Without the directory only
    hospitals can be told to apply; the others are reported as unknown, not asked."""
    chosen: Chosen = []
    for source in catalogue.sources:
        if not may_see_kind(source, subject.kinds) or not wanted.consults(source):
            continue
        if not applies_to_everyone(source) and not subject.lookup.ok:
            chosen.append((source, SourceOutcome(source.id, SourceState.UNAVAILABLE, message=DIRECTORY_DOWN_TEXT)))
        elif may_consult(source, subject.kinds, subject.lookup.record):
            chosen.append((source, None))
    return chosen


async def consult(subject: Subject, chosen: Chosen, wanted: ListFilter, load_source: LoadSource) -> list[Consulted]:
    """Ask the chosen sources that must be asked, concurrently."""
    pending = [load_source(s.id, subject.pid, wanted.time.wants_history(s)) for s, o in chosen if o is None]
    answers = iter(await asyncio.gather(*pending))
    return [Consulted(s, o if o is not None else next(answers)) for s, o in chosen]


def visible_rows(subject: Subject, consulted: Sequence[Consulted], wanted: ListFilter,
                 today: date) -> list[Appointment]:
    """The rows to show, in the list's order."""
    rows = [
        appt
        for c in consulted
        for appt in seen(c.source, c.outcome.rows, subject.kinds, subject.lookup.record, wanted.time, today)
        if wanted.statuses is None or appt.status in wanted.statuses
    ]
    return sorted(rows, key=sort_key)


def page_after(rows: list[Appointment], after: tuple[datetime, str, str] | None, first: int) -> tuple[
        list[Appointment], bool]:
    """Keyset pagination: rows after the cursor's position, and whether more follow."""
    start = 0 if after is None else next((i for i, a in enumerate(rows) if sort_key(a) > after), len(rows))
    page = rows[start:start + first]
    return page, start + first < len(rows)


def overlay_accepted(consulted: Sequence[Consulted], accepted: set[tuple[str, str]]) -> list[Consulted]:
    """Rows whose cancellation the provider accepted show as cancelled by the patient."""
    return [
        Consulted(c.source, replace(c.outcome, rows=tuple(
            with_cancellation(a, (a.source_id, a.upstream_id) in accepted) for a in c.outcome.rows)))
        if accepted else c
        for c in consulted
    ]
