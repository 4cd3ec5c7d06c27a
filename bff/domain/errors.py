"""Errors that are meant for the client: a stable `code` and a clear message.

Anything else raised while resolving is masked (the client sees a correlation id, the
log has the detail)."""

from __future__ import annotations

import enum


class PublicError(Exception):
    """An expected failure, shown to the client with its code."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadInput(PublicError):
    """An argument is out of range or malformed."""

    code = "BAD_USER_INPUT"


class NotFound(PublicError):
    """Unknown, or not yours: the two answer exactly alike."""

    code = "NOT_FOUND"


class Unavailable(PublicError):
    """A dependency needed for this answer is down; try again later."""

    code = "UNAVAILABLE"


class Coded(enum.Enum):
    """An answer a client acts on: its name is the stable (English) code, its value the
    message for the citizen (bokmål)."""

    @property
    def code(self) -> str:
        return self.name

    @property
    def message(self) -> str:
        return str(self.value)
