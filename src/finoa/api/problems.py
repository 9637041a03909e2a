"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from finoa.domain.errors import DomainError
from finoa.store.errors import CommitOutcomeUnknown

PROBLEM_TYPE = "https://finoa.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        # A problem may quote what the caller sent, lone surrogates included: those are
        # written as JSON escapes rather than failing to encode.
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


class FieldError(BaseModel):
    """One refused field of a request."""

    field: str = Field(description="The field, e.g. lines[0].amount or data.events[1].data.task_id")
    message: str = Field(description="Why it was refused")


class Problem(BaseModel):
    """An RFC 9457 problem document, naming the field at fault when there is one."""

    type: str = Field(description="URI of the problem kind, https://finoa.dev/problems/<kind>")
    title: str
    status: int
    detail: str = Field(description="What went wrong, starting with the field: 'field: reason'")
    field: str | None = Field(default=None, description="The field or header at fault")
    errors: list[FieldError] | None = Field(
        default=None, description="Every refused field, for validation problems"
    )


PROBLEM_TITLES = {
    400: "Malformed request (not JSON, repeated key or parameter, bad credentials syntax)",
    401: "Missing or invalid credentials, token or signature",
    403: "The token lacks the scope, or the caller may not act on the object",
    404: "No such object",
    409: "The object is not in a state that allows this",
    413: "The request body is larger than the limit",
    415: "The uploaded file is not of an accepted type",
    422: "A field was refused; `field` and `errors` name it",
    429: "Too many failed attempts; retry after Retry-After seconds",
    503: "Not ready, or the outcome of a commit is unknown: retry after Retry-After seconds",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries answering `statuses` with a Problem document."""
    return {
        status: {
            "description": PROBLEM_TITLES[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


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
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.kind, self.field, self.headers = kind, field, headers
        self.extra = extra or {}


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
    return problem_body(exc.status, exc.title, detail, kind=kind, field=exc.field, **exc.extensions)


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
    body = validation_problem_body(exc.errors())
    return ProblemResponse(body, status_code=body["status"])


def validation_problem_body(errors: Sequence[Any]) -> dict[str, Any]:
    """The problem for a request pydantic refused (400 for a body that is not JSON, else 422
    naming the first field, with every refused field in `errors`); `errors` in pydantic's
    shape, each `loc` starting where the request puts it (`body`, `query`, …)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        msg = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {})
        return problem_body(
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
    return problem_body(
        422,
        "Invalid request",
        f"{first['field']}: {first['message']}",
        kind="validation",
        field=first["field"],
        errors=items,
    )


def openapi_with_problems(
    app: FastAPI, models: tuple[type[BaseModel], ...] = ()
) -> Callable[[], dict[str, Any]]:
    """`app.openapi` whose document also defines the Problem schema the responses refer to,
    and the `models` that routes reading their own body refer to."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            published: tuple[type[BaseModel], ...] = (Problem, *models)
            for model in published:
                definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, nested in definition.pop("$defs", {}).items():
                    components.setdefault(name, nested)
                components[model.__name__] = definition
            app.openapi_schema = schema
        return app.openapi_schema

    return build


def install(app: FastAPI, models: tuple[type[BaseModel], ...] = ()) -> None:
    """Answer every error with a problem, and publish the Problem schema (and `models`)
    in the OpenAPI document."""
    app.openapi = openapi_with_problems(app, models)  # type: ignore[method-assign]

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
            exc.status,
            exc.title,
            exc.detail,
            kind=exc.kind,
            field=exc.field,
            headers=exc.headers,
            **exc.extra,
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
