"""What can go wrong with a transaction, told apart so that nothing is ever guessed.

- A failure *before* COMMIT was sent: the transaction is certainly rolled back; running the
  work again is safe.
- A deadlock or serialization failure: certainly rolled back too, and the same work usually
  succeeds when run again, so it is retried a bounded number of times.
- A failure *while* COMMIT was on its way (the connection dropped, the server went away): the
  outcome is unknown. The work must not be run again blindly; the caller is answered 503 with
  `Retry-After`, and the inbox makes the client's retry safe.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

# SQLSTATE codes after which PostgreSQL has rolled the transaction back and a retry is sound.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
RETRY_AFTER_SECONDS = 1


class CommitOutcomeUnknown(Exception):
    """The commit may or may not have happened; the request must be retried by its sender."""

    retry_after_seconds = RETRY_AFTER_SECONDS

    def __init__(self, cause: BaseException | None = None) -> None:
        reason = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        super().__init__(f"the outcome of the commit is unknown{reason}".splitlines()[0][:300])


class LocksOutOfOrder(Exception):
    """A command in a shared transaction would lock a row below one that an earlier command
    of that transaction holds (see `UnitOfWork.take_in_order`): it runs in the next one."""

    def __init__(self, resource: str, key: int, held: int) -> None:
        super().__init__(f"{resource} {key} comes before {held}, which this transaction holds")
        self.resource = resource


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, when the driver reports one."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_retryable_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction was rolled back, run it again."""
    if sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    # SQLite: another process held the write lock past busy_timeout.
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return type(orig).__name__ == "OperationalError" and "database is locked" in str(orig)
