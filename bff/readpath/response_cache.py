"""Answers to query documents, reused while nothing they are built from changed.

A warm list spends much of its CPU in GraphQL field execution (bench/results/NOTES.md). For
any query document — the web client's trusted documents and ad-hoc ones alike — an answer
is kept in process memory under: the document (normalized: an ad-hoc document that differs
only in spacing, commas or comments is the same), its variables, the viewer, every person
the variables or the document's literals name (a represented person, an appointment's
owner), each of those persons' *generation* — a random token renewed whenever their cached provider answers, directory
record or cancellations change. An answer is reused for at most `MAX_AGE` after it began
to be computed (`canCancel` and the day's window depend on the clock; the age limit also
bounds how long a provider's failure can go unseen). Each answer ages on its own clock,
so answers do not all expire together at a minute boundary and make every active
citizen's next request a recomputation at once. Answers with errors, or from a source
that was not OK, are not kept. A reused answer is audited exactly as a computed one.
Without Redis nothing is reused. Data of persons neither the variables nor the document
name (e.g. the records behind `me.mayActFor`) can make an answer at most `MAX_AGE` old.
Documents longer than `MAX_DOCUMENT` and documents with a mutation or subscription are
never kept; what is known about each document (query only? its normalized hash, the
persons its literals name) is itself kept for `DOCUMENTS` documents."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from graphql import (
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    parse,
    print_ast,
    visit,
)
from graphql.language import Visitor
from redis.exceptions import RedisError

from bff.domain.ids import Ids, document_hash
from bff.runtime.lru import Lru
from bff.store.audit import Actor, AuditLog
from bff.store.cache import AppointmentCache, Count

MAX_ENTRIES = 10_000
MAX_DOCUMENT = 20_000
"""Characters: a longer ad-hoc document is computed afresh every time."""
DOCUMENTS = 2_000
"""Documents whose analysis (`Document`) is kept."""
MAX_AGE = 60.0
"""Seconds an answer may be reused, counted from when its computation began."""
ID_KINDS = ("P", "A", "C")
"""Person, appointment and cancellation-request ids name a person (owner or actor)."""
Audit = tuple[str, str, str, str, str, Actor]
"""An audit entry as `AuditLog.record` takes it: actor pid, subject pid, action, outcome,
what, and who the actor is to the subject."""


@dataclass(frozen=True, slots=True)
class Kept:
    """A computed answer and the audit entries computing it wrote."""

    data: Any
    """The answer's `data`, encoded once (an `orjson.Fragment`): a reuse copies its bytes
    into the response instead of serializing the answer again."""
    audits: tuple[Audit, ...]
    generations: tuple[bytes, ...]
    """The named persons' generations it was computed from."""
    expires: float
    """`time.monotonic()` from which the answer is computed again."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a request's answer is kept, the persons (pseudonyms) it names, and whether its
    document reads persons' data (`Document.personal`)."""

    key: tuple[Any, ...]
    persons: list[str]
    personal: bool


@dataclass(frozen=True, slots=True)
class Lookup:
    """Where a request's answer is kept, and the generations an answer must match."""

    key: tuple[Any, ...]
    generations: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """What a query document's answers are kept under: its normalized text's hash, and the
    id literals written into it (persons they name are added to the key)."""

    key: str
    literals: tuple[str, ...]
    personal: bool = True
    """Whether it asks for any root field but introspection and `sources`: every such
    field reads the viewer's directory record (to audit the access, at least)."""


NOT_KEPT = Document("", ())
"""A document whose answers are never kept (too long, not only queries, not GraphQL)."""
IMPERSONAL = frozenset({"__typename", "__schema", "__type", "sources"})
"""Root fields that read no person's data."""


class _Literals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        self.found.append(node.value)


def analyse(text: str) -> Document:
    """A document as the cache sees it (NOT_KEPT unless every operation is a query)."""
    if len(text) > MAX_DOCUMENT:
        return NOT_KEPT
    try:
        document = parse(text)
    except GraphQLError:
        return NOT_KEPT
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations or any(d.operation is not OperationType.QUERY for d in operations):
        return NOT_KEPT
    literals = _Literals()
    visit(document, literals)
    personal = any(not isinstance(selection, FieldNode) or selection.name.value not in IMPERSONAL
                   for operation in operations for selection in operation.selection_set.selections)
    return Document(document_hash(print_ast(document)), tuple(literals.found), personal)


