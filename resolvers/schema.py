"""The schema object, with its protective extensions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.schema.config import StrawberryConfig

from resolvers.activity.queries import ActivityQueries
from resolvers.appointments.queries import AppointmentQueries
from resolvers.cancellations.mutations import Mutation
from resolvers.cancellations.queries import CancellationQueries
from resolvers.cancellations.subscriptions import Subscription
from resolvers.errors import PublicErrors, QuietSchema
from resolvers.execution import LeanExecutionContext
from resolvers.limits import CostLimitRule
from resolvers.node import NodeQueries
from resolvers.persons.queries import PersonQueries
from resolvers.sources.queries import SourceQueries
from resolvers.tracing import OperationSpan

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
PARSER_CACHE_SIZE = 256


@strawberry.type(description="Read the appointment list and what it is built from.")
class Query(PersonQueries, AppointmentQueries, CancellationQueries, SourceQueries, NodeQueries, ActivityQueries):
    """Each domain's root fields, in the order the schema lists them."""


LIMIT_RULES = (
    depth_validator(MAX_DEPTH, None, None),
    alias_validator(MAX_ALIASES),
    CostLimitRule,
)
"""Created once, so the validation cache (keyed by the rule classes) hits on every repeat
of a document; limiter extensions built per request would each make new classes."""


def build_schema(production: bool = False, traced: bool = False) -> strawberry.Schema:
    """The GraphQL schema; `bff export-schema` prints it as SDL. In production,
    introspection and "did you mean" suggestions are off; `traced`: a span per operation."""
    hardening = [DisableIntrospection] if production else []
    tracing = [OperationSpan] if traced else []
    return QuietSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=production),
        execution_context_class=LeanExecutionContext,
        extensions=[
            *tracing,
            *hardening,
            lambda: AddValidationRules(list(LIMIT_RULES)),
            PublicErrors,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=PARSER_CACHE_SIZE),
            lambda: ValidationCache(maxsize=PARSER_CACHE_SIZE),
        ],
    )
