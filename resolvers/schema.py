"""The schema object, with its protective extensions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter, ValidationCache
from strawberry.schema.config import StrawberryConfig

from resolvers.cancellation import Mutation, Subscription
from resolvers.errors import PublicErrors
from resolvers.query import Query

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
PARSER_CACHE_SIZE = 256


def build_schema() -> strawberry.Schema:
    """The GraphQL schema; `bff export-schema` prints it as SDL."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[
            PublicErrors,
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=PARSER_CACHE_SIZE),
            lambda: ValidationCache(maxsize=PARSER_CACHE_SIZE),
        ],
    )
