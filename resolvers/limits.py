"""A query cost limit, checked during validation (before any resolver runs).

Each field costs 1, times the number of rows it can appear in: inside
`appointments(first: n)` every field counts n times (50 by default; 100, the maximum,
when `first` is a variable). A query over `MAX_COST` is refused with a clear message."""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

MAX_COST = 10_000
LIST_FIELDS = {"appointments": 50}
MAX_FIRST = 100


def _rows(field: FieldNode) -> int:
    default = LIST_FIELDS.get(field.name.value)
    if default is None:
        return 1
    for argument in field.arguments or ():
        if argument.name.value == "first":
            value = argument.value
            return min(int(value.value), MAX_FIRST) if isinstance(value, IntValueNode) else MAX_FIRST
    return default


class CostLimitRule(ValidationRule):
    """Refuses operations whose estimated cost exceeds `MAX_COST`."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        cost = self._cost(node.selection_set, 1, frozenset())
        if cost > MAX_COST:
            self.report_error(GraphQLError(
                f"This query is too expensive (estimated cost {cost}, limit {MAX_COST}): ask for fewer rows "
                f"(`first`) or fewer fields.", node))

    def _cost(self, selection_set: SelectionSetNode | None, multiplier: int, seen: frozenset[str]) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                rows = multiplier * _rows(selection)
                total += multiplier + self._cost(selection.selection_set, rows, seen)
            elif isinstance(selection, InlineFragmentNode):
                total += self._cost(selection.selection_set, multiplier, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = self.context.get_fragment(selection.name.value)
                if fragment is not None:
                    total += self._cost(fragment.selection_set, multiplier, seen | {selection.name.value})
            if total > MAX_COST:
                return total
        return total
