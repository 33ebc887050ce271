"""Errors a use case raises for a person to read; the CLI and the API print them as they are."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal with a message that says what was wrong and where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass
