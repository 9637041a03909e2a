"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from finoa.domain.errors import DomainError
from finoa.store.errors import CommitOutcomeUnknown

PROBLEM_TYPE = "https://finoa.dev/problems/"


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body = problem_body(status, title, detail, kind=kind, field=field, **extra)
    return ProblemResponse(body, status_code=status, headers=headers)


class ApiProblem(Exception):
    """Raised by routes and dependencies to answer with a problem."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.kind, self.field, self.headers = kind, field, headers


def problem_body(
    status: int, title: str, detail: str, *, kind: str, field: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The members of a problem document (RFC 9457) plus `field` when one is to blame."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    body.update(extra)
    return body


def domain_problem(exc: DomainError) -> dict[str, Any]:
    """A business rule's refusal as a problem document."""
    detail = f"{exc.field}: {exc.message}" if exc.field else exc.message
    kind = type(exc).__name__.replace("Invalid", "invalid-").lower().strip("-")
    return problem_body(exc.status, exc.title, detail, kind=kind, field=exc.field)


def unknown_outcome_problem(exc: CommitOutcomeUnknown) -> dict[str, Any]:
    """The commit's outcome is unknown: the sender retries, and its retry is deduplicated."""
    return problem_body(
        503,
        "Outcome unknown",
        "the database connection failed while committing, so it is not known whether this "
        "request was applied; send it again with the same Idempotency-Key or message id "
        f"after {exc.retry_after_seconds} s: a repeat is recognised and applied at most once",
        kind="outcome-unknown",
    )


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += ("." if name else "") + str(part)
    return name or "body"


def _validation_problem(exc: RequestValidationError) -> ProblemResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        msg = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {})
        return problem(
            400,
            "Malformed JSON",
            f"the request body is not valid JSON: {msg.get('error', 'parse error')}",
            kind="malformed-json",
            field="body",
        )
    items = []
    for e in errors:
        field = _field_name(tuple(e.get("loc", ())))
        message = str(e.get("msg", "invalid"))
        if e.get("type") == "extra_forbidden":
            message = "is not a known field"
        elif message.startswith("Value error, "):
            # model-level checks say "field: reason"
            message = message[len("Value error, ") :]
            if ": " in message:
                name, message = message.split(": ", 1)
                field = name if field == "body" else f"{field}.{name}"
        items.append({"field": field, "message": message})
    first = items[0]
    return problem(
        422,
        "Invalid request",
        f"{first['field']}: {first['message']}",
        kind="validation",
        field=first["field"],
        errors=items,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> ProblemResponse:
        return _validation_problem(exc)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> ProblemResponse:
        body = domain_problem(exc)
        return ProblemResponse(body, status_code=exc.status)

    @app.exception_handler(CommitOutcomeUnknown)
    async def _unknown(_: Request, exc: CommitOutcomeUnknown) -> ProblemResponse:
        return ProblemResponse(
            unknown_outcome_problem(exc),
            status_code=503,
            headers={"Retry-After": str(exc.retry_after_seconds)},
        )

    @app.exception_handler(ApiProblem)
    async def _api(_: Request, exc: ApiProblem) -> ProblemResponse:
        return problem(
            exc.status, exc.title, exc.detail, kind=exc.kind, field=exc.field, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> ProblemResponse:
        return problem(
            exc.status_code,
            "Not found" if exc.status_code == 404 else "HTTP error",
            str(exc.detail),
            kind=f"http-{exc.status_code}",
            headers=getattr(exc, "headers", None),
        )
