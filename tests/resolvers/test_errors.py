"""Unexpected errors are masked with a correlation id; expected ones keep message and code."""

from __future__ import annotations

import re
from typing import Any

import pytest
import strawberry

from bff.domain.errors import NotFound
from resolvers.errors import PublicErrors

pytestmark = pytest.mark.unit


@strawberry.type
class Broken:
    @strawberry.field
    def crash(self) -> str:
        raise RuntimeError("secret internal detail 12345678901")

    @strawberry.field
    def refused(self) -> str:
        raise NotFound("Fant ikke avtalen.")


SCHEMA = strawberry.Schema(query=Broken, extensions=[PublicErrors])


def test_unexpected_errors_are_masked_with_a_reference_that_the_log_shares(capsys: Any) -> None:
    result = SCHEMA.execute_sync("{ crash }")
    assert result.errors is not None
    error = result.errors[0]
    assert "secret" not in error.message and "12345678901" not in error.message
    reference = (error.extensions or {})["correlationId"]
    assert re.fullmatch(r"[0-9a-f]{16}", reference)
    assert error.message == f"Noe gikk galt hos oss. Prøv igjen om litt. (referanse {reference})"
    assert (error.extensions or {})["code"] == "INTERNAL"
    assert reference in capsys.readouterr().out


def test_expected_errors_keep_their_message_and_code() -> None:
    result = SCHEMA.execute_sync("{ refused }")
    assert result.errors is not None
    assert result.errors[0].message == "Fant ikke avtalen."
    assert (result.errors[0].extensions or {}) == {"code": "NOT_FOUND"}
