"""Domain errors. Each names the field or object at fault, so callers can say exactly what."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every business-rule failure."""

    status = 422
    title = "Unprocessable claim"

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.extensions: dict[str, Any] = {}  # extra members of its problem document


class InvalidInput(DomainError):
    """Input broke a business rule (unknown employee, bad amount, ...)."""


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    """The request is valid but the object is not in a state that allows it."""

    status = 409
    title = "Conflict"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class UnbalancedVoucher(DomainError):
    title = "Unbalanced voucher"
