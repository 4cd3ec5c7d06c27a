"""A span per GraphQL operation, named by its type and (when it is a plain name) its
operation name; never its variables. Added to the schema only while tracing is on."""

from __future__ import annotations

import re
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from bff.runtime import tracing

PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z_]{0,63}$")
"""Operation names are the client's text: one with digits in it is not recorded."""


class OperationSpan(SchemaExtension):
    """`graphql.operation`, around parsing, validation and execution."""

    def on_operation(self) -> Iterator[None]:
        with tracing.span("graphql.operation") as current:
            yield
            if current is not None:
                context = self.execution_context
                current.set_attribute("graphql.operation.type", context.operation_type.value)
                if context.operation_name and PLAIN_NAME.match(context.operation_name):
                    current.set_attribute("graphql.operation.name", context.operation_name)
                errors = context.result.errors if context.result else None
                current.set_attribute("graphql.errors", len(errors or ()))