class ResponseCache:
    """In-process answers for trusted query documents, keyed as the module explains."""

    def __init__(self, cache: AppointmentCache, ids: Ids, documents: Iterable[str]) -> None:
        self._cache = cache
        self._ids = ids
        self._documents: Lru[str, Document] = Lru(DOCUMENTS)
        self._trusted = {text: analyse(text) for text in documents}
        """The manifest's documents, analysed once and never forgotten."""
        self._kept: Lru[tuple[Any, ...], Kept] = Lru(MAX_ENTRIES)

    def __len__(self) -> int:
        """How many answers are kept."""
        return len(self._kept)

    def document(self, query: str | None) -> Document:
        """What is known of `query` (analysed on first sight)."""
        if query is None:
            return NOT_KEPT
        found = self._trusted.get(query) or self._documents.get(query)
        if found is None:
            found = analyse(query)
            self._documents.put(query, found)
        return found

    def applies(self, query: str | None) -> bool:
        return self.document(query) is not NOT_KEPT

    def place(self, viewer_pid: str, query: str, variables: Any, operation: str | None) -> Place | None:
        """Where this request's answer is kept (one place per document, variables, viewer
        and named persons: an answer from older generations is replaced there, not left
        to take memory), or None when the answer must be computed afresh."""
        document = self.document(query)
        if document is NOT_KEPT:
            return None
        try:
            canonical = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        named = self._named(variables) | self._named({"literals": list(document.literals)})
        persons = [self._ids.pseudonym(viewer_pid), *sorted(named)]
        return Place((document.key, canonical, operation, tuple(persons)), persons, document.personal)

    def holds(self, place: Place) -> bool:
        """Whether an answer kept at `place` may still be reused (if its generations hold)."""
        return self._unexpired(place) is not None

    def _unexpired(self, place: Place) -> Kept | None:
        """The answer kept at `place`, unless it is past `MAX_AGE` (or there is none)."""
        kept = self._kept.get(place.key)
        return kept if kept is not None and time.monotonic() < kept.expires else None

    async def reuse(self, place: Place, audit: AuditLog,
                    count: Count | None = None) -> tuple[Kept | None, Lookup | None, bool]:
        """The answer kept at `place` if it is still current, with its audit entries
        written by the same Redis command that confirms it (one round trip); else None
        and where to keep the answer computed now (None when it may not be kept: Redis
        cannot say, or a person has no generation yet). That command also counts the
        request (`count`, the viewer's rate limit), and so does the one that reads the
        generations when there is none to confirm: the last value says whether it was
        counted. Raises `Limited` when the request is over the limit."""
        kept = self._unexpired(place)
        current: list[bytes | None] | list[bytes] | None
        if kept is not None:
            try:
                current = await self._cache.append_if_current(place.persons, kept.generations,
                                                              [audit.appendable(*entry) for entry in kept.audits],
                                                              count)
            except (RedisError, OSError):
                return None, None, False  # computed afresh, and audited as such
            if current is None:
                return kept, None, True
            counted = count is not None
        elif count is not None:
            # Not kept here: the generations, to keep the answer computed now under, are
            # read by the command that counts the request (one round trip, not two).
            try:
                current = await self._cache.generations(place.persons, count)
            except (RedisError, OSError):
                return None, None, False  # counted (or refused) by the caller, on its own
            counted = True
        else:
            current = await self._cache.generations(place.persons)
            counted = False
        self._kept.discard(place.key)  # an answer past its age or its generations, if any
        if current is None or any(generation is None for generation in current):
            return None, None, counted
        return None, Lookup(place.key, tuple(cast(list[bytes], current))), counted

    def _named(self, variables: Any) -> set[str]:
        """Pseudonyms of the persons named by ids among the variables (at any depth)."""
        found: set[str] = set()
        values = list(variables.values()) if isinstance(variables, dict) else []
        while values:
            value = values.pop()
            if isinstance(value, dict):
                values += value.values()
            elif isinstance(value, list):
                values += value
            elif isinstance(value, str):
                for kind in ID_KINDS:
                    parts = self._ids.decode(kind, value)
                    if parts:
                        found.add(parts[-1] if kind != "P" else parts[0])
                        break
        return found

    def put(self, lookup: Lookup, data: Any, audits: tuple[Audit, ...], started: float) -> None:
        """Keep an answer whose computation began at `started` (`time.monotonic()`)."""
        self._kept.put(lookup.key, Kept(orjson.Fragment(orjson.dumps(data)), audits, lookup.generations,
                                        started + MAX_AGE))
