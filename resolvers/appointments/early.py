"""The viewer's own list, started when the request is admitted instead of when its resolver runs.

A cold own list waits for the person directory (which says which GP and municipal sources
apply) and for the providers; everything the BFF does before it asks them is added to
the citizen's wait. Between the rate limit's answer and the `appointments` resolver lie
Strawberry's request handling, parsing, validation and execution (about 0.7 ms of CPU, more
on a busy process), so a request whose document is known to ask for exactly what the
resolver would start — the viewer's own list, alone, with the default filter (the web
client's `Appointments` document, its `filter` and `onBehalfOf` unset) — starts
it right after the rate limit admitted the request, and lets its calls leave before the
view's work (`start_own_list`), which then overlaps the providers' answers. The resolver
finds all of it under way (`AppointmentsBySourceLoader.start_own_list` starts nothing
twice).

A request refused by the rate limit or by validation still asks no one: a document is
started early only once a request with the same text has passed validation in this
process (validation depends on the text alone, the cost limit included), and only when
the request's own variables coerce and its page arguments are ones the resolver accepts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    VariableDefinitionNode,
    parse,
)
from graphql.execution.values import get_argument_values, get_variable_values

from bff.domain.errors import BadInput
from bff.domain.ids import Ids
from bff.runtime.lru import Lru
from resolvers.appointments.listing import AppointmentFilter, own_list_sources, page_bounds
from resolvers.context import Context

FIELD = "appointments"
ARGUMENTS = frozenset({"first", "after", "filter", "onBehalfOf"})
DEFAULTED = ("filter", "onBehalfOf")
"""Arguments an early list must leave unset (absent or null, as the web client's document
does with its variables): with either, the resolver starts another list (another window,
or another person's)."""
DOCUMENTS = 500
"""Validated document texts remembered (a few hundred bytes each: the text's own
string, shared with the request that was validated, and the list field's arguments)."""
MAX_DOCUMENT = 20_000
"""Characters: a longer document is never started early (the response cache keeps no
answer to one either)."""
READ_WAIT = 0.05
"""Seconds the request waits for its list's entries before it goes on (Redis answers in
well under a millisecond; slower, the calls leave whenever it answers)."""


@dataclass(frozen=True, slots=True)
class OwnList:
    """What an early start needs of a document that asks only for the viewer's own list:
    its operation's name and variables, and the list field's arguments — not the rest of
    its tree (its selections), which the view parses for itself."""

    name: str | None
    variables: tuple[VariableDefinitionNode, ...]
    field: FieldNode


def own_list(document: DocumentNode) -> OwnList | None:
    """The document's own-list field, when its one operation is a query of `appointments`
    alone (no directive) and it has no fragments (`EarlyLists.applies` checks the values
    of its arguments)."""
    if len(document.definitions) != 1 or not isinstance(document.definitions[0], OperationDefinitionNode):
        return None
    operation = document.definitions[0]
    if operation.operation is not OperationType.QUERY or operation.directives:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    field = selections[0]
    if field.name.value != FIELD or field.directives or \
            any(argument.name.value not in ARGUMENTS for argument in field.arguments or ()):
        return None
    return OwnList(operation.name.value if operation.name else None, tuple(operation.variable_definitions or ()),
                   FieldNode(name=field.name, arguments=field.arguments))


class EarlyLists:
    """The documents this process has seen pass validation, and which of them ask for the
    viewer's own list (`own_list`)."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self._schema = schema
        self._field = schema.query_type.fields[FIELD] if schema.query_type else None
        self._known: Lru[str, OwnList | bool] = Lru(DOCUMENTS)
        """Per validated text: its own-list field, or False."""

    def validated(self, query: str) -> None:
        """A request with this text passed validation (it was executed)."""
        if len(query) <= MAX_DOCUMENT and self._known.get(query) is None:
            try:
                found = own_list(parse(query))
            except GraphQLError:
                found = None
            self._known.put(query, found or False)

    def applies(self, query: str, operation_name: str | None, variables: Any, ids: Ids) -> bool:
        """Whether this request will ask for the viewer's own list alone (see the module)."""
        found = self._known.get(query)
        if not isinstance(found, OwnList) or self._field is None or not isinstance(variables, dict | None):
            return False
        if operation_name is not None and operation_name != found.name:
            return False
        coerced = get_variable_values(self._schema, found.variables, variables or {})
        if isinstance(coerced, list):
            return False  # the view reports the variables' errors, and asks no one
        try:
            arguments = get_argument_values(self._field, found.field, coerced)
            if any(arguments.get(name) is not None for name in DEFAULTED):
                return False
            page_bounds(ids, arguments.get("first"), arguments.get("after"))
        except (GraphQLError, BadInput):
            return False
        return True


async def start_own_list(context: Context) -> None:
    """Admit the request (the directory may be asked for the viewer), start the viewer's
    own list with the default filter, as its resolver will, and — for a viewer the
    directory is asked about — return once the list's calls have been sent.

    The request's own path from here to its resolver is CPU without a pause (the view,
    parsing, validation, execution: ~0.6 ms); the lookup and the list's fetches are tasks
    of their own, which would run only when it first waits, and the resolver waits for
    the directory's answer before anything else anyway. So the calls go first: one loop
    turn, in which the directory is asked (the viewer's record was read beside the rate
    limit) and the list's entries asked of Redis, in a command of their own; once those
    are read, one more, in which each source that applies to everyone and has no fresh
    entry is asked; once the directory has answered, one more, for the sources its
    answer says apply (GP, municipality). The view's work then overlaps the providers'.
    A viewer whose record was cached (a citizen back within minutes, whose entries are
    most likely cached too) goes on after the first turn: waiting for the entries would
    only add their round trip to an answer that needs no provider."""
    context.executing()
    appointments = context.appointments
    appointments.start_own_list(own_list_sources(context, AppointmentFilter().to_domain()),
                                context.viewer.pid, alone=True, now=True)
    await asyncio.sleep(0)
    lookup = context.persons.load(context.viewer.pid)
    if lookup.done():
        return
    await appointments.ahead.read(READ_WAIT)
    await asyncio.sleep(0)
    await asyncio.wait([lookup], timeout=max(0.0, context.deadline - asyncio.get_running_loop().time()))
    await asyncio.sleep(0)
