"""Error presentation: expected failures keep their message and get a stable `code`;
anything unexpected is masked, with a correlation id the log shares."""

from __future__ import annotations

import uuid

import structlog
from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from bff.domain.errors import PublicError

log = structlog.get_logger(__name__)


class PublicErrors(MaskErrors):
    """Masks unexpected errors; labels expected ones with `extensions.code`."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Unexpected error.")

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
        log.error("graphql.unexpected_error", correlation_id=correlation, path=error.path,
                  error=type(original).__name__, exc_info=original)
        return GraphQLError(f"Unexpected error (reference {correlation}).", nodes=error.nodes,
                            source=error.source, positions=error.positions, path=error.path,
                            extensions={"code": "INTERNAL", "correlationId": correlation})


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (PublicError, GraphQLError))
