"""Error presentation: expected failures keep their message and get a stable `code`;
anything unexpected is masked, with a correlation id the log shares."""

from __future__ import annotations

import logging
import uuid

import strawberry
import structlog
from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types.execution import ExecutionContext

from bff.domain.errors import PublicError

log = structlog.get_logger(__name__)
UNEXPECTED_TEXT = "Noe gikk galt hos oss. Prøv igjen om litt."


class PublicErrors(MaskErrors):
    """Masks unexpected errors; labels expected ones with `extensions.code`."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message=UNEXPECTED_TEXT)

    def _process_result(self, result: object) -> None:
        # Strawberry first checks the result against a runtime Protocol, ~15 µs an
        # operation; most results have no errors to look at.
        if getattr(result, "errors", None):
            super()._process_result(result)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._present(e) for e in errors]

    def _present(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, PublicError):
            return GraphQLError(original.message, nodes=error.nodes, source=error.source,
                                positions=error.positions, path=error.path,
                                extensions={"code": original.code})
        if not _is_unexpected(error):
            return error
        correlation = uuid.uuid4().hex[:16]
        # The traceback only where an operator asks for it (BFF_LOG_LEVEL=DEBUG).
        log.error("graphql.unexpected_error", correlation_id=correlation, path=error.path,
                  error=type(original).__name__, exc_info=original if log.is_enabled_for(logging.DEBUG) else None)
        return GraphQLError(f"{UNEXPECTED_TEXT} (referanse {correlation})", nodes=error.nodes, source=error.source,
                            positions=error.positions, path=error.path,
                            extensions={"code": "INTERNAL", "correlationId": correlation})


class QuietSchema(strawberry.Schema):
    """Strawberry logs every error of a result at ERROR with a traceback. A client's
    mistake (syntax, validation, a refused argument, an unknown id) is one INFO line with
    its code; an unexpected error is logged once, by `PublicErrors`, with its reference."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if _is_unexpected(error) or (error.extensions or {}).get("code") == "INTERNAL":
                continue
            original = error.original_error
            code = original.code if isinstance(original, PublicError) else (error.extensions or {}).get(
                "code", "GRAPHQL_VALIDATION_FAILED" if error.path is None else "BAD_REQUEST")
            log.info("graphql.client_error", code=code, message=error.message, path=error.path)


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (PublicError, GraphQLError))
