"""A cheaper way to execute the fields that only read an attribute and return a scalar.

A list page is mostly such fields (an appointment's title, start, status, ...: some 700
in a cold list of 50). graphql-core executes each one in full — it builds a resolve-info
object, calls Strawberry's wrapper, which calls the default resolver, checks whether the
result is awaitable, then walks `complete_value` down to the scalar — which was about a
sixth of the CPU of a cold list (README, Benchmark).

For a field that Strawberry marks as basic (no resolver, no field extensions, no
arguments) and whose type is a scalar or an enum, `LeanExecutionContext` reads the
attribute and coerces it directly. Anything unusual — a null for a non-null field, a
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


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with the basic-leaf-field shortcut above."""

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Path,
                      position_context: Any) -> Any:
        full = super().execute_field
        if self.middleware_manager is not None and self.middleware_manager.middlewares:
            return full(parent_type, source, field_details_list, path, position_context)
        field_name = field_details_list[0].node.name.value
        known = _plans.get((id(parent_type), field_name))
        if known is None or known[0] is not parent_type:
            known = _plans[(id(parent_type), field_name)] = (parent_type, _plan(parent_type, field_name))
        plan = known[1]
        if plan is None:
            return full(parent_type, source, field_details_list, path, position_context)
        resolve, name, leaf, non_null = plan
        try:
            value = resolve(source, name)
            if value is None:
                if non_null:
                    raise ValueError("null for a non-null field")
                return None
            coerced = leaf.coerce_output_value(value)
        except Exception:
            return full(parent_type, source, field_details_list, path, position_context)
        if coerced is None or coerced is Undefined:
            return full(parent_type, source, field_details_list, path, position_context)
        return coerced
