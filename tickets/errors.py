"""Typed errors of the tickets package. The server's error middleware renders any exception that has
``http_status``, ``slug`` and ``message`` (plus optional ``field``, ``status``, ``allowed``) as JSON."""
from __future__ import annotations


class TicketError(Exception):
    http_status = 400
    field: str | None = None
    status: str | None = None
    allowed: list[str] | None = None

    def __init__(self, slug: str, message: str) -> None:
        super().__init__(message)
        self.slug = slug
        self.message = message


class InvalidField(TicketError):
    http_status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__("invalid_field", message)
        self.field = field


class Unauthorized(TicketError):
    http_status = 401


class Forbidden(TicketError):
    http_status = 403


class NotFound(TicketError):
    http_status = 404


class Conflict(TicketError):
    http_status = 409


class UnsupportedMediaType(TicketError):
    http_status = 415


class TooManyRequests(TicketError):
    """Answered 429 with ``Retry-After`` (whole seconds) by the error middleware."""

    http_status = 429

    def __init__(self, slug: str, message: str, retry_after: int) -> None:
        super().__init__(slug, message)
        self.retry_after = max(1, int(retry_after))


class Refused(Conflict):
    """The workflow refused an action: names the current state and the allowed actions."""

    def __init__(self, slug: str, message: str, status: str, allowed: list[str], field: str | None = None) -> None:
        super().__init__(slug, message)
        self.status = status
        self.allowed = allowed
        self.field = field
        if slug in ("missing_field", "invalid_field"):
            self.http_status = 400
