"""A cheaper way to execute the fields that only read an attribute.

A list page is mostly such fields (an appointment's title, start, status, location's
name, ...: some 700 in a cold list of 50). graphql-core executes each one in full — it
builds a path and a resolve-info object, calls Strawberry's wrapper, which calls the
default resolver, checks whether the result is awaitable, then walks `complete_value`
down to the scalar — a large share of a cold list's CPU (measured in
bench/results/NOTES.md).

`LeanExecutionContext` answers, in one loop per object, the fields Strawberry marks as
basic (no resolver, no field extensions, no arguments) whose type is a scalar or an enum,
those whose value is an object all of whose selected fields are answered that way
(`location { name address }`), and those whose value is a list of such objects (a
connection's `nodes`). The object's other fields go through graphql-core.
Anything unusual — a null for a non-null field, a value the scalar refuses, an object of
the wrong type, a resolver middleware (a schema extension with `resolve`) — sends the
whole object through graphql-core's own path, so errors read exactly as they always did;
the differential test in `tests/resolvers/test_lean_execution.py` holds the two paths to
the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLString,
    Undefined,
    is_leaf_type,
)
from graphql.pyutils import Path, is_iterable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

Plan = tuple[Callable[[Any, str], Any], str, GraphQLLeafType, bool]
"""How to read a basic leaf field: (default resolver, attribute name, scalar or enum type,
whether the field is non-null)."""

_plans: dict[tuple[int, str], tuple[GraphQLObjectType, Plan | None]] = {}
"""Per (parent type, field name); the parent type is kept so its id cannot be reused."""


def _basic(parent_type: GraphQLObjectType, field_name: str) -> tuple[StrawberryField, Any, bool] | None:
    """A field Strawberry marks as basic (no resolver, no field extensions) and without
    arguments: its definition, its type without the non-null wrapper, whether non-null."""
    field_def: GraphQLField | None = parent_type.fields.get(field_name)
    if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
        return None
    definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or not definition.is_basic_field:
        return None
    if isinstance(field_def.type, GraphQLNonNull):
        return definition, field_def.type.of_type, True
    return definition, field_def.type, False


def _plan(parent_type: GraphQLObjectType, field_name: str) -> Plan | None:
    """How to read `field_name` of `parent_type` directly, or None when it is no basic leaf."""
    basic = _basic(parent_type, field_name)
    if basic is None or not is_leaf_type(basic[1]):
        return None
    definition, leaf, non_null = basic
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


def _read_text(plan: Plan, source: Any) -> Any:
    """`_read` for String and ID fields: a `str` is its own answer (graphql-core's
    serializers return it unchanged); anything else goes the general way."""
    value = plan[0](source, plan[1])
    return value if type(value) is str else _read(plan, source)


def _read_flag(plan: Plan, source: Any) -> Any:
    """`_read` for Boolean fields: a `bool` is its own answer."""
    value = plan[0](source, plan[1])
    return value if type(value) is bool else _read(plan, source)


def _leaf_reader(plan: Plan) -> Callable[[Plan, Any], Any]:
    """The reading function for a leaf plan: built-in scalars whose answer is the value
    itself when it has the exact Python type get their shortcut."""
    leaf = plan[2]
    if leaf is GraphQLString or leaf is GraphQLID:
        return _read_text
    return _read_flag if leaf is GraphQLBoolean else _read


Reader = tuple[str, Callable[[Any, Any], Any], Any]
"""How to answer one field of an object directly: (response name, reading function, its plan)."""
Split = tuple[list[Reader], dict[str, Any]]
"""A selection's fields that take the shortcut, and the rest, as graphql-core groups them."""
ObjectPlan = tuple[Callable[[Any, str], Any], str, GraphQLObjectType, bool, list[Reader]]
"""How to read a basic field whose value is an object all of whose selected fields take the
shortcut (an appointment's `location { name address }`): (default resolver, attribute
name, object type, whether non-null, the readers of its fields)."""


def _read_object(plan: ObjectPlan, source: Any) -> Any:
    """The field's object, answered field by field, or `_UNDECIDED`."""
    resolve, name, object_type, non_null, readers = plan
    try:
        value = resolve(source, name)
        if value is None:
            return _UNDECIDED if non_null else None
        # Strawberry's is_type_of is an isinstance check that does not read the info.
        if object_type.is_type_of is not None and object_type.is_type_of(value, None) is not True:  # type: ignore[arg-type]
            return _UNDECIDED
    except Exception:
        return _UNDECIDED
    return _answer(readers, value)


ListPlan = tuple[Callable[[Any, str], Any], str, GraphQLObjectType, bool, bool, list[Reader]]
"""How to read a basic field whose value is a list of such objects (a connection's
`nodes`): (default resolver, attribute name, item type, whether the list is non-null,
whether its items are, the readers of an item's fields)."""


def _read_list(plan: ListPlan, source: Any) -> Any:
    """The field's list, each object answered field by field, or `_UNDECIDED`."""
    resolve, name, item_type, non_null, items_non_null, readers = plan
    try:
        value = resolve(source, name)
        if value is None:
            return _UNDECIDED if non_null else None
        if not is_iterable(value):
            return _UNDECIDED
        is_type_of = item_type.is_type_of
        answer: list[Any] = []
        for item in value:
            if item is None:
                if items_non_null:
                    return _UNDECIDED
                answer.append(None)
                continue
            if is_type_of is not None and is_type_of(item, None) is not True:  # type: ignore[arg-type]
                return _UNDECIDED
            one = _answer(readers, item)
            if one is _UNDECIDED:
                return _UNDECIDED
            answer.append(one)
    except Exception:
        return _UNDECIDED
    return answer


def _answer(readers: list[Reader], source: Any) -> Any:
    """The fields `readers` answer for one object, by response name, or `_UNDECIDED`."""
    answer: dict[str, Any] = {}
    for response_name, read, plan in readers:
        value = read(plan, source)
        if value is _UNDECIDED:
            return _UNDECIDED
        answer[response_name] = value
    return answer


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with the basic-field shortcut above."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        """Tell the request's context it passed validation (`Context.executing`)."""
        executing = getattr(self.context_value, "executing", None)
        if executing is not None:
            executing()
        return super().execute_operation(serially)

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Path | None,
                       grouped_field_set: dict[str, Any], position_context: Any) -> Any:
        split = self._split(parent_type, grouped_field_set)
        if split is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        readers, rest = split
        values = _answer(readers, source_value)
        if values is _UNDECIDED:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
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
            readers: list[Reader] = []
            rest: dict[str, Any] = {}
            for response_name, field_details_list in grouped_field_set.items():
                field_name = field_details_list[0].node.name.value
                plan = _cached_plan(parent_type, field_name)
                if plan is not None:
                    readers.append((response_name, _leaf_reader(plan), plan))
                elif (object_plan := self._object_plan(parent_type, field_details_list)) is not None:
                    readers.append((response_name, _read_object, object_plan))
                elif (list_plan := self._list_plan(parent_type, field_details_list)) is not None:
                    readers.append((response_name, _read_list, list_plan))
                else:
                    rest[response_name] = field_details_list
            split = (readers, rest) if readers else None
        splits[key] = (parent_type, grouped_field_set, split)
        return split

    def _object_plan(self, parent_type: GraphQLObjectType, field_details_list: Any) -> ObjectPlan | None:
        """A plan for a basic object field whose selected fields all take the shortcut."""
        basic = _basic(parent_type, field_details_list[0].node.name.value)
        if basic is None:
            return None
        definition, field_type, non_null = basic
        if not isinstance(field_type, GraphQLObjectType):
            return None
        readers = self._all_readers(field_type, field_details_list)
        if readers is None:
            return None
        return definition.default_resolver, definition.python_name, field_type, non_null, readers

    def _list_plan(self, parent_type: GraphQLObjectType, field_details_list: Any) -> ListPlan | None:
        """A plan for a basic list field of objects whose selected fields all take the shortcut."""
        basic = _basic(parent_type, field_details_list[0].node.name.value)
        if basic is None or not isinstance(basic[1], GraphQLList):
            return None
        definition, field_type, non_null = basic
        item_type, items_non_null = field_type.of_type, False
        if isinstance(item_type, GraphQLNonNull):
            item_type, items_non_null = item_type.of_type, True
        if not isinstance(item_type, GraphQLObjectType):
            return None
        readers = self._all_readers(item_type, field_details_list)
        if readers is None:
            return None
        return definition.default_resolver, definition.python_name, item_type, non_null, items_non_null, readers

    def _all_readers(self, object_type: GraphQLObjectType, field_details_list: Any) -> list[Reader] | None:
        """The readers of an object's selected fields, when every one of them has one."""
        grouped, defer_usages, _ = self.collect_subfields(object_type, field_details_list)
        if defer_usages:
            return None
        inner = self._split(object_type, grouped)
        if inner is None or inner[1]:
            return None
        return inner[0]


def _cached_plan(parent_type: GraphQLObjectType, field_name: str) -> Plan | None:
    known = _plans.get((id(parent_type), field_name))
    if known is None or known[0] is not parent_type:
        known = _plans[(id(parent_type), field_name)] = (parent_type, _plan(parent_type, field_name))
    return known[1]


def _ordered(grouped_field_set: dict[str, Any], values: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    """The two parts of an object's answer, in the order the query asked for its fields."""
    return {name: values[name] if name in values else others[name] for name in grouped_field_set
            if name in values or name in others}
