"""A cheaper way to execute the fields that only read an attribute and return a scalar.

A list page is mostly such fields (an appointment's title, start, status, ...: some 700
in a cold list of 50). graphql-core executes each one in full — it builds a resolve-info
object, calls Strawberry's wrapper, which calls the default resolver, checks whether the
result is awaitable, then walks `complete_value` down to the scalar — which was about a
sixth of the CPU of a cold list (README, Benchmark).

For a field that Strawberry marks as basic (no resolver, no field extensions, no
arguments) and whose type is a scalar or an enum, `LeanExecutionContext` reads the
attribute and coerces it directly, in one loop per object (no path or resolve-info
objects); the object's other fields go through graphql-core. Anything unusual — a null for a non-null field, a
value the scalar refuses, a resolver middleware (a schema extension with `resolve`) —
goes through graphql-core's own path, so errors read exactly as they always did; the
differential test in `tests/resolvers/test_lean_execution.py` holds the two paths to the
same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    Undefined,
    is_leaf_type,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

Plan = tuple[Callable[[Any, str], Any], str, GraphQLLeafType, bool]
"""How to read a basic leaf field: (default resolver, attribute name, scalar or enum type,
whether the field is non-null)."""

_plans: dict[tuple[int, str], tuple[GraphQLObjectType, Plan | None]] = {}
"""Per (parent type, field name); the parent type is kept so its id cannot be reused."""


def _plan(parent_type: GraphQLObjectType, field_name: str) -> Plan | None:
    """How to read `field_name` of `parent_type` directly, or None when it needs the full path."""
    field_def: GraphQLField | None = parent_type.fields.get(field_name)
    if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
        return None
    definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or not definition.is_basic_field:
        return None
    non_null = isinstance(field_def.type, GraphQLNonNull)
    leaf = field_def.type.of_type if isinstance(field_def.type, GraphQLNonNull) else field_def.type
    if not is_leaf_type(leaf):
        return None
    return definition.default_resolver, definition.python_name, leaf, non_null


_UNDECIDED = object()
"""A value the shortcut leaves to graphql-core's path (which then reports the error)."""


def _read(plan: Plan, source: Any) -> Any:
    """The field's value, coerced for the response, or `_UNDECIDED`."""
    resolve, name, leaf, non_null = plan
    try:
        value = resolve(source, name)
        if value is None:
            return _UNDECIDED if non_null else None
        coerced = leaf.coerce_output_value(value)
    except Exception:
        return _UNDECIDED
    return _UNDECIDED if coerced is None or coerced is Undefined else coerced


Split = tuple[list[tuple[str, Plan]], dict[str, Any]]
"""A selection's basic leaf fields (response name, plan) and the rest, as graphql-core groups them."""


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with the basic-leaf-field shortcut above."""

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Path | None,
                       grouped_field_set: dict[str, Any], position_context: Any) -> Any:
        split = self._split(parent_type, grouped_field_set)
        if split is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        leaves, rest = split
        values: dict[str, Any] = {}
        for response_name, plan in leaves:
            value = _read(plan, source_value)
            if value is _UNDECIDED:
                return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
            values[response_name] = value
        if not rest:
            return values
        others = super().execute_fields(parent_type, source_value, path, rest, position_context)
        if isinstance(others, dict):
            return _ordered(grouped_field_set, values, others)

        async def in_order() -> dict[str, Any]:
            return _ordered(grouped_field_set, values, await others)

        return in_order()

    def _split(self, parent_type: GraphQLObjectType, grouped_field_set: dict[str, Any]) -> Split | None:
        """Which fields of this selection take the shortcut; None when none can (or a resolver
        middleware must see every field). graphql-core reuses one grouped field set for every
        object of a list, so this is worked out once per selection and request."""
        splits: dict[tuple[int, int], tuple[GraphQLObjectType, dict[str, Any], Split | None]] = \
            self.__dict__.setdefault("_lean_splits", {})
        key = (id(parent_type), id(grouped_field_set))
        known = splits.get(key)
        if known is not None and known[0] is parent_type and known[1] is grouped_field_set:
            return known[2]
        split: Split | None = None
        if not (self.middleware_manager is not None and self.middleware_manager.middlewares):
            leaves: list[tuple[str, Plan]] = []
            rest: dict[str, Any] = {}
            for response_name, field_details_list in grouped_field_set.items():
                plan = _cached_plan(parent_type, field_details_list[0].node.name.value)
                if plan is None:
                    rest[response_name] = field_details_list
                else:
                    leaves.append((response_name, plan))
            split = (leaves, rest) if leaves else None
        splits[key] = (parent_type, grouped_field_set, split)
        return split


def _cached_plan(parent_type: GraphQLObjectType, field_name: str) -> Plan | None:
    known = _plans.get((id(parent_type), field_name))
    if known is None or known[0] is not parent_type:
        known = _plans[(id(parent_type), field_name)] = (parent_type, _plan(parent_type, field_name))
    return known[1]


def _ordered(grouped_field_set: dict[str, Any], values: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    """The two parts of an object's answer, in the order the query asked for its fields."""
    return {name: values[name] if name in values else others[name] for name in grouped_field_set
            if name in values or name in others}
