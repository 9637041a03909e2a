"""JSON bodies read strictly: one value per key, and numbers as they were written.

The standard parsers keep the last of two equal keys, so `{"amount": "1", "amount": "9"}`
would mean whatever the last sender intended; such a body is refused, naming the key where it
repeats (`lines[0].amount`). Numbers with a fraction become exact `Decimal`s, never floats; a
number written with an exponent (`1e3`) is refused where it stands, as no field of the API
takes one. NaN and Infinity, invalid UTF-8 and absurd nesting are malformed JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


class ExponentNumber:
    """A JSON number written with an exponent (`1e3`), marked while parsing."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal


class _RepeatedKey(dict[str, Any]):
    """An object in which `key` appeared more than once."""

    __slots__ = ("key",)
    key: str


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def malformed(reason: str, position: int = 0) -> RequestValidationError:
    """The error FastAPI raises for a body that is not JSON (answered with 400)."""
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body", position),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": reason},
            }
        ]
    )


def _refused_at(path: tuple[str | int, ...], kind: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": kind, "loc": ("body", *path), "msg": message, "input": None}]
    )


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; raise RequestValidationError for malformed JSON, a repeated key
    or a number with an exponent (the last two naming where they are)."""
    repeated = exponent = False

    def number(literal: str) -> Decimal | ExponentNumber:
        nonlocal exponent
        if "e" in literal or "E" in literal:
            exponent = True
            return ExponentNumber(literal)
        return Decimal(literal)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        obj = dict(items)
        if len(obj) == len(items):
            return obj
        repeated = True
        seen: set[str] = set()
        marked = _RepeatedKey(obj)
        marked.key = next(k for k, _ in items if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        return marked

    try:
        value = json.loads(
            body, object_pairs_hook=pairs, parse_float=number, parse_constant=_no_constant
        )
    except json.JSONDecodeError as exc:
        raise malformed(exc.msg, exc.pos) from None
    except RecursionError:
        raise malformed("nested too deeply") from None
    except ValueError as exc:  # invalid UTF-8, NaN/Infinity, integers beyond 4300 digits
        raise malformed(str(exc).split(":")[0]) from None
    if repeated:
        where = _first(value, (), lambda v: isinstance(v, _RepeatedKey))
        assert where is not None
        path, obj = where
        key = obj.key if isinstance(obj, _RepeatedKey) else ""
        raise _refused_at(
            (*path, key), "duplicate_key", "appears more than once in the same object"
        )
    if exponent:
        where = _first(value, (), lambda v: isinstance(v, ExponentNumber))
        assert where is not None
        raise _refused_at(
            where[0],
            "number_with_exponent",
            f"{where[1]!r} is written with an exponent; write numbers as plain decimals",
        )
    return value


def _first(
    value: Any, path: tuple[str | int, ...], wanted: Callable[[Any], bool]
) -> tuple[tuple[str | int, ...], Any] | None:
    """The first value that is `wanted`, in document order, with its path."""
    if wanted(value):
        return path, value
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _first(item, (*path, key), wanted)
        if found is not None:
            return found
    return None


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type announces JSON (application/json or application/*+json)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _ParsedJsonRequest(Request):
    """A request whose JSON body was parsed by `parse_json` before FastAPI reads it."""

    parsed: Any = None

    async def json(self) -> Any:
        return self.parsed


class StrictJsonRoute(APIRoute):
    """A route whose JSON request body is parsed by `parse_json` (errors become problems)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict(request: Request) -> Response:
            if not is_json(request.headers.get("content-type")):
                return await handler(request)
            parsed = _ParsedJsonRequest(request.scope, request.receive)
            body = await parsed.body()
            if body:
                parsed.parsed = parse_json(body)
            return await handler(parsed)

        return strict
