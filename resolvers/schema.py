"""The schema object, with its protective extensions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from resolvers.cancellation import Mutation, Subscription
from resolvers.errors import PublicErrors
from resolvers.limits import CostLimitRule
from resolvers.query import Query

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
PARSER_CACHE_SIZE = 256


def build_schema(production: bool = False) -> strawberry.Schema:
    """The GraphQL schema; `bff export-schema` prints it as SDL. In production,
    introspection and "did you mean" suggestions are off."""
    hardening = [DisableIntrospection] if production else []
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=production),
        extensions=[
            *hardening,
            lambda: AddValidationRules([CostLimitRule]),
            PublicErrors,
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=PARSER_CACHE_SIZE),
            lambda: ValidationCache(maxsize=PARSER_CACHE_SIZE),
        ],
    )
